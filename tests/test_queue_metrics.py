"""The alerting and scaling signals on /metrics: queue age, Redis reachability, scheduler passes."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue

from api import create_app
from shared.config import Settings
from shared.queue_age import oldest_ages
from tests.conftest import AuthActions, JobsClient
from tests.support import ROOT, wait_until


def samples(client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples if s.name == name}


@pytest.mark.usefixtures("no_workers")
def test_queue_age_is_the_wait_of_the_oldest_queued_job(jobs: JobsClient, redis: Redis, client) -> None:
    """pdf_queue_oldest_age_seconds{queue} grows with the first job's wait, ignores younger ones and is 0 when empty."""
    first = jobs.submit({"html": "<p>first</p>", "priority": "normal"})["id"]
    wait_until(lambda: samples(client, "pdf_queue_oldest_age_seconds")[(("queue", "normal"),)] >= 0.3,
               timeout=10, interval=0.05)
    jobs.submit({"html": "<p>second</p>", "priority": "normal"})
    ages = samples(client, "pdf_queue_oldest_age_seconds")
    assert ages[(("queue", "normal"),)] >= 0.3, "the younger job does not reset the age"
    assert ages[(("queue", "urgent"),)] == ages[(("queue", "high"),)] == ages[(("queue", "low"),)] == 0.0
    enqueued_at = Queue("normal", connection=redis).fetch_job(first).enqueued_at.timestamp()
    assert oldest_ages(redis, now=enqueued_at + 42.0)["normal"] == pytest.approx(42.0)
    assert samples(client, "pdf_queue_depth")[(("queue", "normal"),)] == 2


@pytest.mark.usefixtures("no_workers")
def test_queue_age_finds_the_oldest_behind_a_job_pushed_to_the_front(jobs: JobsClient, redis: Redis) -> None:
    """A younger job pushed at the head (RQ's at_front) or a deleted one there does not hide the oldest."""
    oldest = jobs.submit({"html": "<p>old</p>", "priority": "low"})["id"]
    queue = Queue("low", connection=redis)
    old_at = queue.fetch_job(oldest).enqueued_at.timestamp()
    wait_until(lambda: time.time() - old_at > 0.05, timeout=5, interval=0.01)
    young = queue.enqueue("tests.job_functions.pause", 0, at_front=True)
    queue.push_job_id("gone-job", at_front=True)  # an id whose job hash no longer exists
    assert redis.lrange(queue.key, 0, 2) == [b"gone-job", young.id.encode(), oldest.encode()]
    assert oldest_ages(redis, now=old_at + 10.0)["low"] == pytest.approx(10.0)


def test_metrics_report_redis_down_instead_of_failing(settings: Settings) -> None:
    """With Redis unreachable /metrics still answers 200 with pdf_redis_up 0 (an alert, not a scrape error)."""
    app = create_app(Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "API_KEYS": "t:k"}))
    assert samples(app.test_client(), "pdf_redis_up") == {(): 0.0}


def test_metrics_report_redis_up(client) -> None:
    """With Redis answering, pdf_redis_up is 1."""
    assert samples(client, "pdf_redis_up") == {(): 1.0}


def test_scheduler_stamps_every_pass(env: dict[str, str], client, redis: Redis, tmp_path: Path) -> None:
    """A running scheduler makes pdf_scheduler_last_pass_timestamp_seconds appear and keep moving."""
    assert samples(client, "pdf_scheduler_last_pass_timestamp_seconds") == {}
    log = open(tmp_path / "scheduler.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "worker.scheduler"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**env, "SCHEDULER_INTERVAL_S": "1"})
    try:
        first = wait_until(lambda: samples(client, "pdf_scheduler_last_pass_timestamp_seconds").get(()), timeout=30)
        assert abs(time.time() - first) < 30
        wait_until(lambda: samples(client, "pdf_scheduler_last_pass_timestamp_seconds")[()] > first, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
