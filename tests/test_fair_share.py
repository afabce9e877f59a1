"""Fair share between tenants, the running cap and held jobs on every route, with real workers and Redis."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job

from api import create_app
from shared import keys
from shared.config import Settings
from shared.errors import ConfigError
from shared.fair_share import FairShare, fair_queue_class
from shared.records import epoch_of
from tests.conftest import TENANT_KEYS, AuthActions, JobsClient
from tests.support import LiveServer, RedisServer, wait_until
from tests.test_faults import race
from tests.test_ops import scrape

FAST = {"html": "<p>{{ n }}</p>", "data": {"n": 1}}
"""A one-line inline document: a render costs little more than the fork, so 100 jobs take seconds."""


def batch(client: FlaskClient, auth: AuthActions, tenant: str, count: int, **fields: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/jobs/batch", json={"jobs": [{**FAST, **fields}] * count}, headers=auth.headers(tenant))
    assert response.status_code == 202, response.json
    return response.json["jobs"]


def records(redis: Redis, ids: list[str]) -> list[Job]:
    return [job for job in Job.fetch_many(ids, connection=redis) if job is not None]


def started(jobs: list[Job]) -> list[Job]:
    """The jobs that have started, in the order they started."""
    return sorted((j for j in jobs if j.meta.get("started_at")), key=lambda j: epoch_of(j.meta["started_at"]))


def fair_state_is_empty(redis: Redis) -> bool:
    return not any(redis.scan_iter(match=f"{keys.PREFIX}fair:*:*:*")) and not redis.smembers(keys.FAIR_TENANTS)


@pytest.fixture
def drained(client: FlaskClient, auth: AuthActions, redis: Redis, wait_for_empty_queues) -> Any:
    """After the test, cancel what it left waiting and let the workers finish their jobs: the next starts clean."""
    yield
    for tenant in ("acme", "globex"):
        for job in client.get("/v1/jobs?status=queued&limit=200", headers=auth.headers(tenant)).json["jobs"]:
            client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers(tenant))
    wait_for_empty_queues()
    wait_until(lambda: not any(redis.zcard(keys.tenant_running(t)) for t in TENANT_KEYS), timeout=60)


@pytest.mark.usefixtures("workers", "drained")
def test_another_tenants_jobs_finish_while_most_of_a_backlog_waits(client, auth, jobs: JobsClient, redis) -> None:
    """Behind acme's 60 waiting jobs, globex's 3 start within a few jobs and finish while most of acme's wait."""
    flood = [j["id"] for j in batch(client, auth, "acme", 60)]
    assert max(j["queue_position"] or 0 for j in jobs.client.get(
        "/v1/jobs?limit=200", headers=auth.headers()).json["jobs"]) >= 45
    mine = [jobs.submit(FAST, tenant="globex") for _ in range(3)]
    assert all(j["queue_position"] is not None and j["queue_position"] <= 4 for j in mine), \
        [j["queue_position"] for j in mine]
    for job in mine:
        assert jobs.wait(job["id"], tenant="globex")["status"] == "completed"
    done = sum(j.get_status(refresh=False) == "finished" for j in records(redis, flood))
    assert done < 30, f"{done} of acme's 60 jobs ran before globex's 3 finished"


