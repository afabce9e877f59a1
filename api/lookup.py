"""Finding a tenant's job by id, where another tenant's id looks exactly like a missing one."""
from __future__ import annotations

import re

from rq.exceptions import NoSuchJobError
from rq.job import Job

from api.context import ctx
from api.errors import ApiError
from shared import keys
from shared.job_state import JobState

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


def was_expired(job_id: str, tenant: str) -> bool:
    """True for a job of this tenant whose record has already passed retention."""
    return JOB_ID.match(job_id) is not None and ctx().connection.zscore(keys.tenant_jobs(tenant), job_id) is not None
