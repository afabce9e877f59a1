"""The service's resources as typed values: a job, its progress, error and result, and a template."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping

Priority = Literal["urgent", "high", "normal", "low"]


class JobStatus(str, enum.Enum):
    """A job's status, as the contract spells it."""

    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


def _time(value: Any) -> datetime | None:
    # `fromisoformat` takes a trailing `Z` only from Python 3.11 on.
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


@dataclass(frozen=True)
class Progress:
    step: str
    percent: int


@dataclass(frozen=True)
class JobError:
    """Why an attempt failed: `code` is machine-readable (`template_error`, `render_error`, `timeout`, …)."""

    code: str
    message: str


@dataclass(frozen=True)
class JobResult:
    """What a completed job produced; `raw` also holds what later service versions add."""

    bytes: int
    pages: int
    sha256: str
    expires_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Job:
    """A job resource; `raw` is the resource exactly as the service sent it."""

    id: str
    status: JobStatus
    priority: str
    template: str | None
    filename: str | None
    metadata: Mapping[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_retries: int | None
    progress: Progress
    queue_position: int | None
    estimated_wait_s: float | None
    error: JobError | None
    result: JobResult | None
    links: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_resource(cls, raw: Mapping[str, Any]) -> Job:
        progress = raw.get("progress") or {}
        error = raw.get("error")
        result = raw.get("result")
        return cls(
            id=raw["id"],
            status=JobStatus(raw["status"]),
            priority=raw.get("priority") or "normal",
            template=raw.get("template"),
            filename=raw.get("filename"),
            metadata=raw.get("metadata") or {},
            created_at=_time(raw.get("created_at")),
            started_at=_time(raw.get("started_at")),
            finished_at=_time(raw.get("finished_at")),
            attempts=raw.get("attempts") or 0,
            max_retries=raw.get("max_retries"),
            progress=Progress(step=progress.get("step", ""), percent=progress.get("percent", 0)),
            queue_position=raw.get("queue_position"),
            estimated_wait_s=raw.get("estimated_wait_s"),
            error=JobError(code=error.get("code", ""), message=error.get("message", "")) if error else None,
            result=JobResult(bytes=result.get("bytes", 0), pages=result.get("pages", 0),
                             sha256=result.get("sha256", ""), expires_at=_time(result.get("expires_at")),
                             raw=result) if result else None,
            links=raw.get("links") or {},
            raw=raw,
        )


@dataclass(frozen=True)
class Template:
    """A built-in template; `sample_data` is a valid `data` object for it."""

    name: str
    description: str
    sample_data: Mapping[str, Any]

    @classmethod
    def from_resource(cls, raw: Mapping[str, Any]) -> Template:
        return cls(name=raw["name"], description=raw.get("description") or "", sample_data=raw.get("sample_data") or {})

