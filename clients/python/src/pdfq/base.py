"""What `Client` and `AsyncClient` share: the service's address and key, the retry policy, the stream's timeout."""
from __future__ import annotations

import httpx

from pdfq import config
from pdfq.models import Job
from pdfq.retry import RetryPolicy
from pdfq.waiting import Waiter


class ClientBase:
    def __init__(self, base_url: str | None, api_key: str | None, timeout_s: float, max_retries: int) -> None:
        self.base_url = config.service_url(base_url)
        self._headers = config.headers(config.api_key(api_key))
        self._timeout_s = timeout_s
        self._retry = RetryPolicy(max_retries=max_retries)

    def pdf_url(self, job: Job) -> str:
        """The job's PDF link with its token as an absolute URL, for a browser; no request is made. It is valid
        for the service's LINK_TTL_S after `job` was read: read the job again for a fresh one."""
        return str(httpx.URL(self.base_url).join(job.links["pdf"]))

    def _stream_timeout(self, waiter: Waiter) -> httpx.Timeout:
        return httpx.Timeout(self._timeout_s, read=waiter.stream_read_timeout_s())
