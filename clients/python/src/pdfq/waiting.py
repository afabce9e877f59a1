"""Waiting for a job to end: follow its event stream, resume or re-read it when the stream drops, poll when
streaming does not work. The clients do the I/O; the decisions are made here, once for both."""
from __future__ import annotations

import json
import time
from typing import Callable

from pdfq import calls
from pdfq.calls import Call
from pdfq.errors import JobCanceled, JobFailed, TimeoutError
from pdfq.models import Job, JobStatus
from pdfq.sse import EventParser

DEFAULT_WAIT_TIMEOUT_S = 300.0
"""How long `wait_for_job` waits for a job to end, in seconds (None waits for ever)."""
STREAM_IDLE_TIMEOUT_S = 45.0
"""A job's stream silent this long counts as dropped, in seconds: the service sends a keep-alive every 15 s."""
RECONNECT_START_S = 0.1
"""Wait before reopening a dropped stream, in seconds, doubled per drop without news (or the stream's `retry:`)."""
MAX_STREAM_FAILURES = 3
"""Drops in a row without news, after which the wait polls the job instead of streaming."""
POLL_START_S = 0.25
"""First polling interval, in seconds; it grows by half after each poll without news, up to POLL_MAX_S."""
POLL_MAX_S = 5.0
POLL_GROWTH = 1.5

OnUpdate = Callable[[Job], None]


class Waiter:
    """The state of one wait: the job as last seen, the stream's last event id, the failure count and the clock."""

    def __init__(self, job: Job, timeout_s: float | None, on_update: OnUpdate | None = None) -> None:
        self.job = job
        self.timeout_s = timeout_s
        self.polling = False  # streaming was given up: the job is polled
        self.stale = False  # the job must be re-read before the next step (a stream dropped with no id to resume)
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._on_update = on_update
        self._parser = EventParser()  # one per wait: its last event id outlives each connection
        self._failures = 0
        self._poll_s = POLL_START_S
        if on_update is not None:
            on_update(job)

    @property
    def done(self) -> bool:
        return self.job.status.final

    def result(self) -> Job:
        """The completed job, or the error that says how it ended otherwise."""
        if self.job.status is JobStatus.FAILED:
            raise JobFailed(self.job)
        if self.job.status is JobStatus.CANCELED:
            raise JobCanceled(self.job)
        return self.job

    def remaining_s(self) -> float | None:
        """Seconds left to wait (None: no limit); raises TimeoutError once none are."""
        if self._deadline is None or self.timeout_s is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.job, self.timeout_s)
        return left

    def stream_call(self) -> Call:
        link = self.job.links.get("events") or f"{calls.get_job(self.job).path}/events"  # the Bearer key serves too
        return calls.events(link, self._parser.last_event_id)

    def stream_read_timeout_s(self) -> float:
        left = self.remaining_s()
        return STREAM_IDLE_TIMEOUT_S if left is None else min(STREAM_IDLE_TIMEOUT_S, left)

    def update(self, job: Job) -> bool:
        """Take a newer state of the job; True if it is news (status, progress or attempts changed)."""
        news = (job.status, job.progress, job.attempts) != (self.job.status, self.job.progress, self.job.attempts)
        self.job = job
        self.stale = False
        if news:
            self._poll_s = POLL_START_S
            if self._on_update is not None:
                self._on_update(job)
        return news

    def on_line(self, line: str) -> bool:
        """Feed one line of the stream; True once the job has ended (the stream can be closed)."""
        event = self._parser.feed(line)
        if event is not None and event.event in ("status", "done"):
            if self.update(Job.from_resource(json.loads(event.data))):
                self._failures = 0  # the stream works: a later drop starts the count afresh
        return self.done

    def stream_lost(self) -> float:
        """The stream ended or broke before the job did: seconds to wait before the next step."""
        self._failures += 1
        self.stale = self._parser.last_event_id is None
        if self._failures >= MAX_STREAM_FAILURES:
            self.polling = True
        retry_ms = self._parser.retry_ms
        delay = retry_ms / 1000 if retry_ms is not None else RECONNECT_START_S * 2 ** (self._failures - 1)
        return self._bounded(delay)

    def poll_delay(self) -> float:
        """Seconds to sleep before the next poll; the job must be re-read after it."""
        delay = self._bounded(self._poll_s)
        self._poll_s = min(POLL_MAX_S, self._poll_s * POLL_GROWTH)
        self.stale = True
        return delay

    def _bounded(self, delay: float) -> float:
        left = self.remaining_s()
        return delay if left is None else min(delay, left)
