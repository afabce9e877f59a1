"""One JSON object per log line, for API, workers and scheduler alike."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_NEVER_LOGGED = {"arguments", "kwargs", "args", "data", "html"}
"""Fields RQ attaches to job log records that would carry template data into logs."""


class WithoutDocumentContent(logging.Filter):
    """Keeps WeasyPrint's fixed wording and drops what it fills in: the tenant's CSS, URLs, names and text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args:  # Its wording may itself be built from the document (an f-string).
            record.msg = "WeasyPrint message withheld: it may quote the document"
        record.args = ()
        record.exc_info = record.exc_text = record.stack_info = None
        return True


_WITHOUT_DOCUMENT_CONTENT = WithoutDocumentContent()


def quiet_weasyprint() -> None:
    """WeasyPrint reports each document's faults: keep errors only (unusable resources), without their content."""
    weasyprint_logger = logging.getLogger("weasyprint")
    weasyprint_logger.setLevel(logging.ERROR)
    if _WITHOUT_DOCUMENT_CONTENT not in weasyprint_logger.filters:
        weasyprint_logger.addFilter(_WITHOUT_DOCUMENT_CONTENT)
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _NEVER_LOGGED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, RQ's, WeasyPrint's) through the JSON formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_weasyprint()
