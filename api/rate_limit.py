"""RATE_LIMIT_PER_MINUTE: how many jobs a tenant may submit per minute, and the RateLimit-* headers saying so."""
from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Flask, Response, g, request
from redis.exceptions import RedisError

from api.context import ctx
from api.errors import ApiError
from shared import keys

WINDOW_S = 60
"""The limit counts jobs per this many seconds."""
LIMITED_ENDPOINTS = frozenset({"jobs.create_job", "jobs.create_batch"})
"""Answers that carry RateLimit-Limit / -Remaining / -Reset while the limit is on."""

# A generic cell rate algorithm: the allowance refills one job every WINDOW_S / limit seconds, up to `limit`
# at once, so there is no window edge at which twice the limit gets through. The key holds the theoretical
# arrival time (TAT) after the last admitted job. ARGV: limit, jobs asked for (0 = only read).
# Returns {admitted, remaining, seconds until a job of this size fits, seconds until the allowance is full}.
_GCRA = """
local limit, cost, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = window / limit
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local after = tat + cost * interval
local fits_at = after - window
if cost > 0 and fits_at > now then
  return {0, math.floor((now + window - tat) / interval), tostring(fits_at - now), tostring(tat - now)}
end
if cost > 0 then
  redis.call('SET', KEYS[1], tostring(after), 'PX', math.ceil((after - now) * 1000))
else
  after = tat
end
return {1, math.floor((now + window - after) / interval), '0', tostring(after - now)}
"""


@dataclass(frozen=True)
class RateState:
    admitted: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_s: float

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(max(self.remaining, 0)),
                "RateLimit-Reset": str(math.ceil(self.reset_s))}


def _ask(tenant: str, jobs: int) -> RateState:
    limit = ctx().settings.rate_limit_per_minute
    admitted, remaining, retry_after, reset = ctx().connection.register_script(_GCRA)(
        keys=[keys.rate_limit(tenant)], args=[limit, jobs, WINDOW_S])
    return RateState(bool(admitted), limit, int(remaining), float(retry_after), float(reset))


def consume(tenant: str, jobs: int = 1) -> None:
    """Count `jobs` submissions, or refuse them all with 429 rate_limited; nothing to do while the limit is off."""
    if ctx().settings.rate_limit_per_minute <= 0:
        return
    state = _ask(tenant, jobs)
    g.rate_state = state
    if state.admitted:
        return
    limit = state.limit
    detail = (f"a batch of {jobs} jobs is more than the {limit} jobs per minute this tenant may submit"
              if jobs > limit else f"this tenant may submit {limit} jobs per minute; retry after the delay given")
    raise ApiError(429, "rate_limited", detail,
                   headers={"Retry-After": str(max(1, math.ceil(state.retry_after_s))), **state.headers()})


def _add_headers(response: Response) -> Response:
    if request.endpoint not in LIMITED_ENDPOINTS or ctx().settings.rate_limit_per_minute <= 0:
        return response
    tenant = g.get("tenant")
    if tenant is None:  # refused before a tenant was known (401)
        return response
    try:
        state = g.get("rate_state") or _ask(tenant, 0)
    except RedisError:  # the answer is already a 503 or is being sent; headers are a courtesy
        return response
    response.headers.update(state.headers())
    return response


def init_app(app: Flask) -> None:
    app.after_request(_add_headers)
