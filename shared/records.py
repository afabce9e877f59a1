"""The job resource: its status words, their groupings, and how it is read from an RQ job and its state."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from rq.job import Job, JobStatus as RQStatus

from shared.job_state import JobState


class JobStatus(str, Enum):
    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
WAITING_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RETRYING})
"""Statuses in which a job waits for a worker and has a queue position and wait estimate."""
RERUNNABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED})
"""Statuses from which a job may be run again (`POST /v1/jobs/{id}/retry`, the dashboard's Requeue)."""
WAITING_RQ_STATUSES = frozenset({RQStatus.QUEUED, RQStatus.SCHEDULED})
"""RQ's words for a job that waits in its queue or, between retries, in the retry schedule."""
FINAL_RQ_STATUSES = frozenset({RQStatus.FINISHED, RQStatus.FAILED, RQStatus.STOPPED, RQStatus.CANCELED})
"""RQ's words for a job no worker will run again."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, as the contract writes times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(stamp: str) -> float:
    """Epoch seconds of a time `iso` wrote."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def status_of(job: Job) -> JobStatus:
    """Map RQ's status plus our state onto the contract's status words."""
    rq_status = job.get_status(refresh=False)
    state = JobState.from_job(job)
    # A stop command is only ever sent to cancel a running job, so STOPPED means canceled.
    if state.canceled or rq_status in (RQStatus.CANCELED, RQStatus.STOPPED):
        return JobStatus.CANCELED
    if rq_status == RQStatus.FINISHED:
        return JobStatus.COMPLETED
    if rq_status == RQStatus.FAILED:
        return JobStatus.FAILED
    if rq_status == RQStatus.STARTED:
        return JobStatus.STARTED
    if state.attempts > 0:
        return JobStatus.RETRYING
    return JobStatus.QUEUED


def to_resource(job: Job, *, links: dict[str, str], queue_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's job resource; `queue_info` adds position and wait estimate while queued."""
    state = JobState.from_job(job)
    status = status_of(job)
    info = queue_info if status in WAITING_STATUSES and queue_info else {}
    finished_at = state.finished_at
    if finished_at is None and status in FINAL_STATUSES and job.ended_at:
        finished_at = iso(job.ended_at)
    return {
        "id": job.id,
        "status": status.value,
        "priority": state.priority,
        "template": state.template,
        "filename": state.filename,
        "metadata": state.metadata,
        "options": state.options,
        "engine": state.engine,
        "created_at": iso(job.created_at),
        "started_at": state.started_at,
        "finished_at": finished_at,
        "attempts": state.attempts,
        "max_retries": state.max_retries,
        "progress": state.progress,
        "queue_position": info.get("queue_position"),
        "estimated_wait_s": info.get("estimated_wait_s"),
        "error": state.error if status in (JobStatus.FAILED, JobStatus.RETRYING) else None,
        "result": state.result if status == JobStatus.COMPLETED else None,
        "links": links,
    }
