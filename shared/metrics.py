"""Fleet-wide counters and render timings, kept in Redis so every process reports the same figures."""
from __future__ import annotations

from redis.client import Pipeline

from shared import keys

RECENT_RENDERS = 1000
"""How many of the latest render times are kept for percentiles and wait estimates."""


def record_completed(pipe: Pipeline, *, priority: str, render_s: float, pages: int) -> None:
    pipe.hincrby(keys.stats("completed"), priority, 1)
    pipe.lpush(keys.stats("render_ms"), round(render_s * 1000, 1))
    pipe.ltrim(keys.stats("render_ms"), 0, RECENT_RENDERS - 1)
    pipe.hincrby(keys.stats("pages"), priority, pages)


def record_failed(pipe: Pipeline, *, priority: str, code: str) -> None:
    pipe.hincrby(keys.stats("failed"), priority, 1)
    pipe.hincrby(keys.stats("failed_by_code"), code, 1)


def record_canceled(pipe: Pipeline, *, priority: str) -> None:
    pipe.hincrby(keys.stats("canceled"), priority, 1)
