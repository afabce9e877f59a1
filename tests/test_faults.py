"""Nothing lost: killed workers, timeouts, Redis restarts, deploys, bursts, limits, idempotency, retention."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, Worker
from werkzeug.test import TestResponse

from api import create_app
from api.admission import IDEMPOTENT_CREATE_S, claim_idempotency, release_idempotency
from shared import keys
from shared.config import Settings
from shared.enqueue import enqueue_render
from shared.schema import JobRequest
from tests.conftest import AuthActions, JobsClient
from tests.support import LiveServer, RedisServer, WorkerProcess, kill_tree, wait_until, work_horse

SLOW = {"html": "<table>{% for i in range(rows) %}<tr><td>row {{ i }}</td><td>{{ i * 3 }}</td></tr>{% endfor %}"
                "</table>", "data": {"rows": 2500}}
"""A render of a few seconds, long enough to interfere with."""

Spawn = Callable[..., WorkerProcess]


def test_killed_worker_job_is_rerun_by_another(private_db: dict[str, str], jobs: JobsClient, spawn_worker: Spawn) -> None:
    """kill -9 of a busy worker (parent and horse): another worker re-runs the job within the stated bound."""
    first = spawn_worker(private_db)
    job = jobs.submit({**SLOW, "max_retries": 2})
    jobs.wait_laying_out(job["id"])
    killed_at = time.monotonic()
    kill_tree(first.pid)
    spawn_worker(private_db)
    wait_until(lambda: jobs.get(job["id"])["attempts"] == 2 or None, timeout=60)
    assert time.monotonic() - killed_at < 45, "README promises a lost job is re-run within ~35 s"
    done = jobs.wait(job["id"], ("completed", "failed"), timeout=90)
    assert done["status"] == "completed", done
    assert done["attempts"] == 2


def test_killed_work_horse_is_retried_then_fails_as_worker_lost(private_db: dict[str, str], jobs: JobsClient,
                                                                spawn_worker: Spawn) -> None:
    """kill -9 of the work-horse: retried at once; with no attempts left it fails as worker_lost."""
    worker = spawn_worker(private_db)
    retried = jobs.submit({**SLOW, "max_retries": 1})
    jobs.wait(retried["id"], ("started",))
    os.kill(wait_until(lambda: work_horse(worker.pid)), signal.SIGKILL)  # maybe before it wrote its attempt
    jobs.wait_laying_out(retried["id"], attempt=2)
    os.kill(wait_until(lambda: work_horse(worker.pid)), signal.SIGKILL)
    failed = jobs.wait(retried["id"], ("completed", "failed"), timeout=30)
    assert failed["status"] == "failed" and failed["error"]["code"] == "worker_lost", failed
    assert failed["attempts"] == 2
    assert jobs.wait(jobs.submit({"html": "<p>still alive</p>"})["id"])["status"] == "completed"


@pytest.mark.usefixtures("workers")
def test_timeout_is_retried_with_backoff_then_fails(jobs: JobsClient) -> None:
    """A render past timeout_s is stopped, shown as retrying, retried, and ends failed with code timeout."""
    job = jobs.submit({**SLOW, "timeout_s": 1, "max_retries": 1})
    retrying = jobs.wait(job["id"], ("retrying",), timeout=30)
    assert retrying["error"]["code"] == "timeout" and retrying["attempts"] == 1
    done = jobs.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
    assert done["attempts"] == 2
    assert done["error"]["message"] == "render exceeded timeout_s=1"


def test_sigterm_finishes_current_job_within_grace(private_db: dict[str, str], jobs: JobsClient,
                                                  spawn_worker: Spawn) -> None:
    """SIGTERM to a busy worker lets the job finish when it fits in the grace period, then exits."""
    worker = spawn_worker({**private_db, "WORKER_SHUTDOWN_GRACE_S": "60"})
    job = jobs.submit({**SLOW, "max_retries": 0})
    jobs.wait(job["id"], ("started",))
    worker.process.send_signal(signal.SIGTERM)
    assert jobs.wait(job["id"], timeout=60)["status"] == "completed"
    worker.process.wait(timeout=30)


def test_sigterm_past_grace_returns_job_to_queue(private_db: dict[str, str], jobs: JobsClient,
                                                spawn_worker: Spawn) -> None:
    """Past the grace period the job goes back to its queue without using an attempt, and completes later."""
    worker = spawn_worker({**private_db, "WORKER_SHUTDOWN_GRACE_S": "1"})
    job = jobs.submit({**SLOW, "max_retries": 0})
    jobs.wait(job["id"], ("started",))
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=30)
    waiting = jobs.get(job["id"])
    assert waiting["status"] == "queued" and waiting["attempts"] == 0, waiting
    spawn_worker(private_db)
    done = jobs.wait(job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempts"] == 1


def test_redis_restart_loses_no_queued_job(env: dict[str, str], tmp_path: Path, auth: AuthActions,
                                           spawn_worker: Spawn) -> None:
    """With 50 jobs queued, a Redis restart (AOF) loses none; the API says 503 while it is down; all complete."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        env.update(REDIS_URL=server.url(0), WORKER_MAINTENANCE_INTERVAL_S="1")
        client = create_app(Settings.from_env(env)).test_client()
        jobs = JobsClient(client, auth)
        ids = [jobs.submit({"html": f"<p>job {i}</p>"})["id"] for i in range(50)]
        # The append-only file holds the last job before Redis is killed (it is what a restart reads back).
        wait_until(lambda: any(ids[-1].encode() in f.read_bytes() for f in tmp_path.rglob("*.aof*") if f.is_file()),
                   timeout=10)
        server.stop(signal.SIGKILL)
        down = client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers())
        assert down.status_code == 503 and down.json["code"] == "backend_unavailable"
        server.start()
        assert sum(jobs.get(i)["status"] == "queued" for i in ids) == 50
        spawn_worker(env)
        spawn_worker(env)
        server.stop(signal.SIGTERM)  # and once more while the workers are busy
        server.start()
        finals = [jobs.wait(i, timeout=120) for i in ids]
        assert [j["status"] for j in finals] == ["completed"] * 50
    finally:
        server.stop()


