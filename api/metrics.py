"""GET /metrics (Prometheus) and GET /v1/queue/stats, both from the fleet-wide figures in Redis."""
from __future__ import annotations

import time
from typing import Any, Iterator

from flask import Blueprint, Response, g
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from api.auth import require_tenant
from api.context import ctx
from shared.fair_share import FairShare
from shared.job_state import JobState
from shared.metrics import RENDER_BUCKETS_S, FleetStats, WebhookOutcome, percentile
from shared.queues import QUEUE_ORDER, all_queues
from shared.workers import live_count, live_workers

bp = Blueprint("metrics", __name__)

REDIS_UP_HELP = "1 if this API process reached Redis for this scrape"


class FleetCollector:
    """Reads Redis at scrape time, so any API process reports the whole fleet."""

    def __init__(self, connection: Redis, fair: FairShare) -> None:
        self.connection = connection
        self.fair = fair

    def collect(self) -> Iterator[Metric]:
        """Everything is read before anything is yielded, so a Redis outage gives `pdf_redis_up 0` alone."""
        try:
            stats = FleetStats.read(self.connection)
            waiting = self.fair.waiting(self.connection)
            workers = live_count(self.connection)
        except RedisError:
            yield GaugeMetricFamily("pdf_redis_up", REDIS_UP_HELP, value=0)
            return
        yield GaugeMetricFamily("pdf_redis_up", REDIS_UP_HELP, value=1)
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
        depth = GaugeMetricFamily("pdf_queue_depth", "Jobs waiting in each priority queue (fair-share held "
                                  "jobs included)", labels=["queue"])
        tenants = GaugeMetricFamily("pdf_queue_tenants_waiting", "Tenants with jobs waiting in each priority queue",
                                    labels=["queue"])
        age = GaugeMetricFamily("pdf_queue_oldest_age_seconds", "Seconds the oldest waiting job of each queue "
                                "has waited, held jobs included (0 when empty)", labels=["queue"])
        for name, counts in waiting.items():
            depth.add_metric([name], counts.total)
            tenants.add_metric([name], counts.tenants)
            age.add_metric([name], round(counts.oldest_age_s, 3))
        yield from (depth, tenants, age)
        yield GaugeMetricFamily("pdf_workers", "Live worker processes (registration not lapsed)", value=workers)
        cumulative, buckets = 0.0, []
        for bound in RENDER_BUCKETS_S:
            cumulative += stats.render_hist.get(str(bound), 0)
            buckets.append((str(bound), cumulative))
        total = cumulative + stats.render_hist.get("+Inf", 0)
        buckets.append(("+Inf", total))
        yield HistogramMetricFamily("pdf_render_seconds", "Render time of completed jobs", buckets=buckets,
                                    sum_value=stats.render_hist.get("sum", 0.0))
        webhooks = CounterMetricFamily("pdf_webhook_deliveries", "Webhook delivery attempts by outcome",
                                       labels=["outcome"])
        for outcome in WebhookOutcome:
            webhooks.add_metric([outcome.value], stats.webhooks.get(outcome.value, 0))
        yield webhooks
        if stats.scheduler_last_pass is not None:
            yield GaugeMetricFamily("pdf_scheduler_last_pass_timestamp_seconds",
                                    "Unix time of the newest scheduler pass", value=stats.scheduler_last_pass)


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(ctx().connection, ctx().fair))  # type: ignore[arg-type]
    # generate_latest writes text format 0.0.4 (the contract's); CONTENT_TYPE_LATEST now names 1.0.0.
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@bp.get("/v1/queue/stats")
@require_tenant
def queue_stats() -> Any:
    connection = ctx().connection
    stats = FleetStats.read(connection)
    waiting = ctx().fair.waiting(connection)
    queues = {}
    for queue in all_queues(connection):
        queues[queue.name] = {
            "queued": waiting[queue.name].total,
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
        "tenant": tenant_block(connection, g.tenant),
    }


def tenant_block(connection: Redis, tenant: str) -> dict[str, Any]:
    """The caller's own share: waiting and running jobs, how long each has run, and the limits that apply."""
    settings, usage = ctx().settings, ctx().fair.usage(connection, tenant)
    jobs = Job.fetch_many([job_id for job_id, _ in usage.running], connection=connection)
    now = time.time()
    active = [{"id": job_id, "priority": JobState.from_job(job).priority, "running_s": round(max(0.0, now - since), 2)}
              for (job_id, since), job in zip(usage.running, jobs) if job is not None]
    return {
        "queued": usage.waiting,
        "started": len(active),
        "running_limit": settings.max_running_jobs_per_tenant or None,
        "rate_limit_per_minute": settings.rate_limit_per_minute or None,
        "active": active,
    }