@pytest.mark.usefixtures("workers", "drained")
def test_urgent_jobs_start_before_any_waiting_lower_priority_job(client, auth, redis) -> None:
    """With acme's normal backlog held, acme's held urgent jobs and then globex's high job start before it."""
    normal = [j["id"] for j in batch(client, auth, "acme", 30)]
    urgent = records(redis, [j["id"] for j in batch(client, auth, "acme", 3, priority="urgent")])
    high = records(redis, [j["id"] for j in batch(client, auth, "globex", 1, priority="high")])
    wait_until(lambda: all(j.get_status(refresh=True) == "finished" for j in urgent + high))
    urgent, high = records(redis, [j.id for j in urgent]), records(redis, [j.id for j in high])

    def begun(job: Job) -> float:
        """When the worker took it up: RQ stamps this in the worker before forking (the render's own start,
        in the work-horse, comes a fork later and can swap two jobs taken a few ms apart)."""
        return job.started_at.timestamp()

    def overtaking(lower: list[Job], created: float, until: float) -> list[Job]:
        """Lower-priority jobs that started after `created` but before `until`."""
        return [j for j in lower if j.started_at is not None and created < begun(j) < until]

    # Up to one job per worker taken just before the urgent batch was stamped, and one more each while its
    # transaction was on its way (the stamp is taken before the commit): a few, not the backlog.
    slack = 2 * 2
    last_urgent = max(begun(j) for j in urgent)
    assert len(overtaking(records(redis, normal) + high, min(j.created_at.timestamp() for j in urgent),
                          last_urgent)) <= slack
    assert len(overtaking(records(redis, normal), high[0].created_at.timestamp(), begun(high[0]))) <= slack
    assert sum(j.started_at is None or begun(j) > last_urgent for j in records(redis, normal)) > 20, \
        "the normal backlog waited"


@pytest.fixture
def weighted(env: dict[str, str]) -> None:
    """acme weighs 3, globex 1 (list before `client`: the app publishes this policy to the workers)."""
    env["TENANT_WEIGHTS"] = "acme:3,globex:1"


@pytest.mark.usefixtures("weighted", "workers", "drained")
def test_weights_give_shares_in_proportion(client, auth, redis) -> None:
    """Over 100 starts with both tenants waiting, acme (weight 3) gets 75 ± 20 % of them, globex the rest."""
    ids = [j["id"] for j in batch(client, auth, "acme", 100)] + [j["id"] for j in batch(client, auth, "globex", 100)]
    wait_until(lambda: len(started(records(redis, ids))) >= 100, timeout=90, interval=0.2)
    first = started(records(redis, ids))[:100]
    acme = sum(j.meta["tenant"] == "acme" for j in first)
    assert 60 <= acme <= 90, f"acme got {acme} of 100 starts"


@pytest.fixture
def capped(env: dict[str, str]) -> None:
    """At most one job per tenant renders at once (list before `client`)."""
    env["MAX_RUNNING_JOBS_PER_TENANT"] = "1"


@pytest.mark.usefixtures("capped", "workers", "drained")
def test_running_cap_never_lets_a_tenants_jobs_overlap(client, auth, redis) -> None:
    """With a cap of 1 and two workers, acme's renders never overlap, while globex's run beside them."""
    acme = [j["id"] for j in batch(client, auth, "acme", 6)]
    globex = [j["id"] for j in batch(client, auth, "globex", 6)]
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        seen.append(client.get("/v1/queue/stats", headers=auth.headers()).json["tenant"])
        return all(j.get_status(refresh=False) == "finished" for j in records(redis, acme + globex))

    wait_until(finished, timeout=60, interval=0.05)
    assert all(block["running_limit"] == 1 and block["started"] <= 1 for block in seen), seen

    def spans(ids: list[str]) -> list[tuple[float, float]]:
        return sorted((epoch_of(j.meta["started_at"]), epoch_of(j.meta["finished_at"])) for j in records(redis, ids))

    mine = spans(acme)
    assert all(end <= start for (_, end), (start, _) in zip(mine, mine[1:])), mine
    assert any(s < e2 and s2 < e for s, e in mine for s2, e2 in spans(globex)), "the other worker stayed idle"


