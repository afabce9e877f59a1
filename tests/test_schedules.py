"""Recurring jobs: the schedules API, cron semantics, exactly-once firing with two schedulers."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis

from shared import keys
from tests.conftest import AuthActions, JobsClient
from tests.support import ROOT, wait_until

JOB = {"template": "letter.html", "data": {}}


@pytest.fixture
def letter_job(client, auth: AuthActions) -> dict:
    templates = client.get("/v1/templates", headers=auth.headers()).json["templates"]
    return {"template": "letter.html", "data": next(t for t in templates if t["name"] == "letter.html")["sample_data"]}


@pytest.fixture
def schedulers(env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two scheduler processes on the same Redis, as after a deploy slip."""
    procs = [subprocess.Popen([sys.executable, "-m", "worker.scheduler"], cwd=ROOT,
                              env={**env, "SCHEDULER_INTERVAL_S": "1"}, stdout=open(tmp_path / f"s{i}.log", "wb"),
                              stderr=subprocess.STDOUT) for i in range(2)]
    yield procs
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


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
    time.sleep(2.5)
    assert len(scheduled_jobs(client, auth, schedule["id"])) == len(fired)


def test_system_schedules_registered_once_across_restarts(redis, schedulers, env: dict[str, str]) -> None:
    """Re-deploying (more scheduler starts) never registers a system schedule twice."""
    from rq_scheduler import Scheduler

    wait_until(lambda: redis.zcard("rq:scheduler:scheduled_jobs") >= 3, timeout=20)
    subprocess.run([sys.executable, "-c", "import worker.scheduler as s, shared.config as c, shared.connection as n;"
                    "s.register_system_schedules(s.PdfScheduler(connection=n.connect(c.Settings.from_env()),"
                    " settings=None))"], cwd=ROOT, env=env, check=True, timeout=30)
    ids = [i.decode() for i in redis.zrange("rq:scheduler:scheduled_jobs", 0, -1)]
    assert sorted(ids) == ["pdfq-system-cleanup", "pdfq-system-daily-report", "pdfq-system-queue-status"]
    assert len(list(Scheduler(connection=redis).get_jobs())) == 3
