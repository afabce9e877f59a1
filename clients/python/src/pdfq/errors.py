"""What the client raises: the service's problem+json answers and the ways a job can end badly."""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from pdfq.models import Job


class PdfqError(Exception):
    """Base of every error this client raises itself."""


class ApiError(PdfqError):
    """The service refused a request; the fields are those of its problem+json body."""

    def __init__(self, status: int, body: dict[str, Any], retry_after_s: float | None = None) -> None:
        self.status = status
        self.body = body
        self.code: str = str(body.get("code") or "error")
        self.title: str = str(body.get("title") or "")
        self.detail: str = str(body.get("detail") or "")
        self.errors: list[dict[str, Any]] = list(body.get("errors") or [])
        self.retry_after_s = retry_after_s
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors)
        super().__init__(f"{status} {self.code}: {self.detail}" + (f" ({fields})" if fields else ""))

    @classmethod
    def from_response(cls, response: httpx.Response, retry_after_s: float | None = None) -> ApiError:
        """Read the problem+json body; anything else (a proxy's HTML page) becomes its first 200 characters."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"detail": response.text[:200]}
        return cls(response.status_code, body, retry_after_s)


class JobEnded(PdfqError):
    """The job ended without a PDF; `job` is its final state."""

    def __init__(self, job: Job, message: str) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(JobEnded):
    """The job failed for good; `code` is the contract's `error.code` (e.g. `template_error`)."""

    def __init__(self, job: Job) -> None:
        self.code = job.error.code if job.error else "unknown"
        self.message = job.error.message if job.error else ""
        super().__init__(job, f"job {job.id} failed: {self.code}: {self.message}")


class JobCanceled(JobEnded):
    """The job was canceled before it completed."""

    def __init__(self, job: Job) -> None:
        super().__init__(job, f"job {job.id} was canceled")


class TimeoutError(PdfqError, builtins.TimeoutError):  # noqa: A001 (the contract's name; still a builtin TimeoutError)
    """The job did not end within the wait's timeout; `job` is the last state seen (it goes on running)."""

    def __init__(self, job: Job, timeout_s: float) -> None:
        super().__init__(f"job {job.id} still {job.status.value} after {timeout_s:g} s")
        self.job = job
        self.timeout_s = timeout_s
