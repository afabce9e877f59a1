"""RQ entry points, enqueued by dotted path: render a job, and record its failures."""
from __future__ import annotations

import logging
import resource
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from shared import keys, metrics
from shared.enqueue import enqueue_webhook
from shared.errors import JobFailure, StorageError
from shared.records import iso, utcnow
from worker.progress import reporter, save_state
from worker.runtime import get_runtime

log = logging.getLogger(__name__)


def render_pdf(template: str | None, html: str | None, data: dict[str, Any], css: str | None) -> dict[str, Any] | None:
    """Render, store, and record the result; any failure raises so RQ records and retries it."""
    job = get_current_job()
    assert job is not None, "render_pdf runs only inside an RQ job"
    job.meta = job.get_meta(refresh=True)
    if job.meta.get("canceled"):
        # Canceled between leaving its queue and starting here (a retry the scheduler moved, a slow
        # hand-off): the API already recorded the cancel, so this attempt only steps aside.
        log.info("job skipped: canceled before it started", extra={"job_id": job.id, "tenant": job.meta["tenant"]})
        return None
    runtime = get_runtime()
    job.meta["attempts"] = job.meta.get("attempts", 0) + 1
    job.meta["started_at"] = iso(utcnow())
    job.meta["error"] = None
    report = reporter(job)
    started = time.perf_counter()
    rendered = runtime.renderer.render(template=template, html=html, data=data, css=css, progress=report)
    render_s = time.perf_counter() - started
    report("storing", 90)
    stored = time.perf_counter()
    try:
        runtime.storage.put(job.id, rendered.content)
    except (OSError, RedisError) as exc:
        raise StorageError(f"could not store the PDF: {exc}") from exc
    job.meta["store_ms"] = round((time.perf_counter() - stored) * 1000, 1)
    finished = utcnow()
    job.meta["result"] = {
        "bytes": len(rendered.content),
        "pages": rendered.pages,
        "sha256": rendered.sha256,
        "expires_at": iso(finished + timedelta(seconds=runtime.settings.result_ttl_s)),
    }
    job.meta["progress"] = {"step": "done", "percent": 100}
    job.meta["finished_at"] = iso(finished)
    job.meta["render_ms"] = round(render_s * 1000, 1)

    def finish(pipe: Pipeline) -> None:
        enqueue_webhook(job, "job.completed", job.connection, pipeline=pipe)
        pipe.srem(keys.active_jobs(job.meta["tenant"]), job.id)
        metrics.record_completed(pipe, job_id=job.id, priority=job.meta["priority"], tenant=job.meta["tenant"],
                                 render_s=render_s, pages=rendered.pages, worker=job.worker_name or "unknown",
                                 peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    save_state(job, finish)
    log.info("job completed", extra={"job_id": job.id, "tenant": job.meta["tenant"], "queue": job.origin,
                                     "attempt": job.meta["attempts"], "duration_ms": job.meta["render_ms"]})
    return job.meta["result"]


def classify(exc_type: type[BaseException], exc: BaseException | None) -> tuple[str, bool]:
    """(error code, permanent?) for an exception that ended an attempt."""
    if isinstance(exc, JobFailure):
        return exc.code, exc.permanent
    if issubclass(exc_type, MemoryError):
        return "memory_limit", True
    if issubclass(exc_type, JobTimeoutException):
        return "timeout", False
    if issubclass(exc_type, AbandonedJobError):
        return "worker_lost", False
    if issubclass(exc_type, RedisError):
        return "backend_unavailable", False
    return "render_error", False


INFRASTRUCTURE_FAULTS = frozenset({"worker_lost", "worker_shutdown"})
"""Faults of the machine, not the job: the retry runs at once instead of after a backoff delay."""


def record_failure(job: Job, code: str, message: str, *, permanent: bool) -> None:
    """Store the error; a permanent one or the last attempt makes the job final (no retry)."""
    if permanent:
        job.retries_left = 0
    if code in INFRASTRUCTURE_FAULTS and job.should_retry and job.retry_intervals:
        # RQ reads the delay at index len - retries_left; zero it so the job re-queues now.
        index = max(len(job.retry_intervals) - job.retries_left, 0)
        job.retry_intervals = [0 if i == index else d for i, d in enumerate(job.retry_intervals)]
    job.meta["error"] = {"code": code, "message": message[:500]}
    final = not job.should_retry
    if final:
        job.meta["finished_at"] = iso(utcnow())

    def account(pipe: Pipeline) -> None:
        if final:
            enqueue_webhook(job, "job.failed", job.connection, pipeline=pipe)
            pipe.srem(keys.active_jobs(job.meta.get("tenant", "")), job.id)
            metrics.record_failed(pipe, priority=job.meta.get("priority", "normal"), tenant=job.meta.get("tenant", ""),
                                  code=code)

    save_state(job, account)
    log.warning("job attempt failed", extra={"job_id": job.id, "tenant": job.meta.get("tenant"), "queue": job.origin,
                                             "attempt": job.meta.get("attempts"), "code": code, "final": final})


def on_render_failure(job: Job, connection: Redis, exc_type: type[BaseException], exc: BaseException | None,
                      traceback: TracebackType | Any) -> None:
    """RQ calls this after every failed attempt, also ones it will retry, and for abandoned jobs."""
    code, permanent = classify(exc_type, exc)
    message = str(exc) if exc is not None and str(exc) else code.replace("_", " ")
    if code == "timeout":
        message = f"render exceeded timeout_s={job.meta.get('timeout_s')}"
    elif code == "worker_lost":
        message = "the worker running this job stopped without finishing it"
    record_failure(job, code, message, permanent=permanent)


def on_render_stopped(job: Job, connection: Redis) -> None:
    """A stop command (sent only to cancel a running job) ends it as canceled, never retried."""
    job.meta = job.get_meta(refresh=True)
    job.meta["canceled"] = True
    job.meta["finished_at"] = job.meta.get("finished_at") or iso(utcnow())

    def account(pipe: Pipeline) -> None:
        enqueue_webhook(job, "job.canceled", job.connection, pipeline=pipe)
        pipe.srem(keys.active_jobs(job.meta.get("tenant", "")), job.id)
        metrics.record_canceled(pipe, priority=job.meta.get("priority", "normal"), tenant=job.meta.get("tenant", ""))

    save_state(job, account)
