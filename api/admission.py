"""Who may enqueue now: body limits, per-tenant and global queue limits, idempotency keys."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, NoReturn

from flask import request
from rq.job import Job

from api.context import ctx
from api.errors import ApiError, field_problem
from api.lookup import was_expired
from shared import admission, keys
from shared.errors import CapacityExceeded, QueueFull, TenantLimitReached

IDEMPOTENCY_TTL_S = 24 * 3600
"""How long an Idempotency-Key maps to its first job, in seconds."""
IDEMPOTENT_CREATE_S = 2.0
"""How long a claimed key may lack its job before a repeat takes it over, in seconds: the claiming request
enqueues within milliseconds unless it died; until then a repeat waits for that job."""
IDEMPOTENT_POLL_S = 0.02
MAX_IDEMPOTENCY_KEY_CHARS = 255
# Compare-and-set on an idempotency record, so of two repeats taking over a stale key only one wins.
_REPLACE_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
_DELETE_IF_CLAIMED_FOR = """
local record = redis.call('GET', KEYS[1])
if record and cjson.decode(record).job_id == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


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
        raise field_problem("Idempotency-Key", "bad length",
                            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} characters")
    return key


def claim_idempotency(tenant: str, key: str, body: Any, job_id: str) -> str | None:
    """Reserve the key for `job_id`, or return the earlier job's id while that job lives or is being created.

    A key whose job has expired, or whose first request died before enqueueing, is taken over for `job_id`.
    """
    connection = ctx().connection
    redis_key = _idempotency_redis_key(tenant, key)
    # Keyed, because the body may hold encryption passwords: a plain hash of it would let whoever reads Redis
    # test guesses of a password against it.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body_hash = hmac.new(ctx().settings.secret_key.encode(), canonical, hashlib.sha256).hexdigest()
    record = json.dumps({"job_id": job_id, "body": body_hash, "claimed_at": time.time()})
    while True:
        if connection.set(redis_key, record, nx=True, ex=IDEMPOTENCY_TTL_S):
            return None
        earlier = connection.get(redis_key)
        if earlier is None:  # Expired in between: claim it afresh.
            continue
        stored = json.loads(earlier)
        if stored["body"] != body_hash:
            raise ApiError(422, "idempotency_conflict", "this Idempotency-Key was used with a different body")
        if Job.exists(stored["job_id"], connection=connection):
            return stored["job_id"]
        abandoned = time.time() - stored.get("claimed_at", 0) > IDEMPOTENT_CREATE_S
        if abandoned or was_expired(stored["job_id"], tenant):
            if connection.register_script(_REPLACE_IF_UNCHANGED)(keys=[redis_key],
                                                                 args=[earlier, record, IDEMPOTENCY_TTL_S]):
                return None
            continue  # Another repeat took it over first; look again.
        time.sleep(IDEMPOTENT_POLL_S)  # The first request is enqueueing its job right now.


def release_idempotency(tenant: str, key: str, job_id: str) -> None:
    """Free the key after `job_id` could not be enqueued, unless a repeat has taken it over meanwhile."""
    ctx().connection.register_script(_DELETE_IF_CLAIMED_FOR)(keys=[_idempotency_redis_key(tenant, key)],
                                                             args=[job_id])


def _idempotency_redis_key(tenant: str, key: str) -> str:
    return keys.idempotency(tenant, hashlib.sha256(key.encode()).hexdigest())
