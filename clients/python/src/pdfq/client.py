"""`Client`: the service's API as blocking calls, with retries, streaming and polling done for the caller."""
from __future__ import annotations

import time
from contextlib import closing
from types import TracebackType
from typing import Any, Iterable, Iterator, Mapping

import httpx

from pdfq import calls, config
from pdfq.base import ClientBase
from pdfq.calls import DEFAULT_PAGE_SIZE, Call
from pdfq.errors import ApiError
from pdfq.models import Job, JobStatus, Priority, Template
from pdfq.retry import DEFAULT_MAX_RETRIES, SINGLE_ATTEMPT, RetryPolicy
from pdfq.sink import Destination, PdfSink
from pdfq.waiting import DEFAULT_WAIT_TIMEOUT_S, OnUpdate, Waiter



class Client(ClientBase):
    """A connection pool to one service with one API key; close it (or use `with`) when done."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = config.DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout_s, max_retries)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout_s, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit_job(self, template: str | None = None, data: Mapping[str, Any] | None = None,
                   filename: str | None = None, priority: Priority | None = None, *, html: str | None = None,
                   options: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                   webhook_url: str | None = None, idempotency_key: str | None = None, **fields: Any) -> Job:
        """Queue one render (a built-in `template`, or inline `html`); other job fields (css, timeout_s, parts,
        …) go in `fields`. Retried submits carry one Idempotency-Key, so they never make a second job."""
        body = calls.job_request(template, data, filename, priority, html, options, metadata, webhook_url, fields)
        return Job.from_resource(self._send(calls.submit_job(body, idempotency_key)).json())

    def submit_batch(self, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Queue 1..500 job requests (the JSON of `POST /v1/jobs` each) all or nothing."""
        return [Job.from_resource(raw) for raw in self._send(calls.submit_batch(jobs)).json()["jobs"]]

    def get_job(self, job: Job | str) -> Job:
        return Job.from_resource(self._send(calls.get_job(job)).json())

    def get_job_status(self, job: Job | str) -> JobStatus:
        return self.get_job(job).status

    def wait_for_job(self, job: Job | str, timeout: float | None = DEFAULT_WAIT_TIMEOUT_S, *,
                     on_update: OnUpdate | None = None) -> Job:
        """The completed job; raises JobFailed, JobCanceled, or TimeoutError after `timeout` seconds.

        Follows the job's event stream; a dropped stream is resumed with Last-Event-ID (or the job re-read when
        the stream gave no id), and after repeated drops the job is polled with back-off. `on_update` gets each
        new state (status or progress) as it is seen.
        """
        waiter = Waiter(job if isinstance(job, Job) else self.get_job(job), timeout, on_update)
        while not waiter.done:
            waiter.remaining_s()
            if waiter.stale:
                waiter.update(self.get_job(waiter.job))
            elif waiter.polling:
                time.sleep(waiter.poll_delay())
            else:
                try:
                    self._follow(waiter)
                except (httpx.TransportError, ApiError):
                    pass
                if not waiter.done:
                    time.sleep(waiter.stream_lost())
        return waiter.result()

    def _follow(self, waiter: Waiter) -> None:
        """Read the job's stream until the job ends or the stream does."""
        stream = self._send(waiter.stream_call(), stream=True, timeout=self._stream_timeout(waiter),
                            policy=SINGLE_ATTEMPT)
        with closing(stream):
            for line in stream.iter_lines():
                if waiter.on_line(line):
                    return

    def download(self, job: Job | str, destination: Destination) -> int:
        """Write the job's PDF to a path or a binary file object; returns the bytes written."""
        with closing(self._send(calls.download(job), stream=True)) as response, PdfSink(destination) as sink:
            for chunk in response.iter_bytes():
                sink.write(chunk)
        return sink.written

    def cancel_job(self, job: Job | str) -> Job:
        return Job.from_resource(self._send(calls.cancel_job(job)).json())

    def retry_job(self, job: Job | str) -> Job:
        """Run a failed or canceled job again, with fresh attempts."""
        return Job.from_resource(self._send(calls.retry_job(job)).json())

    def list_jobs(self, status: JobStatus | str | None = None, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Job]:
        """Every job of the tenant (newest first, optionally of one status), fetching page after page."""
        cursor = None
        while True:
            page = self._send(calls.list_jobs(status, page_size, cursor)).json()
            yield from (Job.from_resource(raw) for raw in page["jobs"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_queue_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._send(calls.queue_stats()).json()
        return stats

    def templates(self) -> list[Template]:
        return [Template.from_resource(raw) for raw in self._send(calls.templates()).json()["templates"]]

    def _send(self, call: Call, *, stream: bool = False, timeout: httpx.Timeout | None = None,
              policy: RetryPolicy | None = None) -> httpx.Response:
        """The successful answer to `call` (with `stream`, still open: the caller closes it); error answers
        and network failures are retried as the policy says, then raised."""
        policy = policy or self._retry
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json,
                                           headers=call.headers, timeout=timeout or self._timeout_s)
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                response = self._http.send(request, stream=True)
                if stream and response.is_success:
                    return response
                with closing(response):
                    response.read()
            except httpx.TransportError as error:
                outcome = error
            else:
                if response.is_success:
                    return response
                outcome = response
            time.sleep(policy.next_delay(call, attempt, outcome))
            attempt += 1
