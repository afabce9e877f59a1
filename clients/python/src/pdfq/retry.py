"""When a request is sent again, and after how long: 429/503 as Retry-After says, lost connections with back-off."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from pdfq.calls import Call
from pdfq.errors import ApiError

DEFAULT_MAX_RETRIES = 3
"""How many times one request is sent again before its error reaches the caller."""
MAX_RETRY_AFTER_S = 60.0
"""Longest Retry-After the client waits out, in seconds; a service asking for more gets its error handed on."""
BACKOFF_START_S = 0.5
"""Wait before the first retry when the service names none (a lost connection), in seconds; doubles per retry."""
RETRIED_STATUSES = frozenset({429, 503})
"""The service's answers for "not now": `tenant_limit`, `rate_limited`, `queue_full`, `backend_unavailable`."""


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How one client retries; `max_retries=0` sends each request once."""

    max_retries: int = DEFAULT_MAX_RETRIES
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def after_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending the request again after this error answer, or None to give up."""
        if response.status_code not in RETRIED_STATUSES or attempt >= self.max_retries:
            return None
        wait = retry_after_s(response)
        if wait is None:
            return self._backoff(attempt)
        return wait if wait <= self.max_retry_after_s else None

    def after_error(self, call: Call, error: httpx.TransportError, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again after a network failure, or None to give up.

        A refused connection never reached the service; any other failure may have lost an answer, so only a
        call that cannot do its work twice is sent again.
        """
        unsent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
        if attempt >= self.max_retries or not (unsent or call.retry_safe):
            return None
        return self._backoff(attempt)

    def next_delay(self, call: Call, attempt: int, outcome: httpx.Response | httpx.TransportError) -> float:
        """Seconds to wait before sending `call` again after this failed `attempt`; raises `ApiError` (or the
        network error) when it is not to be sent again."""
        if isinstance(outcome, httpx.TransportError):
            delay = self.after_error(call, outcome, attempt)
            if delay is None:
                raise outcome
            return delay
        delay = self.after_response(outcome, attempt)
        if delay is None:
            raise ApiError.from_response(outcome, retry_after_s(outcome))
        return delay

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(BACKOFF_START_S * 2**attempt * random.uniform(0.5, 1.0))


SINGLE_ATTEMPT = RetryPolicy(max_retries=0)
"""For a job's event stream, which a wait reopens (or gives up on) by its own rules."""
