"""What happens once when a render job ends (completed, finally failed, canceled): the one place it is written."""
from __future__ import annotations

from redis.client import Pipeline
from rq.job import Job

from shared import job_secrets, keys, metrics
from shared.enqueue import enqueue_webhook
from shared.events import announce
from shared.job_state import JobState
from shared.records import JobStatus

WEBHOOK_EVENTS = {JobStatus.COMPLETED: "job.completed", JobStatus.FAILED: "job.failed",
                  JobStatus.CANCELED: "job.canceled"}


def record_end(pipe: Pipeline, job: Job, state: JobState, status: JobStatus, *, code: str | None = None,
               render: metrics.RenderFigures | None = None) -> None:
    """Inside the caller's transaction (MULTI already begun), which also holds the claim that makes this
    ending the only one: the job leaves its tenant's active set, is counted, its webhook is enqueued and
    listeners are told; an encrypted job's passwords are deleted. `code` is a failure's error code; `render` a completion's figures."""
    pipe.srem(keys.active_jobs(state.tenant), job.id)
    job_secrets.forget(pipe, job.id)
    if status == JobStatus.COMPLETED:
        assert render is not None, "a completion is counted with its render figures"
        metrics.record_completed(pipe, job_id=job.id, priority=state.priority, tenant=state.tenant, figures=render)
    elif status == JobStatus.FAILED:
        metrics.record_failed(pipe, priority=state.priority, tenant=state.tenant, code=code or "render_error")
    else:
        metrics.record_canceled(pipe, priority=state.priority, tenant=state.tenant)
    enqueue_webhook(job, WEBHOOK_EVENTS[status], job.connection, pipeline=pipe)
    announce(pipe, job.id)
