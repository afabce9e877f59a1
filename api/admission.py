"""Who may enqueue now: body limits, per-tenant and global queue limits, idempotency keys."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import request

from api.context import ctx
from api.errors import ApiError
from shared import admission, keys
from shared.admission import CapacityExceeded, QueueFull, TenantLimitReached

IDEMPOTENCY_TTL_S = 24 * 3600
"""How long an Idempotency-Key maps to its first job, in seconds."""
MAX_IDEMPOTENCY_KEY_CHARS = 255


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


_CAPACITY_STATUS = {TenantLimitReached.code: 429, QueueFull.code: 503}


def check_capacity(tenant: str, new_jobs: int = 1) -> None:
    """429 tenant_limit when the tenant holds its share of active jobs, 503 queue_full when all queues are full."""
    try:
        admission.check_capacity(ctx().connection, ctx().settings, tenant, new_jobs)
    except CapacityExceeded as exc:
        raise ApiError(_CAPACITY_STATUS[exc.code], exc.code, str(exc),
                       headers={"Retry-After": str(exc.retry_after_s)}) from None


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
