"""Recurring jobs: the schedules API, cron semantics, exactly-once firing with two schedulers."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq_scheduler import Scheduler

import api.schedules
import worker.scheduler
from shared import keys, schedules
from shared.config import Settings
from shared.fair_share import FairShare
from shared.connection import connect
from shared.records import iso, utcnow
from shared.schema import ScheduleRequest
from tests.conftest import AuthActions, JobsClient
from tests.support import ROOT, RedisServer, wait_until
from worker.scheduler import SYSTEM_SCHEDULES

JOB = {"template": "letter.html", "data": {}}
OVERSIZED_METADATA = {"note": "x" * 4079}
"""4,090 bytes as JSON: within the 4 KiB limit alone, over it once a run adds `schedule_id`."""


@pytest.fixture
def letter_job(client, auth: AuthActions) -> dict:
    templates = client.get("/v1/templates", headers=auth.headers()).json["templates"]
    return {"template": "letter.html", "data": next(t for t in templates if t["name"] == "letter.html")["sample_data"]}


def start_scheduler(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m worker.scheduler` as the Procfile runs it, one pass a second, logging to `log_path`."""
    return subprocess.Popen([sys.executable, "-m", "worker.scheduler"], cwd=ROOT,
                            env={**env, "SCHEDULER_INTERVAL_S": "1"}, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def schedulers(env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two scheduler processes on the same Redis, as after a deploy slip."""
    procs = [start_scheduler(env, tmp_path / f"s{i}.log") for i in range(2)]
    yield procs
    stop(procs)


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def store_unchecked(redis: Redis, tenant: str, job: dict) -> schedules.Schedule:
    """A schedule written as an older release stored it, without the checks `schedules.create` now makes."""
    schedule = schedules.Schedule(id=uuid.uuid4().hex, tenant=tenant, cron="* * * * *", timezone="UTC",
                                  job=job, created_at=iso(utcnow()) or "")
    redis.set(keys.schedule(schedule.id), json.dumps(asdict(schedule)))
    redis.sadd(keys.tenant_schedules(tenant), schedule.id)
    redis.zadd(keys.SCHEDULES_DUE, {schedule.id: time.time() + 60})
    return schedule


def test_schedule_crud_and_validation(no_workers: None, client, auth: AuthActions, letter_job: dict) -> None:
    """Create (201), read, list and delete (204) schedules; bad cron/timezone/job are 422; tenants are isolated."""
    created = client.post("/v1/schedules", json={"cron": "0 9 * * 1", "timezone": "Europe/Paris", "job": letter_job},
                          headers=auth.headers())
    assert created.status_code == 201, created.json
    schedule = created.json
    assert set(schedule) >= {"id", "cron", "timezone", "job", "next_run_at", "created_at"}
    assert created.headers["Location"].endswith(schedule["id"])
    assert schedule["next_run_at"].endswith("Z") and schedule["next_run_at"][11:13] in ("07", "08")  # 09:00 Paris
    assert client.get(f"/v1/schedules/{schedule['id']}", headers=auth.headers()).json["cron"] == "0 9 * * 1"
    assert [s["id"] for s in client.get("/v1/schedules", headers=auth.headers()).json["schedules"]] == [schedule["id"]]
    other = client.get(f"/v1/schedules/{schedule['id']}", headers=auth.headers("globex"))
    assert other.status_code == 404 and other.json["code"] == "not_found"
    assert client.delete(f"/v1/schedules/{schedule['id']}", headers=auth.headers("globex")).status_code == 404
    for bad in ({"cron": "61 * * * *", "job": letter_job}, {"cron": "* * *", "job": letter_job},
                {"cron": "* * * * *", "timezone": "Mars/Olympus", "job": letter_job},
                {"cron": "* * * * *", "job": {"template": "nope.html"}}):
        response = client.post("/v1/schedules", json=bad, headers=auth.headers())
        assert response.status_code == 422 and response.json["code"] == "validation_error", bad
    assert client.delete(f"/v1/schedules/{schedule['id']}", headers=auth.headers()).status_code == 204
    assert client.get(f"/v1/schedules/{schedule['id']}", headers=auth.headers()).status_code == 404


def make_due(redis: Redis, schedule_id: str, run: int) -> int:
    """Pretend the minute has come (instead of waiting for the wall clock); each run gets its own time."""
    due = int(time.time()) // 60 * 60 - 600 * run
    redis.zadd(keys.SCHEDULES_DUE, {schedule_id: due})
    return due


def scheduled_jobs(client, auth: AuthActions, schedule_id: str) -> list[dict]:
    listed = client.get("/v1/jobs?limit=200", headers=auth.headers()).json["jobs"]
    return [j for j in listed if j["metadata"].get("schedule_id") == schedule_id]


@pytest.mark.usefixtures("workers")
def test_two_schedulers_fire_each_run_once_and_jobs_complete(redis, schedulers, jobs: JobsClient, client, auth,
                                                             letter_job: dict) -> None:
    """With two schedulers running, every due run of a `* * * * *` schedule creates exactly one ordinary job."""
    schedule = client.post("/v1/schedules", json={"cron": "* * * * *", "job": letter_job},
                           headers=auth.headers()).json
    forced = set()
    for run in range(1, 5):
        forced.add(make_due(redis, schedule["id"], run))
        wait_until(lambda: len(scheduled_jobs(client, auth, schedule["id"])) >= run, timeout=20)
        wait_until(lambda: redis.zscore(keys.SCHEDULES_DUE, schedule["id"]) > time.time(), timeout=10)
    time.sleep(2.5)  # both schedulers make more passes; nothing more may fire
    fired = scheduled_jobs(client, auth, schedule["id"])
    run_times = {int(job["id"].rsplit("-", 1)[1]) for job in fired}
    assert forced <= run_times and len(run_times - forced) <= 1  # plus the real minute, if one passed
    # Each enqueue counts once, even if a duplicate reused the run's job id: counts equal means no run fired twice.
    assert int(redis.hget("pdfq:stats:enqueued", "normal")) == len(fired)
    for job in fired:
        assert jobs.wait(job["id"])["status"] == "completed"
    next_run = redis.zscore(keys.SCHEDULES_DUE, schedule["id"])
    assert next_run % 60 == 0 and 0 < next_run - time.time() <= 60
    assert client.delete(f"/v1/schedules/{schedule['id']}", headers=auth.headers()).status_code == 204
    make_due(redis, schedule["id"], 5)  # a due entry left behind (e.g. a delete racing a claim)
    wait_until(lambda: redis.zscore(keys.SCHEDULES_DUE, schedule["id"]) is None, timeout=10)  # a pass dropped it
    assert len(scheduled_jobs(client, auth, schedule["id"])) == len(fired)


def test_system_schedules_registered_once_across_restarts(redis, schedulers, env: dict[str, str]) -> None:
    """Re-deploying (more scheduler starts) never registers a system schedule twice."""
    from rq_scheduler import Scheduler

    wait_until(lambda: redis.zcard("rq:scheduler:scheduled_jobs") >= 2, timeout=20)
    subprocess.run([sys.executable, "-c", "import worker.scheduler as s, shared.config as c, shared.connection as n;"
                    "s.register_system_schedules(s.PdfScheduler(connection=n.connect(c.Settings.from_env()),"
                    " settings=None))"], cwd=ROOT, env=env, check=True, timeout=30)
    ids = [i.decode() for i in redis.zrange("rq:scheduler:scheduled_jobs", 0, -1)]
    assert sorted(ids) == ["pdfq-system-daily-report", "pdfq-system-queue-status"]
    assert len(list(Scheduler(connection=redis).get_jobs())) == 2


def test_schedule_metadata_limit_counts_the_schedule_id(no_workers: None, client, auth: AuthActions,
                                                        letter_job: dict) -> None:
    """Metadata that fits 4 KiB only without the `schedule_id` each run adds is refused at creation (422)."""
    refused = client.post("/v1/schedules", json={"cron": "* * * * *", "job": {**letter_job, "metadata": OVERSIZED_METADATA}},
                          headers=auth.headers())
    assert refused.status_code == 422 and refused.json["code"] == "validation_error"
    assert [e["field"] for e in refused.json["errors"]] == ["job.metadata"]
    assert client.get("/v1/schedules", headers=auth.headers()).json["schedules"] == []
    fits = client.post("/v1/schedules", json={"cron": "* * * * *", "job": {**letter_job, "metadata": {"n": "x" * 4000}}},
                       headers=auth.headers())
    assert fits.status_code == 201


def test_a_failing_schedule_is_logged_and_the_scheduler_keeps_firing(no_workers: None, env: dict[str, str], redis,
                                                                    client, auth: AuthActions, letter_job: dict,
                                                                    tmp_path: Path) -> None:
    """A stored schedule whose runs are invalid logs one line per run (no job data); the scheduler lives on."""
    marker = "CARD-4111-SCHEDULED"
    bad = store_unchecked(redis, "acme", {**letter_job, "metadata": {"note": marker + "x" * (4079 - len(marker))}})
    good = client.post("/v1/schedules", json={"cron": "* * * * *", "job": letter_job}, headers=auth.headers()).json
    due = make_due(redis, bad.id, 1)
    redis.zadd(keys.SCHEDULES_DUE, {good["id"]: due})
    log = tmp_path / "scheduler.log"
    proc = start_scheduler(env, log)
    try:
        wait_until(lambda: scheduled_jobs(client, auth, good["id"]), timeout=20)
        wait_until(lambda: any(r["msg"] == "schedule run failed" for r in log_records(log)), timeout=10)
        time.sleep(2)  # more passes
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        stop([proc])
    failed = [r for r in log_records(log) if r["msg"] == "schedule run failed"]
    assert {(r["schedule_id"], r["tenant"], r["error"]) for r in failed} == {(bad.id, "acme", "ValidationError")}
    assert len(failed) <= 2, "one line per due run (the made-due one, maybe the next minute's), not one per pass"
    assert marker not in log.read_text()
    assert redis.zscore(keys.SCHEDULES_DUE, bad.id) > time.time(), "the failed run is not retried every pass"


def test_scheduler_survives_a_redis_restart(env: dict[str, str], tmp_path: Path) -> None:
    """With Redis gone the scheduler logs and waits instead of exiting, then fires runs once Redis is back."""
    server = RedisServer(tmp_path)
    server.start()
    env = {**env, "REDIS_URL": server.url(0)}
    connection = connect(Settings.from_env(env))
    log = tmp_path / "scheduler.log"
    proc = start_scheduler(env, log)
    try:
        wait_until(lambda: connection.zcard("rq:scheduler:scheduled_jobs") == len(SYSTEM_SCHEDULES), timeout=20)
        server.stop()
        wait_until(lambda: any(r["msg"] == "scheduler lost redis; retrying" for r in log_records(log)), timeout=20)
        time.sleep(2)
        assert proc.poll() is None, log.read_text()[-2000:]
        server.start()
        schedule, _ = schedules.create(connection, "acme", ScheduleRequest(cron="* * * * *", job={"html": "<p>x</p>"}))
        make_due(connection, schedule.id, 1)
        wait_until(lambda: Queue("normal", connection=connection).count == 1, timeout=40)
        assert proc.poll() is None
    finally:
        stop([proc])
        server.stop()


def test_scheduled_runs_obey_admission_limits(no_workers: None, redis, settings: Settings, client, auth: AuthActions,
                                             letter_job: dict, caplog: pytest.LogCaptureFixture) -> None:
    """A run is skipped (logged with the reason) while its tenant or the queues are at their limits."""
    schedule = client.post("/v1/schedules", json={"cron": "* * * * *", "job": letter_job}, headers=auth.headers()).json
    JobsClient(client, auth).submit({"html": "<p>waiting</p>"})  # stays queued: no worker here
    for limits, reason in (({"max_active_jobs_per_tenant": 1}, "tenant_limit"), ({"max_queued_jobs": 1}, "queue_full")):
        make_due(redis, schedule["id"], 1)
        with caplog.at_level(logging.INFO):
            assert schedules.fire_due(redis, replace(settings, **limits)) == []
        skipped = [r for r in caplog.records if r.msg == "schedule run skipped"][-1]
        assert (skipped.schedule_id, skipped.tenant, skipped.reason) == (schedule["id"], "acme", reason)
    assert scheduled_jobs(client, auth, schedule["id"]) == []
    make_due(redis, schedule["id"], 1)
    assert len(schedules.fire_due(redis, settings)) == 1, "within the limits the run fires"


def test_schedules_per_tenant_are_limited(no_workers: None, client, auth: AuthActions, letter_job: dict,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_SCHEDULES_PER_TENANT a tenant's new schedule is refused (422) until it deletes one."""
    monkeypatch.setattr(api.schedules, "MAX_SCHEDULES_PER_TENANT", 2)
    body = {"cron": "0 9 * * 1", "job": letter_job}
    created = [client.post("/v1/schedules", json=body, headers=auth.headers()) for _ in range(2)]
    assert [r.status_code for r in created] == [201, 201]
    refused = client.post("/v1/schedules", json=body, headers=auth.headers())
    assert refused.status_code == 422 and refused.json["code"] == "validation_error"
    assert "at most 2 schedules" in refused.json["detail"]
    assert client.post("/v1/schedules", json=body, headers=auth.headers("globex")).status_code == 201
    assert client.delete(f"/v1/schedules/{created[0].json['id']}", headers=auth.headers()).status_code == 204
    assert client.post("/v1/schedules", json=body, headers=auth.headers()).status_code == 201


def test_concurrent_fire_due_fires_each_run_once(no_workers: None, redis, settings: Settings, client,
                                                 auth: AuthActions, letter_job: dict) -> None:
    """Eight schedulers' passes racing on the same due runs (no rq-scheduler lock) create each run's job once."""
    ids = [client.post("/v1/schedules", json={"cron": "* * * * *", "job": letter_job}, headers=auth.headers()).json["id"]
           for _ in range(10)]
    runs = {f"{schedule_id}-{make_due(redis, schedule_id, 1)}" for schedule_id in ids}
    now, racers = time.time(), 8
    start = threading.Barrier(racers)
    fired: list[list[str]] = []

    def one_pass() -> None:
        connection = connect(settings)
        start.wait()
        fired.append(schedules.fire_due(connection, settings, now=now))

    threads = [threading.Thread(target=one_pass) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(fired) == racers
    assert sorted(job_id for batch in fired for job_id in batch) == sorted(runs)
    assert FairShare(settings).waiting(redis)["normal"].total == len(runs), "held by fair share or in the queue"


def test_changed_system_schedule_is_registered_again(redis, settings: Settings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A system schedule whose cron changed is re-registered under its id (one job, new cron); others keep theirs."""
    scheduler = worker.scheduler.PdfScheduler(connection=redis, settings=settings)
    worker.scheduler.register_system_schedules(scheduler)
    before = dict(redis.zrange(Scheduler.scheduled_jobs_key, 0, -1, withscores=True))
    changed = tuple((job_id, "*/10 * * * *" if job_id == "pdfq-system-queue-status" else cron, function, queue)
                    for job_id, cron, function, queue in worker.scheduler.SYSTEM_SCHEDULES)
    monkeypatch.setattr(worker.scheduler, "SYSTEM_SCHEDULES", changed)
    worker.scheduler.register_system_schedules(scheduler)
    after = dict(redis.zrange(Scheduler.scheduled_jobs_key, 0, -1, withscores=True))
    assert sorted(after) == [b"pdfq-system-daily-report", b"pdfq-system-queue-status"]
    assert Job.fetch("pdfq-system-queue-status", connection=redis).meta["cron_string"] == "*/10 * * * *"
    assert after[b"pdfq-system-queue-status"] % 600 == 0
    assert {k: v for k, v in after.items() if k != b"pdfq-system-queue-status"} == \
        {k: v for k, v in before.items() if k != b"pdfq-system-queue-status"}


def test_retired_system_schedule_is_removed_at_start(redis, settings: Settings) -> None:
    """A cleanup schedule an earlier release registered is canceled: expired PDFs have one purge path."""
    scheduler = worker.scheduler.PdfScheduler(connection=redis, settings=settings)
    scheduler.cron("*/15 * * * *", func="worker.maintenance.queue_status", id="pdfq-system-cleanup",
                   queue_name="low", result_ttl=-1)
    worker.scheduler.register_system_schedules(scheduler)
    assert "pdfq-system-cleanup" not in scheduler
    assert sorted(redis.zrange(Scheduler.scheduled_jobs_key, 0, -1)) == [b"pdfq-system-daily-report",
                                                                         b"pdfq-system-queue-status"]
