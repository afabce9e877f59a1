"""Domain exceptions, each carrying the machine code clients see in `error.code`."""
from __future__ import annotations


class ConfigError(Exception):
    """The environment is unusable; the process refuses to start."""


class JobFailure(Exception):
    """A render attempt failed; `permanent` failures are not retried."""

    code = "render_error"
    permanent = False


class TemplateError(JobFailure):
    """Unknown template, syntax error, missing field or sandbox violation."""

    code = "template_error"
    permanent = True


class PageLimitExceeded(JobFailure):
    code = "page_limit"
    permanent = True


class PageRangeEmpty(JobFailure):
    """`options.page_ranges` keeps none of the rendered pages."""

    code = "page_range"
    permanent = True


class SecretsExpired(JobFailure):
    """An encrypted job's passwords are no longer in Redis (its backstop TTL passed before it ran)."""

    code = "secrets_expired"
    permanent = True


class RenderError(JobFailure):
    """WeasyPrint could not lay out or write the document."""

    code = "render_error"
    permanent = True


class EInvoiceInvalid(JobFailure):
    """The e-invoice XML (built or given) is not valid for its Factur-X profile."""

    code = "einvoice_invalid"
    permanent = True


class BrowserCrashed(JobFailure):
    """The Chromium engine's browser died or stopped answering; a fresh browser may well succeed."""

    code = "browser_crashed"


class RenderTimeout(JobFailure):
    """The engine gave up on a page that did not finish loading within the job's timeout_s."""

    code = "timeout"


class EngineUnavailable(JobFailure):
    """This worker cannot run the job's engine (no browser installed or it would not start); another may."""

    code = "engine_unavailable"


class StorageError(JobFailure):
    code = "storage_error"


class PdfTooLarge(StorageError):
    """The PDF exceeds what its store accepts; storing it again would fail the same way."""

    code = "pdf_too_large"
    permanent = True


TENANT_RETRY_AFTER_S = 10
"""Seconds a tenant at its limit is told to wait before submitting again."""
QUEUE_FULL_RETRY_AFTER_S = 30
"""Seconds clients are told to wait while all queues are full."""


class CapacityExceeded(Exception):
    """Nothing may be enqueued now; `code` is the contract's machine code, `retry_after_s` a fair wait."""

    code: str
    retry_after_s: int


class TenantLimitReached(CapacityExceeded):
    code = "tenant_limit"
    retry_after_s = TENANT_RETRY_AFTER_S


class QueueFull(CapacityExceeded):
    code = "queue_full"
    retry_after_s = QUEUE_FULL_RETRY_AFTER_S
