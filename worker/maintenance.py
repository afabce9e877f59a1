"""System jobs the scheduler runs: the queue status line and the daily operations report."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from shared import keys, metrics
from shared.enqueue import enqueue_render
from shared.metrics import FleetStats, percentile
from shared.fair_share import FairShare
from shared.queues import QUEUE_ORDER
from shared.schema import JobRequest
from shared.workers import live_workers
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

OPS_TENANT = "ops"
"""Tenant that owns the daily operations reports; give it a key in API_KEYS to download them."""
REPORT_TEMPLATE = "internal/ops_report.html"


def queue_status() -> dict[str, Any]:
    """One JSON log line every 5 minutes: depth per priority, workers, totals, render time, memory."""
    connection = get_runtime().connection
    stats = FleetStats.read(connection)
    workers = live_workers(connection)
    waiting = FairShare(get_runtime().settings).waiting(connection)
    status = {
        "queued": {name: counts.total for name, counts in waiting.items()},
        "workers_total": len(workers),
        "workers_busy": sum(w.get_state() == "busy" for w in workers),
        "processed": sum(stats.completed.values()),
        "failed": sum(stats.failed.values()),
        "avg_render_ms": round(sum(stats.recent_render_ms) / len(stats.recent_render_ms), 1)
        if stats.recent_render_ms else 0.0,
        "peak_worker_rss_mb": round(stats.peak_rss_mb, 1),
        "redis_used_mb": round(int(connection.info("memory")["used_memory"]) / 2**20, 1),
    }
    log.info("queue status", extra=status)
    return status


def report_data(day: datetime) -> dict[str, Any]:
    """The previous day's figures, from the per-day counters workers and the API wrote."""
    connection = get_runtime().connection
    day_name = metrics.day_of(day.timestamp())
    counts = {k.decode(): int(v) for k, v in connection.hgetall(keys.daily_stats(day_name)).items()}
    render_ms = sorted(float(v) for v in connection.lrange(keys.daily_render_ms(day_name), 0, -1))

    def breakdown(outcome: str, kind: str) -> dict[str, int]:
        prefix = f"{outcome}:{kind}:"
        return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix)}

    tenants = sorted(set(breakdown("completed", "tenant")) | set(breakdown("failed", "tenant")))
    return {
        "day": f"{day:%Y-%m-%d}",
        "generated_at": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "priorities": [{"name": p.value, "completed": breakdown("completed", "priority").get(p.value, 0),
                        "failed": breakdown("failed", "priority").get(p.value, 0),
                        "canceled": breakdown("canceled", "priority").get(p.value, 0)} for p in QUEUE_ORDER],
        "tenants": [{"name": t, "completed": breakdown("completed", "tenant").get(t, 0),
                     "failed": breakdown("failed", "tenant").get(t, 0)} for t in tenants],
        "failures": sorted(breakdown("failed", "code").items(), key=lambda kv: -kv[1]),
        "render": {"count": len(render_ms), "p50": percentile(render_ms, 0.5), "p90": percentile(render_ms, 0.9),
                   "p95": percentile(render_ms, 0.95), "p99": percentile(render_ms, 0.99),
                   "max": render_ms[-1] if render_ms else 0.0},
    }


def daily_report(day: str | None = None) -> str:
    """Render yesterday's (or `day`'s) operations report as an ordinary job of the ops tenant."""
    runtime = get_runtime()
    when = (datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc) if day
            else datetime.now(timezone.utc) - timedelta(days=1))
    request = JobRequest(template=REPORT_TEMPLATE, data=report_data(when), priority="low",
                         filename=f"operations-{when:%Y-%m-%d}.pdf", metadata={"report": "daily-operations"})
    job = enqueue_render(request, tenant=OPS_TENANT, connection=runtime.connection, settings=runtime.settings,
                         job_id=f"ops-report-{when:%Y-%m-%d}-{int(time.time())}")
    runtime.connection.set(keys.LATEST_OPS_REPORT, job.id)
    log.info("daily report enqueued", extra={"job_id": job.id, "day": f"{when:%Y-%m-%d}"})
    return job.id
