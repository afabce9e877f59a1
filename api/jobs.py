"""/v1/jobs: create, batch, read, list, cancel, retry and download; thin views over shared/."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, g, request, url_for
from pydantic import ValidationError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus as RQStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from api.admission import check_capacity, claim_idempotency, idempotency_key, json_body, release_idempotency
from api.auth import require_tenant, require_tenant_or_token
from api.context import ctx
from api.errors import ApiError, validation_problem
from api.lookup import find_job, was_expired
from shared import keys, metrics
from shared.enqueue import enqueue_render, enqueue_webhook, new_job_id
from shared.events import announce
from shared.links import job_links
from shared.netguard import BlockedTarget, check_public_url, check_url_shape
from shared.queue_position import QueueSnapshot
from shared.queues import queue_for
from shared.records import FINAL_STATUSES, JobStatus, iso, status_of, to_resource, utcnow
from shared.schema import BatchRequest, JobRequest, ascii_int

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
IDEMPOTENT_WAIT_S = 2.0
"""How long a repeated Idempotency-Key request waits for the first one's job to appear."""


def validation_context() -> dict[str, Any]:
    settings = ctx().settings

    def check_webhook(url: str) -> None:
        try:
            check_url_shape(url) if settings.allow_private_webhooks else check_public_url(url)
        except BlockedTarget as exc:
            raise ValueError(str(exc)) from None

    return {"templates": ctx().templates, "check_webhook_url": check_webhook}


def resource(job: Job, snapshot: QueueSnapshot | None = None, from_end: int | None = None) -> dict[str, Any]:
    """The job resource; `from_end` = jobs enqueued behind it since the snapshot (0 for the newest)."""
    queue_info = None
    if job.get_status(refresh=False) == RQStatus.QUEUED:
        snapshot = snapshot or QueueSnapshot.take(ctx().connection)
        queue_info = snapshot.position(ctx().connection, job.meta["priority"], job.id, from_end)
    return to_resource(job, links=job_links(ctx().settings, job.meta["tenant"], job.id), queue_info=queue_info)


def accepted(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    return resource(job), 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


def _await_job(job_id: str) -> Job:
    """The job an earlier request with the same Idempotency-Key is creating right now."""
    deadline = time.monotonic() + IDEMPOTENT_WAIT_S
    while True:
        try:
            return find_job(job_id, g.tenant)
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@bp.post("")
@require_tenant
def create_job() -> Any:
    body = json_body()
    job_request = JobRequest.model_validate(body, context=validation_context())
    key = idempotency_key()
    job_id = new_job_id()
    if key is not None and (earlier := claim_idempotency(g.tenant, key, body, job_id)) is not None:
        return accepted(_await_job(earlier))
    try:
        check_capacity(g.tenant)
        with ctx().connection.pipeline() as pipe:  # the job and a queue snapshot for its position: one round trip
            job = enqueue_render(job_request, tenant=g.tenant, connection=ctx().connection, settings=ctx().settings,
                                 job_id=job_id, pipeline=pipe)
            QueueSnapshot.add_reads(pipe)
            snapshot = QueueSnapshot.from_replies(pipe.execute())
    except BaseException:
        if key is not None:
            release_idempotency(g.tenant, key)
        raise
    return resource(job, snapshot, from_end=0), 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


@bp.post("/batch")
@require_tenant
def create_batch() -> Any:
    body = json_body()
    try:
        batch = BatchRequest.model_validate(body, context=validation_context())
    except ValidationError as exc:
        raise validation_problem(exc) from None
    check_capacity(g.tenant, len(batch.jobs))
    connection = ctx().connection
    with connection.pipeline() as pipe:
        jobs = [enqueue_render(item, tenant=g.tenant, connection=connection, settings=ctx().settings, pipeline=pipe)
                for item in batch.jobs]
        QueueSnapshot.add_reads(pipe)
        snapshot = QueueSnapshot.from_replies(pipe.execute())
    behind = {p: sum(j.meta["priority"] == p for j in jobs) for p in {j.meta["priority"] for j in jobs}}
    created = []
    for job in jobs:  # each job's place from the end of its queue, without scanning the queue
        behind[job.meta["priority"]] -= 1
        created.append(resource(job, snapshot, from_end=behind[job.meta["priority"]]))
    return {"jobs": created}, 202


@bp.get("/<job_id>")
@require_tenant
def get_job(job_id: str) -> Any:
    return resource(find_job(job_id, g.tenant))


@bp.get("")
@require_tenant
def list_jobs() -> Any:
    status = request.args.get("status")
    if status is not None and status not in {s.value for s in JobStatus}:
        raise ApiError(422, "validation_error", f"unknown status {status!r}",
                       errors=[{"field": "status", "message": "not a job status"}])
    limit = ascii_int(request.args.get("limit", str(DEFAULT_LIST_LIMIT)))
    if limit is None or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ApiError(422, "validation_error", f"limit must be 1..{MAX_LIST_LIMIT}",
                       errors=[{"field": "limit", "message": f"must be an integer 1..{MAX_LIST_LIMIT}"}])
    connection = ctx().connection
    index = keys.tenant_jobs(g.tenant)
    cursor = request.args.get("cursor")
    start = 0
    if cursor:
        rank = connection.zrevrank(index, cursor)
        if rank is None:
            raise ApiError(422, "validation_error", "unknown or expired cursor",
                           errors=[{"field": "cursor", "message": "unknown or expired"}])
        start = rank + 1
    found: list[Job] = []
    next_cursor = None
    snapshot = QueueSnapshot.take(connection)
    while len(found) < limit:
        ids = [i.decode() for i in connection.zrevrange(index, start, start + 2 * limit - 1)]
        if not ids:
            break
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=connection)):
            start += 1
            if job is not None and (status is None or status_of(job).value == status):
                found.append(job)
                if len(found) == limit:
                    next_cursor = job_id if connection.zrevrange(index, start, start) else None
                    break
    return {"jobs": [resource(job, snapshot) for job in found], "next_cursor": next_cursor}