@pytest.mark.usefixtures("no_workers")
def test_held_jobs_are_queued_jobs_to_every_route(client, auth, jobs: JobsClient, redis) -> None:
    """A held job reads as queued with its fair place, cancels once, retries to the back, and keeps its key."""
    created = batch(client, auth, "acme", 5)
    assert [j["queue_position"] for j in created] == [0, 1, 2, 3, 4]
    assert redis.llen(keys.fair_held("normal", "acme")) == 4 and redis.llen("rq:queue:normal") == 1
    held = created[2]["id"]
    assert jobs.get(held)["status"] == "queued" and jobs.get(held)["queue_position"] == 2
    answers = race(client.application, "DELETE", f"/v1/jobs/{held}", auth.headers())
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    assert held.encode() not in redis.lrange(keys.fair_held("normal", "acme"), 0, -1)
    assert jobs.get(created[3]["id"])["queue_position"] == 2
    retried = client.post(f"/v1/jobs/{held}/retry", headers=auth.headers())
    assert retried.status_code == 202 and retried.json["status"] == "queued" and retried.json["queue_position"] == 4
    listed = client.get("/v1/jobs?status=queued", headers=auth.headers()).json["jobs"]
    assert sorted(j["queue_position"] for j in listed) == [0, 1, 2, 3, 4]
    first = jobs.submit(FAST, **{"Idempotency-Key": "held-once"})
    assert jobs.submit(FAST, **{"Idempotency-Key": "held-once"})["id"] == first["id"]
    assert first["queue_position"] == 5
    stats = client.get("/v1/queue/stats", headers=auth.headers()).json
    assert stats["queues"]["normal"]["queued"] == 6 and stats["tenant"]["queued"] == 6


@pytest.mark.usefixtures("no_workers")
def test_no_response_names_or_counts_another_tenant(client, auth, jobs: JobsClient) -> None:
    """globex's answers (job, list, stats, metrics) hold its own figures only and never acme's name."""
    batch(client, auth, "acme", 7)
    own = jobs.submit(FAST, tenant="globex")
    answers = [client.get(f"/v1/jobs/{own['id']}", headers=auth.headers("globex")),
               client.get("/v1/jobs", headers=auth.headers("globex")),
               client.get("/v1/queue/stats", headers=auth.headers("globex")), client.get("/metrics")]
    assert all(a.status_code == 200 and b"acme" not in a.data for a in answers)
    tenant = answers[2].json["tenant"]
    assert tenant["queued"] == 1 and tenant["started"] == 0 and tenant["active"] == []
    assert client.get("/v1/queue/stats", headers=auth.headers()).json["tenant"]["queued"] == 7


def test_two_api_processes_and_workers_run_every_job_once(live_api: LiveServer, workers, client, auth,
                                                          redis, drained) -> None:
    """Submissions racing through gunicorn's two processes and this one each run exactly once, none stranded."""
    ids: list[str] = []
    lock = threading.Lock()

    def submit_over_http(tenant: str) -> None:
        with requests.Session() as session:
            for _ in range(15):
                response = session.post(f"{live_api.url}/v1/jobs", json=FAST, timeout=30,
                                        headers={"Authorization": f"Bearer {TENANT_KEYS[tenant]}"})
                with lock:
                    ids.append(response.json()["id"])

    threads = [threading.Thread(target=submit_over_http, args=(t,)) for t in ("acme", "globex", "acme")]
    for thread in threads:
        thread.start()
    ids.extend(j["id"] for j in batch(client, auth, "globex", 15))
    for thread in threads:
        thread.join()
    wait_until(lambda: all(j.get_status(refresh=False) == "finished" for j in records(redis, ids)), timeout=90,
               interval=0.2)
    assert len(set(ids)) == 60 and all(j.meta["attempts"] == 1 for j in records(redis, ids))
    wait_until(lambda: fair_state_is_empty(redis), timeout=10)


