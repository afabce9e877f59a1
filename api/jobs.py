"""/v1/jobs: create, batch, read, list, cancel, retry and download; thin views over shared/."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, request, url_for
from pydantic import ValidationError
from rq.job import Job, JobStatus as RQStatus
from werkzeug.exceptions import MethodNotAllowed

from api import rate_limit
from api.admission import check_capacity, claim_idempotency, idempotency_key, json_body, release_idempotency
from api.auth import require_tenant, require_tenant_or_token
from api.context import ctx
from api.errors import ApiError, field_problem, validation_problem
from api.lookup import completed_job, find_job, find_row
from shared import job_secrets, keys
from shared.batches import batch_links, record_batch
from shared.cancel import AlreadyFinished, cancel
from shared.enqueue import TENANT_INDEX_GRACE_S, enqueue_render, new_job_id
from shared.job_rows import JobRow, read_rows, row_resource
from shared.job_state import JobState
from shared.links import job_links
from shared.netguard import BlockedTarget, check_public_url, check_url_shape
from shared.queue_position import QueueSnapshot, add_places, places
from shared.records import RERUNNABLE_STATUSES, JobStatus, status_of, to_resource
from shared.requeue import rerun_once
from shared.schema import BatchRequest, JobRequest, ascii_int

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200


def validation_context() -> dict[str, Any]:
    settings = ctx().settings

    def check_webhook(url: str) -> None:
        try:
            check_url_shape(url) if settings.allow_private_webhooks else check_public_url(url)
        except BlockedTarget as exc:
            raise ValueError(str(exc)) from None

    return {"templates": ctx().templates, "check_webhook_url": check_webhook}


def resource(job: Job, snapshot: QueueSnapshot | None = None, ahead: int | None = None) -> dict[str, Any]:
    """The job resource; `snapshot` and `ahead` (its place, read with the enqueue) spare a round trip."""
    queue_info = None
    if job.get_status(refresh=False) == RQStatus.QUEUED:
        if snapshot is None or ahead is None:
            snapshot, (ahead,) = places(ctx().connection, ctx().fair, [job])
        queue_info = snapshot.position(ahead)
    return to_resource(job, links=job_links(ctx().settings, JobState.from_job(job).tenant, job.id),
                       queue_info=queue_info)


def log_fields(job: Job) -> dict[str, Any]:
    """What a lifecycle log line says about a job: never its data, html or css."""
    state = JobState.from_job(job)
    return {"job_id": job.id, "tenant": state.tenant, "queue": job.origin, "template": state.template}


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
        rate_limit.consume(g.tenant)
        with ctx().connection.pipeline() as pipe:  # the job, its place and a queue snapshot: one round trip
            job = enqueue_render(job_request, tenant=g.tenant, connection=ctx().connection, settings=ctx().settings,
                                 job_id=job_id, pipeline=pipe)
            add_places(pipe, ctx().connection, ctx().fair, [job])
            QueueSnapshot.add_reads(pipe)
            replies = pipe.execute()
            snapshot, ahead = QueueSnapshot.from_replies(replies), int(replies[-QueueSnapshot.READS - 1])
    except BaseException:
        if key is not None:
            release_idempotency(g.tenant, key, job_id)
        raise
    log.info("job accepted", extra=log_fields(job))
    return resource(job, snapshot, ahead), 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


@bp.post("/batch")
@require_tenant
def create_batch() -> Any:
    body = json_body()
    try:
        batch = BatchRequest.model_validate(body, context=validation_context())
    except ValidationError as exc:
        raise validation_problem(exc) from None
    check_capacity(g.tenant, len(batch.jobs))
    rate_limit.consume(g.tenant, len(batch.jobs))
    connection = ctx().connection
    with connection.pipeline() as pipe:  # all jobs, their places and a snapshot: one transaction
        jobs = [enqueue_render(item, tenant=g.tenant, connection=connection, settings=ctx().settings, pipeline=pipe)
                for item in batch.jobs]
        batch_id = record_batch(pipe, tenant=g.tenant, job_ids=[job.id for job in jobs],
                                ttl_s=ctx().settings.result_ttl_s + TENANT_INDEX_GRACE_S)
        add_places(pipe, connection, ctx().fair, jobs)
        QueueSnapshot.add_reads(pipe)
        replies = pipe.execute()
    snapshot = QueueSnapshot.from_replies(replies)
    ahead = replies[-QueueSnapshot.READS - len(jobs):-QueueSnapshot.READS]
    created = []
    for job, place in zip(jobs, ahead):
        log.info("job accepted", extra=log_fields(job))
        created.append(resource(job, snapshot, int(place)))
    return {"batch_id": batch_id, "jobs": created, "links": batch_links(batch_id)}, 202


@bp.url_value_preprocessor
def _batch_is_not_a_job(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """`/v1/jobs/batch` is a known route taking only POST: GET or DELETE on it is 405, not a missing job."""
    if endpoint in ("jobs.get_job", "jobs.cancel_job") and (values or {}).get("job_id") == "batch":
        raise MethodNotAllowed(valid_methods=["POST"])


@bp.get("/<job_id>")
@require_tenant
def get_job(job_id: str) -> Any:
    return page_resources([find_row(job_id, g.tenant)], g.tenant)[0]


@bp.get("")
@require_tenant
def list_jobs() -> Any:
    status = request.args.get("status")
    if status is not None and status not in {s.value for s in JobStatus}:
        raise field_problem("status", "not a job status", f"unknown status {status!r}")
    limit = ascii_int(request.args.get("limit", str(DEFAULT_LIST_LIMIT)))
    if limit is None or not 1 <= limit <= MAX_LIST_LIMIT:
        raise field_problem("limit", f"must be an integer 1..{MAX_LIST_LIMIT}", f"limit must be 1..{MAX_LIST_LIMIT}")
    connection = ctx().connection
    index = keys.tenant_jobs(g.tenant)
    cursor = request.args.get("cursor")
    start = 0
    if cursor:
        rank = connection.zrevrank(index, cursor)
        if rank is None:
            raise field_problem("cursor", "unknown or expired", "unknown or expired cursor")
        start = rank + 1
    found: list[JobRow] = []
    next_cursor = None
    while len(found) < limit:
        ids = [i.decode() for i in connection.zrevrange(index, start, start + 2 * limit - 1)]
        if not ids:
            break
        for offset, (job_id, row) in enumerate(zip(ids, read_rows(connection, ids))):
            start += 1
            if row is not None and (status is None or status_of(row).value == status):  # type: ignore[arg-type]
                found.append(row)
                if len(found) == limit:
                    more = offset + 1 < len(ids) or connection.zrevrange(index, start, start)
                    next_cursor = job_id if more else None
                    break
    return {"jobs": page_resources(found, g.tenant), "next_cursor": next_cursor}


def page_resources(rows: list[JobRow], tenant: str) -> list[dict[str, Any]]:
    """Resources of the tenant's jobs: the queued ones' fair-order places and one snapshot in one round trip."""
    queued = [row for row in rows if row.status == RQStatus.QUEUED]
    placed: dict[str, dict[str, Any]] = {}
    if queued:
        snapshot, ahead = places(ctx().connection, ctx().fair, queued)
        placed = {row.id: snapshot.position(place) for row, place in zip(queued, ahead)}
    settings = ctx().settings
    return [row_resource(row, links=job_links(settings, tenant, row.id), queue_info=placed.get(row.id))
            for row in rows]


@bp.delete("/<job_id>")
@require_tenant
def cancel_job(job_id: str) -> Any:
    try:
        job = cancel(ctx().connection, ctx().fair, find_job(job_id, g.tenant),
                     retention_s=ctx().settings.result_ttl_s, reload=lambda: find_job(job_id, g.tenant))
    except AlreadyFinished as exc:
        raise ApiError(409, "already_finished", str(exc)) from None
    log.info("job canceled", extra=log_fields(job))
    return resource(job)


@bp.post("/<job_id>/retry")
@require_tenant
def retry_job(job_id: str) -> Any:
    job = rerun_once(ctx().connection, ctx().settings, job_id, admit=lambda: _retryable(job_id))
    log.info("job retried", extra=log_fields(job))
    return accepted(job)


def _retryable(job_id: str) -> Job:
    """The tenant's job, if it may run again now (409 otherwise, 429/503 over the limits)."""
    job = find_job(job_id, g.tenant)
    status = status_of(job)
    if status not in RERUNNABLE_STATUSES:
        raise ApiError(409, "not_retryable", f"only failed or canceled jobs can be retried; this one is {status.value}")
    if job_secrets.lost_on_end(JobState.from_job(job)):
        raise ApiError(409, "not_retryable", "an encrypted job's passwords are deleted when it ends; submit it again")
    check_capacity(g.tenant)
    return job


@bp.get("/<job_id>/pdf")
@require_tenant_or_token("pdf")
def download_pdf(job_id: str) -> Any:
    job = completed_job(job_id, g.tenant)
    state = JobState.from_job(job)
    result = state.result
    assert result is not None, "a completed job has its result"
    headers = {"ETag": f'"{result["sha256"]}"', "Cache-Control": "private, max-age=300"}
    if request.if_none_match.contains_weak(result["sha256"]):  # from the record: the store is not touched
        return Response(status=304, headers=headers)
    pdf = ctx().storage.open(job.id)
    if pdf is None:
        raise ApiError(410, "expired", "the PDF was removed after its retention period")
    return Response(pdf, mimetype="application/pdf", headers={
        **headers,
        "Content-Disposition": f'attachment; filename="{state.filename}"',
        "Content-Length": str(result["bytes"]),
    })
