"""`AsyncClient`: the same calls as `Client`, as coroutines for asyncio applications."""
from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, AsyncIterator, Iterable, Mapping

import httpx

from pdfq import calls, config
from pdfq.base import ClientBase
from pdfq.calls import DEFAULT_PAGE_SIZE, Call
from pdfq.errors import ApiError
from pdfq.models import Job, JobStatus, Priority, Template
from pdfq.retry import DEFAULT_MAX_RETRIES, SINGLE_ATTEMPT, RetryPolicy
from pdfq.sink import Destination, PdfSink
from pdfq.waiting import DEFAULT_WAIT_TIMEOUT_S, OnUpdate, Waiter


class AsyncClient(ClientBase):
    """A connection pool to one service with one API key; `await aclose()` it (or use `async with`) when done."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = config.DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout_s, max_retries)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout_s,
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit_job(self, template: str | None = None, data: Mapping[str, Any] | None = None,
                         filename: str | None = None, priority: Priority | None = None, *, html: str | None = None,
                         options: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                         webhook_url: str | None = None, idempotency_key: str | None = None, **fields: Any) -> Job:
        """As `Client.submit_job`."""
        body = calls.job_request(template, data, filename, priority, html, options, metadata, webhook_url, fields)
        return Job.from_resource((await self._send(calls.submit_job(body, idempotency_key))).json())

    async def submit_batch(self, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        return [Job.from_resource(raw) for raw in (await self._send(calls.submit_batch(jobs))).json()["jobs"]]

    async def get_job(self, job: Job | str) -> Job:
        return Job.from_resource((await self._send(calls.get_job(job))).json())

    async def get_job_status(self, job: Job | str) -> JobStatus:
        return (await self.get_job(job)).status

    async def wait_for_job(self, job: Job | str, timeout: float | None = DEFAULT_WAIT_TIMEOUT_S, *,
                           on_update: OnUpdate | None = None) -> Job:
        """As `Client.wait_for_job`."""
        waiter = Waiter(job if isinstance(job, Job) else await self.get_job(job), timeout, on_update)
        while not waiter.done:
            waiter.remaining_s()
            if waiter.stale:
                waiter.update(await self.get_job(waiter.job))
            elif waiter.polling:
                await asyncio.sleep(waiter.poll_delay())
            else:
                try:
                    await asyncio.wait_for(self._follow(waiter), waiter.remaining_s())
                except (httpx.TransportError, ApiError, asyncio.TimeoutError):
                    pass
                if not waiter.done:
                    await asyncio.sleep(waiter.stream_lost())
        return waiter.result()

    async def _follow(self, waiter: Waiter) -> None:
        stream = await self._send(waiter.stream_call(), stream=True, timeout=self._stream_timeout(waiter),
                                  policy=SINGLE_ATTEMPT)
        try:
            async for line in stream.aiter_lines():
                if waiter.on_line(line):
                    return
        finally:
            await stream.aclose()

    async def download(self, job: Job | str, destination: Destination) -> int:
        """As `Client.download` (a path is written with blocking file calls: PDFs are small)."""
        response = await self._send(calls.download(job), stream=True)
        try:
            with PdfSink(destination) as sink:
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        finally:
            await response.aclose()
        return sink.written

    async def cancel_job(self, job: Job | str) -> Job:
        return Job.from_resource((await self._send(calls.cancel_job(job))).json())

    async def retry_job(self, job: Job | str) -> Job:
        return Job.from_resource((await self._send(calls.retry_job(job))).json())

    async def list_jobs(self, status: JobStatus | str | None = None, *,
                        page_size: int = DEFAULT_PAGE_SIZE) -> AsyncIterator[Job]:
        """As `Client.list_jobs`, for `async for`."""
        cursor = None
        while True:
            page = (await self._send(calls.list_jobs(status, page_size, cursor))).json()
            for raw in page["jobs"]:
                yield Job.from_resource(raw)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def get_queue_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self._send(calls.queue_stats())).json()
        return stats

    async def templates(self) -> list[Template]:
        return [Template.from_resource(raw) for raw in (await self._send(calls.templates())).json()["templates"]]

    async def _send(self, call: Call, *, stream: bool = False, timeout: httpx.Timeout | None = None,
                    policy: RetryPolicy | None = None) -> httpx.Response:
        """As `Client._send`."""
        policy = policy or self._retry
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json,
                                           headers=call.headers, timeout=timeout or self._timeout_s)
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                response = await self._http.send(request, stream=True)
                if stream and response.is_success:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.TransportError as error:
                outcome = error
            else:
                if response.is_success:
                    return response
                outcome = response
            await asyncio.sleep(policy.next_delay(call, attempt, outcome))
            attempt += 1