def test_jobs_lost_in_a_workers_hand_off_are_given_back(private_db: dict[str, str], settings: Settings, client,
                                                        auth, redis, spawn_worker) -> None:
    """A worker killed after taking a job (or after a blocking pop, before its bookkeeping) strands nothing."""
    ids = [j["id"] for j in batch(client, auth, "acme", 3)]
    queue_class = fair_queue_class(settings)
    _, taken = queue_class.lpop(["rq:queue:normal"], None, connection=redis)  # a worker's dequeue, then it dies
    assert redis.zscore(keys.tenant_running("acme"), taken) is not None
    blpopped = redis.lpop("rq:queue:normal").decode()  # a blocking pop whose worker died before its bookkeeping
    assert redis.zscore(keys.fair_released("normal", "acme"), blpopped) is not None
    long_ago = redis.time()[0] - 60  # as if both died a minute ago, past the hand-off grace
    redis.zadd(keys.tenant_running("acme"), {taken: long_ago})
    redis.zadd(keys.fair_released("normal", "acme"), {blpopped: long_ago})
    spawn_worker(private_db)
    wait_until(lambda: all(j.get_status(refresh=False) == "finished" for j in records(redis, ids)), timeout=60,
               interval=0.2)
    assert sorted(j.meta["attempts"] for j in records(redis, ids)) == [1, 1, 1]
    assert FairShare(settings).reconcile(redis) == 0 and fair_state_is_empty(redis)


def test_fair_share_state_survives_a_redis_restart(env: dict[str, str], tmp_path: Path, auth, spawn_worker) -> None:
    """Held lists, releases and running slots live in Redis (AOF): restarted mid-backlog, every job still completes."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        env.update(REDIS_URL=server.url(0), WORKER_MAINTENANCE_INTERVAL_S="1")
        client = create_app(Settings.from_env(env)).test_client()
        connection = Redis.from_url(server.url(0))
        spawn_worker(env)
        ids = [j["id"] for j in batch(client, auth, "acme", 12) + batch(client, auth, "globex", 4)]
        wait_until(lambda: len(started(records(connection, ids))) >= 2, timeout=30)
        assert connection.llen(keys.fair_held("normal", "acme")) > 0
        server.stop()
        server.start()
        wait_until(lambda: all(j.get_status(refresh=False) == "finished" for j in records(connection, ids)),
                   timeout=90, interval=0.2)
        wait_until(lambda: fair_state_is_empty(connection), timeout=10)
    finally:
        server.stop()


@pytest.mark.usefixtures("no_workers")
def test_metrics_count_held_jobs_as_waiting(client, auth, redis) -> None:
    """Depth per priority counts held jobs; tenants waiting and the oldest waiting job's age are per queue."""
    batch(client, auth, "acme", 5)
    batch(client, auth, "globex", 2, priority="low")
    redis.hset(f"rq:job:{redis.lindex(keys.fair_held('normal', 'acme'), 0).decode()}", "enqueued_at",
               "2020-01-01T00:00:00.000000Z")  # the oldest waiting job is a held one
    metrics = scrape(client)
    assert metrics[("pdf_queue_depth", (("queue", "normal"),))] == 5
    assert metrics[("pdf_queue_depth", (("queue", "low"),))] == 2
    assert metrics[("pdf_queue_tenants_waiting", (("queue", "normal"),))] == 1
    batch(client, auth, "globex", 1)
    metrics = scrape(client)
    assert metrics[("pdf_queue_tenants_waiting", (("queue", "normal"),))] == 2
    assert metrics[("pdf_queue_oldest_age_seconds", (("queue", "normal"),))] > 86400 * 365
    assert 0 <= metrics[("pdf_queue_oldest_age_seconds", (("queue", "low"),))] < 60
    assert metrics[("pdf_queue_oldest_age_seconds", (("queue", "urgent"),))] == 0


@pytest.mark.parametrize("raw", ["acme", "acme:0", "acme:x", ":3", "acme:1.5"])
def test_bad_tenant_weights_refuse_to_start(raw: str) -> None:
    """TENANT_WEIGHTS that is not `tenant:whole-number>=1,...` is a configuration error, not a silent default."""
    with pytest.raises(ConfigError, match="TENANT_WEIGHTS"):
        Settings.from_env({"TENANT_WEIGHTS": raw})
