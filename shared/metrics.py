"""Fleet-wide counters and render timings, kept in Redis so every process reports the same figures."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from redis import Redis
from redis.client import Pipeline

from shared import keys

RECENT_RENDERS = 1000
"""How many of the latest render times are kept for percentiles and wait estimates."""
RENDER_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds, in seconds, of the render-time histogram every worker adds to."""
THROUGHPUT_WINDOW_S = 300
DAILY_STATS_TTL_S = 8 * 86400
"""Per-day breakdowns are kept a week (plus a day) for the daily operations report."""


def day_of(moment: float | None = None) -> str:
    """The UTC day (YYYY-MM-DD) the daily breakdowns file a moment under."""
    return f"{datetime.fromtimestamp(moment or time.time(), timezone.utc):%Y-%m-%d}"


def _count_daily(pipe: Pipeline, outcome: str, priority: str, tenant: str, extra: str | None = None) -> None:
    day = keys.daily_stats(day_of())
    pipe.hincrby(day, f"{outcome}:priority:{priority}", 1)
    pipe.hincrby(day, f"{outcome}:tenant:{tenant}", 1)
    if extra:
        pipe.hincrby(day, f"{outcome}:code:{extra}", 1)
    pipe.expire(day, DAILY_STATS_TTL_S)


def record_enqueued(pipe: Pipeline, *, priority: str) -> None:
    pipe.hincrby(keys.stats("enqueued"), priority, 1)


@dataclass(frozen=True)
class RenderFigures:
    """What a completed render adds to the figures: its time (s), pages, and its worker's peak memory (MB)."""

    render_s: float
    pages: int
    worker: str
    peak_rss_mb: float


def record_completed(pipe: Pipeline, *, job_id: str, priority: str, tenant: str, figures: RenderFigures) -> None:
    """One job's success: counters, exact histogram buckets, recent times, throughput and memory."""
    now = time.time()
    render_s, pages, worker, peak_rss_mb = figures.render_s, figures.pages, figures.worker, figures.peak_rss_mb
    pipe.hincrby(keys.stats("completed"), priority, 1)
    pipe.hincrby(keys.stats("pages"), priority, pages)
    bucket = next((b for b in RENDER_BUCKETS_S if render_s <= b), "+Inf")
    pipe.hincrby(keys.stats("render_hist"), str(bucket), 1)
    pipe.hincrbyfloat(keys.stats("render_hist"), "sum", render_s)
    pipe.lpush(keys.stats("render_ms"), round(render_s * 1000, 1))
    pipe.ltrim(keys.stats("render_ms"), 0, RECENT_RENDERS - 1)
    pipe.zadd(keys.stats("recent_completions"), {job_id: now})
    pipe.zremrangebyscore(keys.stats("recent_completions"), 0, now - THROUGHPUT_WINDOW_S)
    pipe.zadd(keys.PEAK_RSS_MB, {worker: peak_rss_mb}, gt=True)
    _count_daily(pipe, "completed", priority, tenant)
    day_times = keys.daily_render_ms(day_of(now))
    pipe.lpush(day_times, round(render_s * 1000, 1))
    pipe.expire(day_times, DAILY_STATS_TTL_S)


def record_failed(pipe: Pipeline, *, priority: str, tenant: str, code: str) -> None:
    pipe.hincrby(keys.stats("failed"), priority, 1)
    pipe.hincrby(keys.stats("failed_by_code"), code, 1)
    _count_daily(pipe, "failed", priority, tenant, code)


def record_canceled(pipe: Pipeline, *, priority: str, tenant: str) -> None:
    pipe.hincrby(keys.stats("canceled"), priority, 1)
    _count_daily(pipe, "canceled", priority, tenant)


class WebhookOutcome(str, Enum):
    """How one delivery attempt ended: `rejected` (non-2xx, timeout, connection error) is retried."""

    DELIVERED = "delivered"
    REJECTED = "rejected"
    REFUSED = "refused"


def record_webhook(connection: Redis, outcome: WebhookOutcome) -> None:
    connection.hincrby(keys.stats("webhooks"), outcome.value, 1)


def record_scheduler_pass(connection: Redis) -> None:
    """Stamped on every pass, so an alert can tell a silent scheduler from an idle one."""
    connection.set(keys.SCHEDULER_LAST_PASS, time.time())


@dataclass(frozen=True)
class FleetStats:
    """A snapshot of the counters every process wrote, read in one round trip."""

    enqueued: dict[str, int]
    completed: dict[str, int]
    failed: dict[str, int]
    canceled: dict[str, int]
    failed_by_code: dict[str, int]
    render_hist: dict[str, float]
    recent_render_ms: list[float]
    completions_last_minute: int
    peak_rss_mb: float
    webhooks: dict[str, int]
    scheduler_last_pass: float | None

    @classmethod
    def read(cls, connection: Redis) -> FleetStats:
        now = time.time()
        with connection.pipeline(transaction=False) as pipe:
            for name in ("enqueued", "completed", "failed", "canceled", "failed_by_code", "render_hist"):
                pipe.hgetall(keys.stats(name))
            pipe.lrange(keys.stats("render_ms"), 0, -1)
            pipe.zcount(keys.stats("recent_completions"), now - 60, now)
            pipe.zrange(keys.PEAK_RSS_MB, -1, -1, withscores=True)
            pipe.hgetall(keys.stats("webhooks"))
            pipe.get(keys.SCHEDULER_LAST_PASS)
            enq, comp, fail, canc, codes, hist, recent, last_minute, rss, hooks, last_pass = pipe.execute()

        def ints(raw: dict[bytes, bytes]) -> dict[str, int]:
            return {k.decode(): int(v) for k, v in raw.items()}

        return cls(ints(enq), ints(comp), ints(fail), ints(canc), ints(codes),
                   {k.decode(): float(v) for k, v in hist.items()}, [float(ms) for ms in recent],
                   int(last_minute), float(rss[0][1]) if rss else 0.0, ints(hooks),
                   float(last_pass) if last_pass else None)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no data."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]
