"""The service's routes as request descriptions, shared by the sync and the async client (no I/O here)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from pdfq.models import Job, JobStatus

DEFAULT_PAGE_SIZE = 50
"""Jobs asked for per page when listing (the service allows 1..200)."""


@dataclass(frozen=True)
class Call:
    """One HTTP request to make; `retry_safe`: sending it again after a lost answer cannot do the work twice."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_safe: bool = False


def job_id(job: Job | str) -> str:
    return job.id if isinstance(job, Job) else job


def _job_path(job: Job | str, tail: str = "") -> str:
    return f"/v1/jobs/{quote(job_id(job), safe='')}{tail}"


def submit_job(body: dict[str, Any], idempotency_key: str | None) -> Call:
    """A key per submit (the caller's, else a fresh one), so a retried submit answers the job it made."""
    return Call("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
                retry_safe=True)


def job_request(template: str | None, data: Mapping[str, Any] | None, filename: str | None, priority: str | None,
                html: str | None, options: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None,
                webhook_url: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a job request; fields left as None are left out, so the service's defaults apply."""
    given = {"template": template, "html": html, "data": data, "priority": priority, "filename": filename,
             "options": options, "metadata": metadata, "webhook_url": webhook_url, **fields}
    return {name: value for name, value in given.items() if value is not None}


def submit_batch(items: Iterable[Mapping[str, Any]]) -> Call:
    # Batches take no Idempotency-Key: one refused with 429/503 made no job (capacity is checked before any
    # of it is enqueued, in one transaction) and is sent again, but one whose answer was lost is not.
    return Call("POST", "/v1/jobs/batch", json={"jobs": [dict(item) for item in items]})


def get_job(job: Job | str) -> Call:
    return Call("GET", _job_path(job), retry_safe=True)


def cancel_job(job: Job | str) -> Call:
    return Call("DELETE", _job_path(job))


def retry_job(job: Job | str) -> Call:
    return Call("POST", _job_path(job, "/retry"))


def download(job: Job | str) -> Call:
    return Call("GET", _job_path(job, "/pdf"), retry_safe=True)


def list_jobs(status: JobStatus | str | None, page_size: int, cursor: str | None) -> Call:
    params = {"limit": str(page_size)}
    if status is not None:
        params["status"] = status.value if isinstance(status, JobStatus) else status
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/jobs", params=params, retry_safe=True)


def queue_stats() -> Call:
    return Call("GET", "/v1/queue/stats", retry_safe=True)


def templates() -> Call:
    return Call("GET", "/v1/templates", retry_safe=True)


def events(url: str, last_event_id: str | None) -> Call:
    """The job's own `links.events` (its token authorises it), resumed after `last_event_id` when known."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", url, headers=headers, retry_safe=True)
