"""Where the client finds the service and its key: arguments, else PDFQ_URL / PDFQ_API_KEY, else `make run`'s."""
from __future__ import annotations

import os

from pdfq.version import __version__

DEFAULT_URL = "http://127.0.0.1:8000"
"""The service `make run` starts."""
DEFAULT_API_KEY = "dev-key"
"""The one key of a development service (API_KEYS unset)."""
DEFAULT_TIMEOUT_S = 30.0
"""Connect and read timeout of one request, in seconds (a job's event stream has its own idle timeout)."""


def service_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("PDFQ_URL") or DEFAULT_URL).rstrip("/")


def api_key(key: str | None) -> str:
    return key or os.environ.get("PDFQ_API_KEY") or DEFAULT_API_KEY


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "User-Agent": f"pdfq-client/{__version__}"}