@pytest.mark.usefixtures("workers")
def test_200_concurrent_submissions_all_complete(live_api: LiveServer, redis) -> None:
    """200 submissions from 20 threads against gunicorn get distinct ids and every job completes."""
    headers = {"Authorization": "Bearer acme-key"}
    ids: list[str] = []
    lock = threading.Lock()

    def submit(batch: int) -> None:
        with requests.Session() as session:
            for i in range(10):
                response = session.post(f"{live_api.url}/v1/jobs", json={"html": f"<p>{batch}-{i}</p>"},
                                        headers=headers, timeout=30)
                assert response.status_code == 202, response.text
                with lock:
                    ids.append(response.json()["id"])

    threads = [threading.Thread(target=submit, args=(b,)) for b in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 200

    def all_completed() -> bool:
        statuses = [requests.get(f"{live_api.url}/v1/jobs/{i}", headers=headers, timeout=10).json()["status"]
                    for i in ids]
        assert "failed" not in statuses
        return statuses.count("completed") == 200

    wait_until(all_completed, timeout=120, interval=1)


def test_idempotency_key_returns_the_first_job(no_workers: None, client: FlaskClient, auth: AuthActions) -> None:
    """The same key and body give the same job; a different body is a conflict; tenants are separate."""
    body = {"html": "<p>once</p>"}
    first = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "order-17"})
    again = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "order-17"})
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    conflict = client.post("/v1/jobs", json={"html": "<p>other</p>"},
                           headers={**auth.headers(), "Idempotency-Key": "order-17"})
    assert conflict.status_code == 422 and conflict.json["code"] == "idempotency_conflict"
    other_tenant = client.post("/v1/jobs", json=body, headers={**auth.headers("globex"), "Idempotency-Key": "order-17"})
    assert other_tenant.json["id"] != first.json["id"]
    assert len(client.get("/v1/jobs", headers=auth.headers()).json["jobs"]) == 1
    too_long = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "k" * 256})
    assert too_long.status_code == 422


def test_tenant_limit_and_queue_full(no_workers: None, env: dict[str, str], redis, auth: AuthActions) -> None:
    """Past MAX_ACTIVE_JOBS_PER_TENANT: 429 tenant_limit; past MAX_QUEUED_JOBS: 503 queue_full; both with Retry-After."""
    env.update(MAX_ACTIVE_JOBS_PER_TENANT="2", MAX_QUEUED_JOBS="3")
    client = create_app(Settings.from_env(env)).test_client()
    for _ in range(2):
        assert client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers()).status_code == 202
    limited = client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers())
    assert limited.status_code == 429 and limited.json["code"] == "tenant_limit" and limited.headers["Retry-After"]
    assert client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers("globex")).status_code == 202
    full = client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers("globex"))
    assert full.status_code == 503 and full.json["code"] == "queue_full" and full.headers["Retry-After"]
    first = client.get("/v1/jobs", headers=auth.headers()).json["jobs"][0]["id"]
    client.delete(f"/v1/jobs/{first}", headers=auth.headers())
    assert client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers()).status_code == 202


