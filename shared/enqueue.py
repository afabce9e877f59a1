"""The single path from a validated request to an RQ job (used by the API and by schedules)."""
from __future__ import annotations

import random
import time
import uuid
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Callback, Retry
from rq.job import Job

from shared import job_secrets, keys, metrics
from shared.config import Settings
from shared.engines import Engine
from shared.fair_share import fair_queue
from shared.job_state import JobState
from shared.queues import queue_for
from shared.schema import JobRequest

RENDER_FUNCTION = "worker.jobs.render_pdf"
FAILURE_CALLBACK = "worker.jobs.on_render_failure"
STOPPED_CALLBACK = "worker.jobs.on_render_stopped"
RETRY_BASE_DELAY_S = 2.0
"""Delay before the first retry, in seconds; each later retry waits twice as long (± jitter)."""
RETRY_MAX_DELAY_S = 300.0
TENANT_INDEX_GRACE_S = 7 * 86400
"""How long after retention an expired job's id still answers `410 expired` rather than 404."""


def retry_delays(max_retries: int, rng: random.Random | None = None) -> list[int]:
    """Exponential backoff with full jitter, one delay per retry (RQ reads the list by index)."""
    rng = rng or random.Random()
    delays = []
    for attempt in range(max_retries):
        ceiling = min(RETRY_MAX_DELAY_S, RETRY_BASE_DELAY_S * 2**attempt)
        delays.append(max(1, round(rng.uniform(ceiling / 2, ceiling))))
    return delays


def new_job_id() -> str:
    return uuid.uuid4().hex


def render_kwargs(request: JobRequest) -> dict[str, Any]:
    """What the worker needs to render; kept out of meta so the job resource stays small."""
    kwargs: dict[str, Any] = {"template": request.template, "html": request.html, "data": request.data,
                              "css": request.css, "options": request.options.for_worker() if request.options else None}
    if request.parts is not None:
        kwargs["parts"] = [part.model_dump(mode="json") for part in request.parts]
    if request.engine != Engine.WEASYPRINT:
        kwargs.update(engine=request.engine.value, javascript=bool(request.javascript),
                      wait_for=request.wait_for.model_dump(exclude_none=True) if request.wait_for else None)
    return kwargs if request.reuse_allowed else {**kwargs, "cache": False}


def enqueue_render(request: JobRequest, *, tenant: str, connection: Redis, settings: Settings,
                   job_id: str | None = None, pipeline: Pipeline | None = None) -> Job:
    """Create the job in its priority queue (held back there by fair share), indexed under its tenant;
    pass a pipeline to batch."""
    job_id = job_id or new_job_id()
    state = JobState(
        tenant=tenant,
        template=request.template or ("parts" if request.parts is not None else "inline"),
        filename=request.filename or f"{job_id}.pdf",
        priority=request.priority.value,
        max_retries=request.max_retries,
        timeout_s=request.timeout_s,
        metadata=request.metadata,
        webhook_url=request.webhook_url,
        options=request.options.echo() if request.options else None,
        engine=request.engine.value,
    )
    retry = Retry(max=request.max_retries, interval=retry_delays(request.max_retries)) if request.max_retries else None
    own_pipeline = pipeline is None
    pipe = connection.pipeline() if own_pipeline else pipeline
    job = fair_queue(request.priority, connection, settings).enqueue(
        RENDER_FUNCTION,
        kwargs=render_kwargs(request),
        job_id=job_id,
        job_timeout=request.timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.result_ttl_s,
        ttl=None,
        retry=retry,
        meta=state.to_meta(),
        description=f"render {state.template} for {tenant}",
        on_failure=Callback(FAILURE_CALLBACK),
        on_stopped=Callback(STOPPED_CALLBACK),
        pipeline=pipe,
    )
    if request.options is not None and request.options.encryption is not None:
        # After the enqueue (RQ opens MULTI there); the worker cannot read the queue before EXEC, so before this too.
        job_secrets.store(pipe, job_id, job_secrets.Passwords.of(request.options.encryption))
    now_ms = int(time.time() * 1000)
    pipe.zadd(keys.tenant_jobs(tenant), {job_id: now_ms})
    pipe.zremrangebyscore(keys.tenant_jobs(tenant), 0, now_ms - (settings.result_ttl_s + TENANT_INDEX_GRACE_S) * 1000)
    pipe.sadd(keys.active_jobs(tenant), job_id)
    metrics.record_enqueued(pipe, priority=request.priority.value)
    if own_pipeline:
        pipe.execute()
    return job


WEBHOOK_FUNCTION = "worker.webhooks.deliver_webhook"
WEBHOOK_ATTEMPTS = 6
"""One delivery plus five retries with backoff (about 2 s to 30 s apart)."""
WEBHOOK_TIMEOUT_S = 30


def enqueue_webhook(job: Job, event: str, connection: Redis, pipeline: Pipeline | None = None) -> None:
    """Deliver the job's final state to its webhook_url from a worker, in its own small retried job."""
    if not JobState.from_job(job).webhook_url:
        return
    queue_for("urgent", connection).enqueue(
        WEBHOOK_FUNCTION, job.id, event,
        job_timeout=WEBHOOK_TIMEOUT_S, result_ttl=3600, failure_ttl=86400,
        retry=Retry(max=WEBHOOK_ATTEMPTS - 1, interval=retry_delays(WEBHOOK_ATTEMPTS - 1)),
        description=f"webhook {event} for {job.id}", pipeline=pipeline,
    )
