"""GET /v1/jobs/<id>/events: Server-Sent Events of a job's status and progress until it ends."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

from flask import Blueprint, Response, g, request, stream_with_context
from rq.exceptions import NoSuchJobError

from api.auth import require_tenant_or_token
from api.context import ctx
from api.jobs import resource
from api.lookup import find_job
from shared.job_state import JobState
from shared.records import FINAL_STATUSES, JobStatus, status_of

bp = Blueprint("events", __name__)

RESYNC_INTERVAL_S = 5.0
"""Longest a stream waits without re-reading its job, in case an announcement was lost (Redis reconnect)."""


def sse(event: str, data: dict[str, Any], event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def state_id(status: JobStatus, progress: dict[str, Any], attempts: int) -> str:
    """An event's id names the job state it reports, so a reconnecting client (Last-Event-ID) is sent only
    what changed since: the same state is not sent again."""
    return f"{attempts}.{status.value}.{progress.get('step')}.{progress.get('percent')}"


@bp.get("/v1/jobs/<job_id>/events")
@require_tenant_or_token("events")
def job_events(job_id: str) -> Response:
    job = find_job(job_id, g.tenant)
    feed = ctx().job_feed
    keepalive_s = ctx().settings.sse_keepalive_s
    seen_id = request.headers.get("Last-Event-ID")

    def stream() -> Iterator[str]:
        last_state = None
        last_sent = time.monotonic()
        with feed.watch(job_id) as changed:
            while True:
                changed.clear()  # before the read: a change announced from here on ends the wait below
                try:
                    job.refresh()
                except NoSuchJobError:
                    return
                # The cheap part of the resource decides; the full one (queue position) only when sent.
                job_state = JobState.from_job(job)
                state = (status_of(job), job_state.progress, job_state.attempts)
                if state != last_state:
                    last_state = state
                    last_sent = time.monotonic()
                    current = resource(job)
                    event_id = state_id(*state)
                    if event_id != seen_id:  # a resumed stream skips the state its client last received
                        yield sse("status", current, event_id)
                    if state[0] in FINAL_STATUSES:
                        yield sse("done", current, event_id)
                        return
                changed.wait(min(RESYNC_INTERVAL_S, max(0.0, last_sent + keepalive_s - time.monotonic())))
                if time.monotonic() - last_sent >= keepalive_s:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
