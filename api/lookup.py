"""Finding a tenant's job by id, where another tenant's id looks exactly like a missing one."""
from __future__ import annotations

import re

from rq.exceptions import NoSuchJobError
from rq.job import Job

from api.context import ctx
from api.errors import ApiError
from shared import keys
from shared.job_rows import JobRow, read_rows
from shared.job_state import JobState
from shared.records import JobStatus, status_of

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _fetch(job_id: str) -> Job | None:
    if not JOB_ID.match(job_id):
        return None
    try:
        return Job.fetch(job_id, connection=ctx().connection)
    except NoSuchJobError:
        return None


def job_tenant(job_id: str) -> str | None:
    job = _fetch(job_id)
    return JobState.from_job(job).tenant if job is not None else None


def find_job(job_id: str, tenant: str) -> Job:
    job = _fetch(job_id)
    if job is None or JobState.from_job(job).tenant != tenant:
        raise ApiError(404, "not_found", f"no job {job_id!r}")
    return job


def find_row(job_id: str, tenant: str) -> JobRow:
    """`find_job` reading only what the job resource shows (the hot path of clients polling a job)."""
    row = read_rows(ctx().connection, [job_id])[0] if JOB_ID.match(job_id) else None
    if row is None or JobState.from_meta(row.meta).tenant != tenant:
        raise ApiError(404, "not_found", f"no job {job_id!r}")
    return row


def was_expired(job_id: str, tenant: str) -> bool:
    """True for a job of this tenant whose record has already passed retention."""
    return JOB_ID.match(job_id) is not None and ctx().connection.zscore(keys.tenant_jobs(tenant), job_id) is not None


def completed_job(job_id: str, tenant: str) -> Job:
    """The tenant's completed job, whose PDF may be read: 410 past retention, 409 before it completed."""
    try:
        job = find_job(job_id, tenant)
    except ApiError:
        if was_expired(job_id, tenant):
            raise ApiError(410, "expired", "the PDF was removed after its retention period") from None
        raise
    status = status_of(job)
    if status != JobStatus.COMPLETED:
        raise ApiError(409, "not_ready", f"the job is {status.value}, not completed", job_status=status.value)
    return job
