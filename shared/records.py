"""The job resource: its status words and how it is read from an RQ job and its meta."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from rq.job import Job, JobStatus as RQStatus


class JobStatus(str, Enum):
    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, as the contract writes times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_of(job: Job) -> JobStatus:
    """Map RQ's status plus our meta onto the contract's status words."""
    rq_status = job.get_status(refresh=False)
    meta = job.meta
    # A stop command is only ever sent to cancel a running job, so STOPPED means canceled.
    if meta.get("canceled") or rq_status in (RQStatus.CANCELED, RQStatus.STOPPED):
        return JobStatus.CANCELED
    if rq_status == RQStatus.FINISHED:
        return JobStatus.COMPLETED
    if rq_status == RQStatus.FAILED:
        return JobStatus.FAILED
    if rq_status == RQStatus.STARTED:
        return JobStatus.STARTED
    if meta.get("attempts", 0) > 0:
        return JobStatus.RETRYING
    return JobStatus.QUEUED


def new_meta(*, tenant: str, template: str, filename: str, priority: str, max_retries: int,
             timeout_s: int, metadata: dict[str, Any], webhook_url: str | None) -> dict[str, Any]:
    """The job's own state kept in RQ's meta, so API and any worker agree on it."""
    return {
        "tenant": tenant,
        "template": template,
        "filename": filename,
        "priority": priority,
        "max_retries": max_retries,
        "timeout_s": timeout_s,
        "metadata": metadata,
        "webhook_url": webhook_url,
        "attempts": 0,
        "progress": {"step": "queued", "percent": 0},
        "error": None,
        "result": None,
        "canceled": False,
        "finished_at": None,
    }


def to_resource(job: Job, *, links: dict[str, str], queue_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's job resource; `queue_info` adds position and wait estimate while queued."""
    meta = job.meta
    status = status_of(job)
    queued = status in (JobStatus.QUEUED, JobStatus.RETRYING)
    info = queue_info if queued and queue_info else {}
    finished_at = meta.get("finished_at")
    if finished_at is None and status in FINAL_STATUSES and job.ended_at:
        finished_at = iso(job.ended_at)
    return {
        "id": job.id,
        "status": status.value,
        "priority": meta.get("priority"),
        "template": meta.get("template"),
        "filename": meta.get("filename"),
        "metadata": meta.get("metadata", {}),
        "created_at": iso(job.created_at),
        "started_at": meta.get("started_at"),
        "finished_at": finished_at,
        "attempts": meta.get("attempts", 0),
        "max_retries": meta.get("max_retries"),
        "progress": meta.get("progress") or {"step": "queued", "percent": 0},
        "queue_position": info.get("queue_position"),
        "estimated_wait_s": info.get("estimated_wait_s"),
        "error": meta.get("error") if status in (JobStatus.FAILED, JobStatus.RETRYING) else None,
        "result": meta.get("result") if status == JobStatus.COMPLETED else None,
        "links": links,
    }