def test_expired_pdf_is_gone_not_missing(private_db: dict[str, str], jobs: JobsClient, client: FlaskClient,
                                         auth: AuthActions, spawn_worker: Spawn) -> None:
    """After RESULT_TTL_S the download answers 410 expired and the stored file is purged."""
    private_db.update(RESULT_TTL_S="2")
    pdf_dir = Path(private_db["STORAGE_URL"].removeprefix("file://"))
    client = create_app(Settings.from_env(private_db)).test_client()
    jobs = JobsClient(client, auth)
    spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": "<p>short-lived</p>"})["id"])
    stored = pdf_dir / done["id"][:2] / f"{done['id']}.pdf"
    assert client.get(f"/v1/jobs/{done['id']}/pdf", headers=auth.headers()).status_code == 200
    assert stored.exists()
    time.sleep(3)
    gone = client.get(f"/v1/jobs/{done['id']}/pdf", headers=auth.headers())
    assert gone.status_code == 410 and gone.json["code"] == "expired"
    wait_until(lambda: not stored.exists(), timeout=40, interval=0.5)


def test_failed_job_can_be_retried(no_workers: None, env: dict[str, str], jobs: JobsClient, client: FlaskClient,
                                   auth: AuthActions, spawn_worker: Spawn) -> None:
    """POST /retry re-runs a failed job with fresh attempts."""
    job = jobs.submit({"html": "{{ nope }}"})
    spawn_worker(env)
    assert jobs.wait(job["id"])["status"] == "failed"
    retried = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers())
    assert retried.status_code == 202 and retried.json["attempts"] == 0 and retried.json["error"] is None
    again = jobs.wait(job["id"])
    assert again["status"] == "failed" and again["attempts"] == 1


@pytest.mark.usefixtures("workers")
def test_canceled_while_retrying_never_runs_again(jobs: JobsClient, client: FlaskClient, auth: AuthActions) -> None:
    """Canceling a job waiting for its next attempt removes it from the retry schedule."""
    job = jobs.submit({**SLOW, "timeout_s": 1, "max_retries": 3})
    jobs.wait(job["id"], ("retrying",), timeout=30)
    response = client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers())
    assert response.status_code == 200 and response.json["status"] == "canceled"
    time.sleep(6)  # longer than the first two backoff delays
    after = jobs.get(job["id"])
    assert after["status"] == "canceled" and after["attempts"] == 1


def race(app: Flask, method: str, path: str, headers: dict[str, str], threads: int = 4) -> list[TestResponse]:
    """The same request sent from `threads` threads at once, each with its own test client."""
    barrier = threading.Barrier(threads)
    responses: list[TestResponse] = []
    lock = threading.Lock()

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.open(path, method=method, headers=headers)
        with lock:
            responses.append(response)

    senders = [threading.Thread(target=send) for _ in range(threads)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return responses


def test_concurrent_cancels_cancel_once(no_workers: None, client: FlaskClient, auth: AuthActions, redis) -> None:
    """DELETEs racing on one queued job: one answers 200 canceled, the others 409 already_finished, none 500."""
    for _ in range(5):
        job_id = client.post("/v1/jobs", json={"html": "<p>x</p>"}, headers=auth.headers()).json["id"]
        responses = race(client.application, "DELETE", f"/v1/jobs/{job_id}", auth.headers())
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409], [r.json for r in responses]
        assert {r.json["code"] for r in responses if r.status_code == 409} == {"already_finished"}
        assert redis.lrange("rq:queue:normal", 0, -1) == []
        assert redis.hget(f"rq:job:{job_id}", "status") == b"canceled"


def test_cancel_during_handoff_to_a_worker_stops_it(no_workers: None, client: FlaskClient, auth: AuthActions,
                                                    redis) -> None:
    """A DELETE landing after a worker popped the job but before it started waits for the start and stops it."""
    job_id = client.post("/v1/jobs", json={"html": "<p>x</p>"}, headers=auth.headers()).json["id"]
    queue = Queue("normal", connection=redis)
    worker = Worker([queue], connection=redis, name=f"handoff-{job_id}")
    job, _ = Queue.dequeue_any([queue], None, connection=redis)  # what RQ's worker does; the fork comes next
    commands = redis.pubsub(ignore_subscribe_messages=True)
    commands.subscribe(f"rq:pubsub:{worker.name}")
    starting = threading.Timer(0.3, worker.prepare_job_execution, args=(job,))  # the work-horse starts the job
    starting.start()
    response = client.delete(f"/v1/jobs/{job_id}", headers=auth.headers())
    starting.join()
    assert response.status_code == 200 and response.json["status"] == "canceled"
    message = wait_until(lambda: commands.get_message(timeout=0.1), timeout=5)
    assert json.loads(message["data"]) == {"command": "stop-job", "job_id": job_id}
    assert redis.zscore("rq:canceled:normal", job_id) is None, "only the stop may end a job a worker holds"
    commands.close()


