"""GET /v1/jobs/<id>/events: Server-Sent Events of a job's status and progress until it ends."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

from flask import Blueprint, Response, g, stream_with_context
from rq.exceptions import NoSuchJobError

from api.auth import require_tenant_or_token
from api.context import ctx
from api.jobs import resource
from api.lookup import find_job
from shared import keys

bp = Blueprint("events", __name__)

WAKE_INTERVAL_S = 1.0
"""Longest a stream sleeps without re-reading the job, in case an announcement was missed."""


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@bp.get("/v1/jobs/<job_id>/events")
@require_tenant_or_token("events")
def job_events(job_id: str) -> Response:
    job = find_job(job_id, g.tenant)
    connection = ctx().connection
    keepalive_s = ctx().settings.sse_keepalive_s

    def stream() -> Iterator[str]:
        pubsub = connection.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.job_events(job_id))
        last_state = None
        last_sent = time.monotonic()
        try:
            while True:
                current = resource(job)
                state = (current["status"], current["progress"], current["attempts"])
                if state != last_state:
                    last_state = state
                    last_sent = time.monotonic()
                    yield sse("status", current)
                if current["status"] in ("completed", "failed", "canceled"):
                    yield sse("done", current)
                    return
                pubsub.get_message(timeout=WAKE_INTERVAL_S)
                if time.monotonic() - last_sent > keepalive_s:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"
                try:
                    job.refresh()
                except NoSuchJobError:
                    return
        finally:
            pubsub.close()

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
