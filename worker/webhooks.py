"""Signed webhook delivery: POST the final job resource, retried with backoff; never fails a render."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
import uuid
from urllib.parse import urlsplit

from rq.exceptions import NoSuchJobError
from rq.job import Job

from shared.job_state import JobState
from shared.links import job_links
from shared.metrics import WebhookOutcome, record_webhook
from shared.netguard import BlockedTarget, PinnedHTTPSConnection, check_url_shape, resolve_public
from shared.records import FINAL_STATUSES, status_of, to_resource
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 10
FINAL_STATE_WAIT_S = 5.0
"""How long delivery waits for RQ to persist the final status it was enqueued for."""
DELIVERY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pdfq.dev/webhooks")
"""Namespace of the name-based (UUID 5) delivery ids."""


class WebhookRejected(Exception):
    """The receiver answered non-2xx or timed out; RQ retries the delivery with backoff."""


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over the exact bytes sent."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_id(job_id: str, event: str, finished_at: str | None) -> str:
    """The same for every retry of one event, so receivers can drop duplicates; a re-run job's new
    outcome (another `finished_at`) gets a new one."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{job_id}:{event}:{finished_at}").hex


def _final_job(job_id: str) -> Job | None:
    connection = get_runtime().connection
    deadline = time.monotonic() + FINAL_STATE_WAIT_S
    while True:
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            return None
        if status_of(job) in FINAL_STATUSES or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def _connection(url: str, allow_private: bool) -> http.client.HTTPConnection:
    """A connection to the vetted address (no DNS rebinding between check and use)."""
    parts = urlsplit(url)
    if allow_private:
        check_url_shape(url)
        address = parts.hostname or ""
    else:
        address = resolve_public(url)
    if parts.scheme == "https":
        return PinnedHTTPSConnection(parts.hostname or "", address, port=parts.port or 443, timeout=DELIVERY_TIMEOUT_S)
    return http.client.HTTPConnection(address, parts.port or 80, timeout=DELIVERY_TIMEOUT_S)


def deliver_webhook(job_id: str, event: str) -> int | None:
    """Returns the receiver's status; raises on non-2xx so RQ retries; refused targets are dropped."""
    runtime = get_runtime()
    if not runtime.settings.webhook_secret:
        # An HMAC under an empty key proves nothing: anyone could forge it.
        log.error("webhook not sent: WEBHOOK_SECRET unset", extra={"job_id": job_id, "event": event})
        return None
    job = _final_job(job_id)
    if job is None:
        return None
    state = JobState.from_job(job)
    url = state.webhook_url
    if not url:
        return None
    resource = to_resource(job, links=job_links(runtime.settings, state.tenant, job.id))
    body = json.dumps(resource, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "pdfq-webhooks",
        "X-Signature-256": sign(runtime.settings.webhook_secret, body),
        "X-Pdfq-Event": event,
        "X-Pdfq-Delivery": delivery_id(job.id, event, resource["finished_at"]),
    }
    try:
        connection = _connection(url, runtime.settings.allow_private_webhooks)
    except BlockedTarget as exc:
        log.warning("webhook refused", extra={"job_id": job_id, "reason": str(exc)})
        record_webhook(runtime.connection, WebhookOutcome.REFUSED)
        return None
    parts = urlsplit(url)
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                           headers={**headers, "Host": parts.netloc})
        status = connection.getresponse().status
    except OSError as exc:
        record_webhook(runtime.connection, WebhookOutcome.REJECTED)
        raise WebhookRejected(f"delivery to {parts.hostname} failed: {type(exc).__name__}") from None
    finally:
        connection.close()
    if not 200 <= status < 300:
        log.warning("webhook rejected", extra={"job_id": job_id, "event": event, "status": status})
        record_webhook(runtime.connection, WebhookOutcome.REJECTED)
        raise WebhookRejected(f"receiver answered HTTP {status}")
    log.info("webhook delivered", extra={"job_id": job_id, "event": event, "status": status})
    record_webhook(runtime.connection, WebhookOutcome.DELIVERED)
    return status