def test_concurrent_retries_enqueue_once(no_workers: None, client: FlaskClient, auth: AuthActions, redis) -> None:
    """Retries racing on one canceled job: one answers 202, the others 409 not_retryable; the id is queued once."""
    for _ in range(5):
        job_id = client.post("/v1/jobs", json={"html": "<p>x</p>"}, headers=auth.headers()).json["id"]
        assert client.delete(f"/v1/jobs/{job_id}", headers=auth.headers()).status_code == 200
        responses = race(client.application, "POST", f"/v1/jobs/{job_id}/retry", auth.headers())
        assert sorted(r.status_code for r in responses) == [202, 409, 409, 409], [r.json for r in responses]
        assert {r.json["code"] for r in responses if r.status_code == 409} == {"not_retryable"}
        waiting = redis.lrange("rq:queue:normal", 0, -1) + redis.lrange(keys.fair_held("normal", "acme"), 0, -1)
        assert [i.decode() for i in waiting].count(job_id) == 1, "in its queue or held back by fair share, once"


def test_idempotency_key_of_a_request_that_died_is_taken_over(no_workers: None, client: FlaskClient,
                                                              auth: AuthActions) -> None:
    """A key whose first request died before enqueueing is taken over once that claim is stale, and kept."""
    body = {"html": "<p>once</p>"}
    with client.application.test_request_context():
        assert claim_idempotency("acme", "order-died", body, "job-that-never-was") is None
    time.sleep(IDEMPOTENT_CREATE_S + 0.1)
    started = time.monotonic()
    repeat = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "order-died"})
    assert repeat.status_code == 202 and repeat.json["id"] != "job-that-never-was"
    assert time.monotonic() - started < IDEMPOTENT_CREATE_S / 2
    with client.application.test_request_context():  # the first request, failing late, frees only its own claim
        release_idempotency("acme", "order-died", "job-that-never-was")
    again = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "order-died"})
    assert again.json["id"] == repeat.json["id"]


def test_idempotency_key_outlives_its_expired_job(no_workers: None, client: FlaskClient, auth: AuthActions,
                                                  redis) -> None:
    """Once the key's job has expired (retention is shorter than the key's 24 h), a repeat creates a new job."""
    body = {"html": "<p>once</p>"}
    headers = {**auth.headers(), "Idempotency-Key": "order-expired"}
    first = client.post("/v1/jobs", json=body, headers=headers).json["id"]
    redis.delete(f"rq:job:{first}")  # what RESULT_TTL_S does to the record
    started = time.monotonic()
    repeat = client.post("/v1/jobs", json=body, headers=headers)
    assert repeat.status_code == 202 and repeat.json["id"] != first
    assert time.monotonic() - started < IDEMPOTENT_CREATE_S / 2
    assert client.get(f"/v1/jobs/{repeat.json['id']}", headers=auth.headers()).json["status"] == "queued"


def test_repeat_waits_for_the_job_being_created(no_workers: None, client: FlaskClient, auth: AuthActions,
                                               redis, settings: Settings) -> None:
    """A repeat arriving while the first request is still enqueueing gets that request's job, not a second one."""
    body = {"html": "<p>once</p>"}
    with client.application.test_request_context():
        assert claim_idempotency("acme", "order-slow", body, "slowjob") is None
    creating = threading.Timer(0.3, enqueue_render, args=(JobRequest.model_validate(body),),
                               kwargs={"tenant": "acme", "connection": redis, "settings": settings,
                                       "job_id": "slowjob"})
    creating.start()
    repeat = client.post("/v1/jobs", json=body, headers={**auth.headers(), "Idempotency-Key": "order-slow"})
    creating.join()
    assert repeat.status_code == 202 and repeat.json["id"] == "slowjob"
    assert [j["id"] for j in client.get("/v1/jobs", headers=auth.headers()).json["jobs"]] == ["slowjob"]
