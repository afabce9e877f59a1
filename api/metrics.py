"""GET /metrics (Prometheus) and GET /v1/queue/stats, both from the fleet-wide figures in Redis."""
from __future__ import annotations

from typing import Any, Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from redis import Redis
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from api.auth import require_tenant
from api.context import ctx
from shared.metrics import RENDER_BUCKETS_S, FleetStats, percentile
from shared.queues import QUEUE_ORDER, all_queues
from shared.workers import live_count, live_workers

bp = Blueprint("metrics", __name__)


class FleetCollector:
    """Reads Redis at scrape time, so any API process reports the whole fleet."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        stats = FleetStats.read(self.connection)
        enqueued = CounterMetricFamily("pdf_jobs_enqueued", "Jobs accepted, by priority", labels=["priority"])
        completed = CounterMetricFamily("pdf_jobs_completed", "Jobs rendered and stored", labels=["priority"])
        failed = CounterMetricFamily("pdf_jobs_failed", "Jobs that ended failed", labels=["priority"])
        for priority in QUEUE_ORDER:
            enqueued.add_metric([priority.value], stats.enqueued.get(priority.value, 0))
            completed.add_metric([priority.value], stats.completed.get(priority.value, 0))
            failed.add_metric([priority.value], stats.failed.get(priority.value, 0))
        yield from (enqueued, completed, failed)
        by_code = CounterMetricFamily("pdf_jobs_failed_by_code", "Final failures by error code", labels=["code"])
        for code, count in sorted(stats.failed_by_code.items()):
            by_code.add_metric([code], count)
        yield by_code
        depth = GaugeMetricFamily("pdf_queue_depth", "Jobs waiting in each priority queue", labels=["queue"])
        for queue in all_queues(self.connection):
            depth.add_metric([queue.name], queue.count)
        yield depth
        yield GaugeMetricFamily("pdf_workers", "Live worker processes (registration not lapsed)",
                                value=live_count(self.connection))
        cumulative, buckets = 0.0, []
        for bound in RENDER_BUCKETS_S:
            cumulative += stats.render_hist.get(str(bound), 0)
            buckets.append((str(bound), cumulative))
        total = cumulative + stats.render_hist.get("+Inf", 0)
        buckets.append(("+Inf", total))
        yield HistogramMetricFamily("pdf_render_seconds", "Render time of completed jobs", buckets=buckets,
                                    sum_value=stats.render_hist.get("sum", 0.0))


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(ctx().connection))  # type: ignore[arg-type]
    # generate_latest writes text format 0.0.4 (the contract's); CONTENT_TYPE_LATEST now names 1.0.0.
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@bp.get("/v1/queue/stats")
@require_tenant
def queue_stats() -> Any:
    connection = ctx().connection
    stats = FleetStats.read(connection)
    queues = {}
    for queue in all_queues(connection):
        queues[queue.name] = {
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
        }
    workers = live_workers(connection)
    recent = stats.recent_render_ms
    return {
        "queues": queues,
        "workers": {"total": len(workers), "busy": sum(w.get_state() == "busy" for w in workers)},
        "jobs": {"completed": sum(stats.completed.values()), "failed": sum(stats.failed.values()),
                 "canceled": sum(stats.canceled.values())},
        "render_ms": {"avg": round(sum(recent) / len(recent), 1) if recent else 0.0,
                      "p50": percentile(recent, 0.5), "p95": percentile(recent, 0.95)},
        "throughput_per_min": float(stats.completions_last_minute),
        "peak_rss_mb": round(stats.peak_rss_mb, 1),
    }
