"""Signed webhooks, sent by workers to a real local HTTP receiver, retried, and refused for private targets."""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from shared.config import Settings
from tests.conftest import AuthActions, JobsClient
from tests.support import RecordingServer, WorkerProcess, wait_until


class Receiver(RecordingServer):
    """A webhook endpoint answering the statuses it is told to, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        super().__init__(lambda method, path: (self.statuses.pop(0) if self.statuses else 200, {}, b""))
        self.hook_url = self.url("/hooks/pdf")

    @property
    def deliveries(self) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for method, _, headers, body in self.requests if method == "POST"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.stop()


@pytest.fixture
def hooks_env(private_db: dict[str, str]) -> dict[str, str]:
    private_db.update(ALLOW_PRIVATE_WEBHOOKS="1", WEBHOOK_SECRET="whsec-test-123")
    return private_db


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (the README shows the same few lines)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Signature-256"])


def test_completed_job_posts_signed_resource(hooks_env: dict[str, str], jobs: JobsClient, receiver: Receiver,
                                             spawn_worker: Callable[..., WorkerProcess]) -> None:
    """On completion the worker POSTs the job resource, signed with WEBHOOK_SECRET over the raw body."""
    spawn_worker(hooks_env)
    job = jobs.submit({"html": "<p>hook</p>", "webhook_url": receiver.hook_url, "metadata": {"order": 7}})
    jobs.wait(job["id"])
    wait_until(lambda: receiver.deliveries, timeout=20)
    headers, body = receiver.deliveries[0]
    assert verify("whsec-test-123", headers, body)
    assert not verify("wrong-secret", headers, body)
    payload = json.loads(body)
    assert payload["id"] == job["id"] and payload["status"] == "completed"
    assert payload["result"]["pages"] == 1 and payload["metadata"] == {"order": 7}
    assert headers["X-Pdfq-Event"] == "job.completed"
    assert jobs.client.get(payload["links"]["pdf"]).status_code == 200


def webhook_logs(worker: WorkerProcess) -> list[dict]:
    records = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    return [r for r in records if r["msg"].startswith("webhook")]


def test_failed_delivery_is_retried_with_backoff(hooks_env: dict[str, str], jobs: JobsClient,
                                                 spawn_worker: Callable[..., WorkerProcess]) -> None:
    """A receiver answering 500 gets the same event, under the same delivery id, until it answers 2xx; /metrics counts each attempt."""
    flaky = Receiver(statuses=[500, 503])
    try:
        worker = spawn_worker(hooks_env)
        job = jobs.submit({"html": "{{ missing }}", "webhook_url": flaky.hook_url})
        assert jobs.wait(job["id"])["status"] == "failed"
        wait_until(lambda: len(flaky.deliveries) == 3, timeout=40)
        bodies = [json.loads(body) for _, body in flaky.deliveries]
        assert all(b["status"] == "failed" and b["error"]["code"] == "template_error" for b in bodies)
        assert {h["X-Pdfq-Event"] for h, _ in flaky.deliveries} == {"job.failed"}
        assert len({h["X-Pdfq-Delivery"] for h, _ in flaky.deliveries}) == 1, "receivers can drop the repeats"
        wait_until(lambda: any(r["msg"] == "webhook delivered" for r in webhook_logs(worker)), timeout=10)
        assert [(r["msg"], r["status"]) for r in webhook_logs(worker)] == [
            ("webhook rejected", 500), ("webhook rejected", 503), ("webhook delivered", 200)]
        metrics = {(s.labels["outcome"], s.value) for family in text_string_to_metric_families(
            jobs.client.get("/metrics").text) for s in family.samples if s.name == "pdf_webhook_deliveries_total"}
        assert metrics == {("delivered", 1), ("rejected", 2), ("refused", 0)}
    finally:
        flaky.stop()


def test_rerun_job_gets_a_new_delivery_id(hooks_env: dict[str, str], jobs: JobsClient, client, auth: AuthActions,
                                         receiver: Receiver, spawn_worker: Callable[..., WorkerProcess]) -> None:
    """A job retried after failing reports its new outcome under a new delivery id (it is a new event)."""
    spawn_worker(hooks_env)
    job = jobs.submit({"html": "{{ missing }}", "webhook_url": receiver.hook_url, "max_retries": 0})
    assert jobs.wait(job["id"])["status"] == "failed"
    wait_until(lambda: len(receiver.deliveries) == 1, timeout=20)
    assert client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers()).status_code == 202
    wait_until(lambda: len(receiver.deliveries) == 2, timeout=20)
    assert len({headers["X-Pdfq-Delivery"] for headers, _ in receiver.deliveries}) == 2


def test_no_delivery_without_webhook_secret(hooks_env: dict[str, str], jobs: JobsClient, receiver: Receiver,
                                            spawn_worker: Callable[..., WorkerProcess]) -> None:
    """With WEBHOOK_SECRET empty a worker sends nothing (an empty-key signature is forgeable) and says why."""
    worker = spawn_worker({**hooks_env, "WEBHOOK_SECRET": ""})
    job = jobs.submit({"html": "<p>x</p>", "webhook_url": receiver.hook_url})
    assert jobs.wait(job["id"])["status"] == "completed"
    wait_until(lambda: webhook_logs(worker), timeout=20)
    assert [(r["msg"], r["job_id"]) for r in webhook_logs(worker)] == [
        ("webhook not sent: WEBHOOK_SECRET unset", job["id"])]
    assert receiver.deliveries == []


def test_private_target_refused_at_delivery(private_db: dict[str, str], auth: AuthActions, receiver: Receiver,
                                            spawn_worker: Callable[..., WorkerProcess]) -> None:
    """Even if an API accepted a private URL, a worker without ALLOW_PRIVATE_WEBHOOKS never contacts it."""
    api = JobsClient(create_app(Settings.from_env({**private_db, "ALLOW_PRIVATE_WEBHOOKS": "1"})).test_client(), auth)
    worker = spawn_worker(private_db)
    job = api.submit({"html": "<p>x</p>", "webhook_url": receiver.hook_url})
    assert api.wait(job["id"])["status"] == "completed"
    wait_until(lambda: "webhook refused" in worker.log_path.read_text(), timeout=20)
    assert receiver.deliveries == []


def test_canceled_queued_job_notifies(hooks_env: dict[str, str], jobs: JobsClient, client, auth: AuthActions,
                                      receiver: Receiver, spawn_worker: Callable[..., WorkerProcess]) -> None:
    """Canceling a queued job sends job.canceled once a worker is there to deliver it."""
    job = jobs.submit({"html": "<p>x</p>", "webhook_url": receiver.hook_url, "priority": "low"})
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers()).status_code == 200
    spawn_worker(hooks_env)
    wait_until(lambda: receiver.deliveries, timeout=20)
    headers, body = receiver.deliveries[0]
    assert headers["X-Pdfq-Event"] == "job.canceled" and json.loads(body)["status"] == "canceled"
