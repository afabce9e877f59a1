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


class RenderError(JobFailure):
    """WeasyPrint could not lay out or write the document."""

    code = "render_error"
    permanent = True


class StorageError(JobFailure):
    code = "storage_error"


class PdfTooLarge(StorageError):
    """The PDF exceeds what its store accepts; storing it again would fail the same way."""

    code = "pdf_too_large"
    permanent = True
