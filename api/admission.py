"""Who may enqueue now: body limits, per-tenant and global queue limits, idempotency keys."""
from __future__ import annotations

import hashlib
import json
from typing import Any, NoReturn

from flask import request
from rq.job import Job

from api.context import ctx
from api.errors import ApiError
from shared import keys
from shared.queues import all_queues
from shared.records import FINAL_STATUSES, status_of

IDEMPOTENCY_TTL_S = 24 * 3600
"""How long an Idempotency-Key maps to its first job, in seconds."""
MAX_IDEMPOTENCY_KEY_CHARS = 255
TENANT_RETRY_AFTER_S = 10
QUEUE_FULL_RETRY_AFTER_S = 30


def json_body() -> Any:
    """The request's JSON, after media-type and size checks (415, 413, 400)."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    limit = ctx().settings.max_payload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser can follow
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def _refuse_constant(name: str) -> NoReturn:
    """NaN and the infinities are not JSON: accepted, they would be echoed back as invalid JSON."""
    raise ValueError(f"{name} is not JSON")


def _prune_active(tenant: str) -> int:
    """Drop ids that are no longer queued or running (a crashed path may have left them)."""
    connection = ctx().connection
    members = [m.decode() for m in connection.smembers(keys.active_jobs(tenant))]
    jobs = Job.fetch_many(members, connection=connection)  # one round trip
    stale = [job_id for job_id, job in zip(members, jobs) if job is None or status_of(job) in FINAL_STATUSES]
    if stale:
        connection.srem(keys.active_jobs(tenant), *stale)
    return len(members) - len(stale)


def check_capacity(tenant: str, new_jobs: int = 1) -> None:
    """429 when the tenant holds its share of active jobs, 503 when all queues are full."""
    settings = ctx().settings
    connection = ctx().connection
    limit = settings.max_active_jobs_per_tenant
    with connection.pipeline(transaction=False) as pipe:  # one round trip for both limits
        pipe.scard(keys.active_jobs(tenant))
        for queue in all_queues(connection):
            pipe.llen(queue.key)
        active, *lengths = pipe.execute()
    if active + new_jobs > limit and _prune_active(tenant) + new_jobs > limit:
        raise ApiError(429, "tenant_limit", f"tenant has {limit} queued or running jobs; wait for some to finish",
                       headers={"Retry-After": str(TENANT_RETRY_AFTER_S)})
    if sum(lengths) + new_jobs > settings.max_queued_jobs:
        raise ApiError(503, "queue_full", "the service is at capacity; retry later",
                       headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)})


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise ApiError(422, "validation_error", f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} characters",
                       errors=[{"field": "Idempotency-Key", "message": "bad length"}])
    return key


def claim_idempotency(tenant: str, key: str, body: Any, job_id: str) -> str | None:
    """Reserve the key for `job_id`; return the earlier job's id if the key was already used."""
    connection = ctx().connection
    redis_key = keys.idempotency(tenant, hashlib.sha256(key.encode()).hexdigest())
    body_hash = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    record = json.dumps({"job_id": job_id, "body": body_hash})
    if connection.set(redis_key, record, nx=True, ex=IDEMPOTENCY_TTL_S):
        return None
    earlier = connection.get(redis_key)
    if earlier is None:  # Expired between the two calls: treat as new.
        connection.set(redis_key, record, ex=IDEMPOTENCY_TTL_S)
        return None
    stored = json.loads(earlier)
    if stored["body"] != body_hash:
        raise ApiError(422, "idempotency_conflict", "this Idempotency-Key was used with a different body")
    return stored["job_id"]


def release_idempotency(tenant: str, key: str) -> None:
    ctx().connection.delete(keys.idempotency(tenant, hashlib.sha256(key.encode()).hexdigest()))
