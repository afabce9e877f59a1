"""Workers keep their promises under strain: lost jobs found while busy, Redis outages, broken storage, quiet logs."""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.job import Job
from rq.registry import CanceledJobRegistry

import worker.process
from shared.config import Settings
from tests.conftest import JobsClient
from tests.support import RedisServer, WorkerProcess, kill_tree, wait_until
from tests.test_faults import SLOW

Spawn = Callable[..., WorkerProcess]
PAUSE = "tests.job_functions.pause"


def test_lost_job_is_found_while_every_live_worker_is_busy(private_db: dict[str, str], jobs: JobsClient,
                                                          spawn_worker: Spawn) -> None:
    """A busy worker's parent still runs maintenance, so a dead worker's job is re-queued before anyone is free."""
    connection = Redis.from_url(private_db["REDIS_URL"])
    spawn_worker(private_db)
    # Busy for longer than a loaded machine takes to start a second worker and find the lost job; stopped below.
    long_job = Queue("urgent", connection=connection).enqueue(PAUSE, 150, job_timeout=200)
    wait_until(lambda: long_job.get_status(refresh=True) == "started", timeout=20)
    victim = spawn_worker(private_db)
    job = jobs.submit({**SLOW, "max_retries": 2})
    jobs.wait_laying_out(job["id"])
    killed_at = time.monotonic()
    kill_tree(victim.pid)

    def lost() -> dict | None:
        current = jobs.get(job["id"])
        return current if current["error"] and current["error"]["code"] == "worker_lost" else None

    found = wait_until(lost, timeout=40, interval=0.5)
    assert time.monotonic() - killed_at < 28
    assert long_job.get_status(refresh=True) == "started", "found while the only live worker was still busy"
    assert found["status"] == "retrying" and found["attempts"] == 1
    send_stop_job_command(connection, long_job.id)
    assert jobs.wait(job["id"], timeout=90)["status"] == "completed"


def test_busy_worker_survives_a_redis_outage(env: dict[str, str], tmp_path: Path, spawn_worker: Spawn) -> None:
    """Heartbeats that fail while Redis is down are retried: the worker lives on and its job completes."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        env["REDIS_URL"] = server.url(0)
        busy = spawn_worker(env)
        job = Queue("normal", connection=Redis.from_url(server.url(0))).enqueue(PAUSE, 14, job_timeout=60)
        wait_until(lambda: job.get_status(refresh=True) == "started", timeout=20)
        server.stop()
        time.sleep(7)  # longer than the 5 s heartbeat interval
        assert busy.process.poll() is None
        server.start()
        wait_until(lambda: job.get_status(refresh=True) == "finished", timeout=40, interval=0.2)
        assert busy.process.poll() is None, "the worker quit on a failed heartbeat"
    finally:
        server.stop()


class _BrokenStorage:
    def purge_expired(self) -> int:
        raise OSError("the disk went away")


def test_maintenance_survives_storage_failure_and_trims_canceled_jobs(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A failing purge is logged, not raised (RQ would stop the worker), and old canceled ids leave RQ's registry."""
    monkeypatch.setattr(worker.process, "get_runtime", lambda: SimpleNamespace(settings=settings,
                                                                               storage=_BrokenStorage()))
    canceled = CanceledJobRegistry("normal", connection=redis)
    redis.zadd(canceled.key, {"long-gone": time.time() - settings.result_ttl_s - 60, "recent": time.time()})
    worker.process.build_worker(redis, settings).clean_registries()
    assert redis.zrange(canceled.key, 0, -1) == [b"recent"]
    assert [r for r in caplog.records if r.getMessage() == "expired PDF purge failed"]


@pytest.mark.usefixtures("redis")
def test_failing_job_leaves_its_data_out_of_worker_logs(workers: list[WorkerProcess], jobs: JobsClient) -> None:
    """An exception quoting template data stays out of the worker's log lines; the tenant still sees the message."""
    secret = "SSN-123-45-6789"
    job = jobs.submit({"html": "<p>{{ code | money }}</p>", "data": {"code": secret}, "max_retries": 0})
    failed = jobs.wait(job["id"])
    assert failed["status"] == "failed" and secret in failed["error"]["message"]

    def flushed() -> str:
        text = "".join(Path(w.log_path).read_text() for w in workers)
        return text if '"msg": "job attempt failed"' in text and job["id"] in text else ""

    assert secret not in wait_until(flushed, timeout=10)


@pytest.mark.usefixtures("redis")
def test_template_error_is_logged_as_a_warning_without_frames(workers: list[WorkerProcess], jobs: JobsClient) -> None:
    """A tenant's template error is a warning line naming its code, with no traceback frames and no error line."""
    job = jobs.submit({"html": "<p>{{ broken </p>", "data": {}, "max_retries": 0})
    failed = jobs.wait(job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "template_error"

    def lines() -> list[dict]:
        found = [json.loads(line) for w in workers for line in Path(w.log_path).read_text().splitlines()
                 if line.startswith("{") and job["id"] in line]
        return found if any(line.get("code") == "template_error" for line in found) else []

    about_job = wait_until(lines, timeout=10)
    assert not [line for line in about_job if line["level"] == "error"]
    assert not [line for line in about_job if "frames" in line]
    warning = next(line for line in about_job if line["msg"] == "job template error")
    assert warning["level"] == "warning" and warning["code"] == "template_error"


def test_job_canceled_before_it_starts_is_not_rendered(private_db: dict[str, str], jobs: JobsClient, redis: Redis,
                                                       spawn_worker: Spawn) -> None:
    """A job marked canceled while it was on its way to a worker (e.g. a retry being moved) steps aside."""
    job = jobs.submit({"html": "<p>never rendered</p>"})
    queued = Job.fetch(job["id"], connection=redis)
    queued.meta["canceled"] = True  # what a cancel racing the scheduler's move of a retry leaves behind
    queued.save_meta()
    spawn_worker(private_db)
    wait_until(lambda: queued.get_status(refresh=True) == "finished", timeout=30)
    after = jobs.get(job["id"])
    assert after["status"] == "canceled" and after["result"] is None and after["attempts"] == 0
    assert queued.return_value() is None


def test_worker_start_registers_every_queue(private_db: dict[str, str], redis: Redis, spawn_worker: Spawn) -> None:
    """A freshly started worker names all four queues in RQ's queue set, so `rq info` lists them before any job."""
    assert Queue.all(connection=redis) == []
    spawn_worker(private_db)
    assert sorted(queue.name for queue in Queue.all(connection=redis)) == ["high", "low", "normal", "urgent"]