@bp.delete("/<job_id>")
@require_tenant
def cancel_job(job_id: str) -> Any:
    job = find_job(job_id, g.tenant)
    if status_of(job) in FINAL_STATUSES:
        raise ApiError(409, "already_finished", f"job is already {status_of(job).value}")
    connection = ctx().connection
    job.meta["canceled"] = True
    job.meta["finished_at"] = iso(utcnow())
    if job.get_status(refresh=False) == RQStatus.STARTED:
        job.save_meta()
        try:
            send_stop_job_command(connection, job.id)
        except InvalidJobOperation:
            pass  # It finished between our read and the stop; the worker's records stand.
    else:
        job.cancel()
        with connection.pipeline() as pipe:
            pipe.multi()  # explicit, so the webhook's enqueue joins this transaction
            pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
            pipe.srem(keys.active_jobs(g.tenant), job.id)
            metrics.record_canceled(pipe, priority=job.meta["priority"], tenant=g.tenant)
            enqueue_webhook(job, "job.canceled", connection, pipeline=pipe)
            announce(pipe, job.id)
            pipe.execute()
    return resource(job)


@bp.post("/<job_id>/retry")
@require_tenant
def retry_job(job_id: str) -> Any:
    job = find_job(job_id, g.tenant)
    status = status_of(job)
    if status not in (JobStatus.FAILED, JobStatus.CANCELED):
        raise ApiError(409, "not_retryable", f"only failed or canceled jobs can be retried; this one is {status.value}")
    check_capacity(g.tenant)
    job.meta.update(attempts=0, error=None, result=None, canceled=False, finished_at=None, started_at=None,
                    progress={"step": "queued", "percent": 0})
    job.retries_left = job.meta.get("max_retries", 0)
    connection = ctx().connection
    queue = queue_for(job.meta["priority"], connection)
    for registry in (FailedJobRegistry(queue=queue), CanceledJobRegistry(queue=queue)):
        try:
            job = registry.requeue(job)
            break
        except InvalidJobOperation:
            continue
    else:
        job = queue.enqueue_job(job)
    with connection.pipeline(transaction=False) as pipe:
        pipe.persist(job.key)
        pipe.sadd(keys.active_jobs(g.tenant), job.id)
        announce(pipe, job.id)
        pipe.execute()
    return accepted(job)


@bp.get("/<job_id>/pdf")
@require_tenant_or_token("pdf")
def download_pdf(job_id: str) -> Any:
    try:
        job = find_job(job_id, g.tenant)
    except ApiError:
        if was_expired(job_id, g.tenant):
            raise ApiError(410, "expired", "the PDF was removed after its retention period") from None
        raise
    status = status_of(job)
    if status != JobStatus.COMPLETED:
        raise ApiError(409, "not_ready", f"the job is {status.value}, not completed", job_status=status.value)
    content = ctx().storage.get(job.id)
    if content is None:
        raise ApiError(410, "expired", "the PDF was removed after its retention period")
    result = job.meta["result"]
    etag = f'"{result["sha256"]}"'
    if request.headers.get("If-None-Match") == etag:
        return Response(status=304, headers={"ETag": etag})
    return Response(content, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{job.meta["filename"]}"',
        "ETag": etag,
        "Cache-Control": "private, max-age=300",
    })
