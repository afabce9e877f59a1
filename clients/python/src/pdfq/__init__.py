"""Python client of the pdfq HTML-to-PDF service: `Client` (blocking) and `AsyncClient` (asyncio)."""
from __future__ import annotations

from pdfq.async_client import AsyncClient
from pdfq.client import Client
from pdfq.errors import ApiError, JobCanceled, JobEnded, JobFailed, PdfqError, TimeoutError
from pdfq.models import Job, JobError, JobResult, JobStatus, Progress, Template
from pdfq.version import __version__
from pdfq.webhooks import job_from_webhook, verify_signature

__all__ = [
    "ApiError", "AsyncClient", "Client", "Job", "JobCanceled", "JobEnded", "JobError", "JobFailed", "JobResult",
    "JobStatus", "PdfqError", "Progress", "Template", "TimeoutError", "job_from_webhook", "verify_signature",
    "__version__",
]
