"""/v1/jobs: create, batch, read, list, cancel, retry and download; thin views over shared/."""
from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, g, request, url_for
from pydantic import ValidationError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus as RQStatus
from rq.registry import CanceledJobRegistry, ScheduledJobRegistry
from rq.utils import current_timestamp

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
from shared.requeue import RERUNNABLE_STATUSES, rerun_once
from shared.schema import BatchRequest, JobRequest, ascii_int

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
CANCEL_HANDOFF_WAIT_S = 2.0
"""How long a cancel waits for a job a worker has just popped to start, so that the stop can reach it."""
HANDOFF_POLL_S = 0.02
WAITING_RQ_STATUSES = frozenset({RQStatus.QUEUED, RQStatus.SCHEDULED})
"""RQ's words for a job that waits in its queue or, between retries, in the retry schedule."""
# Cancel a job only while it still waits: taking its id out of the queue or the retry schedule is the claim, so a
# worker that popped it first keeps it (and gets a stop command); the job then expires with retention.
_CANCEL_WAITING = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[3], 'status', ARGV[2], 'meta', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
return 1
"""


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


def log_fields(job: Job) -> dict[str, Any]:
    """What a lifecycle log line says about a job: never its data, html or css."""
    return {"job_id": job.id, "tenant": job.meta["tenant"], "queue": job.origin, "template": job.meta["template"]}


def accepted(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    return resource(job), 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


@bp.post("")
@require_tenant
def create_job() -> Any:
    body = json_body()
    job_request = JobRequest.model_validate(body, context=validation_context())
    key = idempotency_key()
    job_id = new_job_id()
    if key is not None and (earlier := claim_idempotency(g.tenant, key, body, job_id)) is not None:
        return accepted(find_job(earlier, g.tenant))
    try:
        check_capacity(g.tenant)
        with ctx().connection.pipeline() as pipe:  # the job and a queue snapshot for its position: one round trip
            job = enqueue_render(job_request, tenant=g.tenant, connection=ctx().connection, settings=ctx().settings,
                                 job_id=job_id, pipeline=pipe)
            QueueSnapshot.add_reads(pipe)
            snapshot = QueueSnapshot.from_replies(pipe.execute())
    except BaseException:
        if key is not None:
            release_idempotency(g.tenant, key, job_id)
        raise
    log.info("job accepted", extra=log_fields(job))
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
        log.info("job accepted", extra=log_fields(job))
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
    job = _cancel(find_job(job_id, g.tenant))
    log.info("job canceled", extra=log_fields(job))
    return resource(job)


def _cancel(job: Job) -> Job:
    """Cancel a waiting job in one atomic step, or stop a started one; 409 once it is final (a racing cancel won)."""
    deadline = time.monotonic() + CANCEL_HANDOFF_WAIT_S
    while True:
        if status_of(job) in FINAL_STATUSES:
            raise ApiError(409, "already_finished", f"job is already {status_of(job).value}")
        waiting = job.get_status(refresh=False) in WAITING_RQ_STATUSES
        if waiting and _cancel_waiting(job):
            return job
        if not waiting or time.monotonic() > deadline:
            _stop_started(job)
            return job
        time.sleep(HANDOFF_POLL_S)  # A worker has just popped it and is about to start it.
        job = find_job(job.id, g.tenant)


def _cancel_waiting(job: Job) -> bool:
    """Queued or retrying -> canceled, only if the id was still in its queue or retry schedule (else False)."""
    connection = ctx().connection
    queue = queue_for(job.meta["priority"], connection)
    meta = {**job.meta, "canceled": True, "finished_at": iso(utcnow())}
    claimed = connection.register_script(_CANCEL_WAITING)(
        keys=[queue.key, ScheduledJobRegistry(queue=queue).key, job.key, CanceledJobRegistry(queue=queue).key],
        args=[job.id, RQStatus.CANCELED.value, job.serializer.dumps(meta), ctx().settings.result_ttl_s,
              current_timestamp()])
    if not claimed:
        return False
    job.meta = meta
    job.get_status(refresh=True)  # our copy learns the status the script wrote
    with connection.pipeline() as pipe:
        pipe.multi()  # explicit, so the webhook's enqueue joins this transaction
        pipe.srem(keys.active_jobs(g.tenant), job.id)
        metrics.record_canceled(pipe, priority=job.meta["priority"], tenant=g.tenant)
        enqueue_webhook(job, "job.canceled", connection, pipeline=pipe)
        announce(pipe, job.id)
        pipe.execute()
    return True


def _stop_started(job: Job) -> None:
    """Record the cancel and stop the work-horse; RQ then ends the job `stopped`, which reads as canceled."""
    job.meta.update(canceled=True, finished_at=iso(utcnow()))
    job.save_meta()
    try:
        send_stop_job_command(ctx().connection, job.id)
    except InvalidJobOperation:
        pass  # It finished between our read and the stop, or no worker holds it; the worker's records stand.


@bp.post("/<job_id>/retry")
@require_tenant
def retry_job(job_id: str) -> Any:
    job = rerun_once(ctx().connection, job_id, admit=lambda: _retryable(job_id))
    log.info("job retried", extra=log_fields(job))
    return accepted(job)


def _retryable(job_id: str) -> Job:
    """The tenant's job, if it may run again now (409 otherwise, 429/503 over the limits)."""
    job = find_job(job_id, g.tenant)
    status = status_of(job)
    if status not in RERUNNABLE_STATUSES:
        raise ApiError(409, "not_retryable", f"only failed or canceled jobs can be retried; this one is {status.value}")
    check_capacity(g.tenant)
    return job


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
    result = job.meta["result"]
    headers = {"ETag": f'"{result["sha256"]}"', "Cache-Control": "private, max-age=300"}
    if request.if_none_match.contains_weak(result["sha256"]):  # from the record: the store is not touched
        return Response(status=304, headers=headers)
    pdf = ctx().storage.open(job.id)
    if pdf is None:
        raise ApiError(410, "expired", "the PDF was removed after its retention period")
    return Response(pdf, mimetype="application/pdf", headers={
        **headers,
        "Content-Disposition": f'attachment; filename="{job.meta["filename"]}"',
        "Content-Length": str(result["bytes"]),
    })
