"""Batches: one id for the jobs of a `POST /v1/jobs/batch`, their counts by status, and a stream of their ends."""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Iterator

from flask import Blueprint, Response, g, stream_with_context

from api.auth import require_tenant
from api.context import ctx
from api.errors import ApiError
from api.events import RESYNC_INTERVAL_S, sse
from api.jobs import resource
from api.lookup import JOB_ID
from shared import keys
from shared.batches import batch_links
from shared.job_rows import JobRow, read_rows
from shared.records import FINAL_STATUSES, JobStatus, status_of

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")

EXPIRED = "expired"
"""The count of a batch's jobs whose records have passed retention."""


def _job_ids(batch_id: str) -> list[str]:
    """The tenant's batch; another tenant's answers exactly like a missing one."""
    tenant, jobs = ctx().connection.hmget(keys.batch(batch_id), ["tenant", "jobs"]) if JOB_ID.match(batch_id) \
        else (None, None)
    if tenant is None or tenant.decode() != g.tenant or jobs is None:
        raise ApiError(404, "not_found", f"no batch {batch_id!r}")
    return json.loads(jobs)


def _status(row: JobRow | None) -> str:
    return status_of(row).value if row is not None else EXPIRED  # type: ignore[arg-type]


def _counts(batch_id: str, job_ids: list[str], rows: list[JobRow | None]) -> dict[str, Any]:
    counts = Counter(_status(row) for row in rows)
    ended = {s.value for s in FINAL_STATUSES} | {EXPIRED}
    return {"id": batch_id, "total": len(job_ids),
            "counts": {name: counts.get(name, 0) for name in [s.value for s in JobStatus] + [EXPIRED]},
            "done": all(status in ended for status in counts), "job_ids": job_ids, "links": batch_links(batch_id)}


@bp.get("/<batch_id>")
@require_tenant
def get_batch(batch_id: str) -> Any:
    job_ids = _job_ids(batch_id)
    return _counts(batch_id, job_ids, read_rows(ctx().connection, job_ids))


@bp.get("/<batch_id>/events")
@require_tenant
def batch_events(batch_id: str) -> Response:
    """`event: job` with each job's resource as it ends (at once for those already ended), then `event: done`."""
    job_ids = _job_ids(batch_id)
    connection, feed, keepalive_s = ctx().connection, ctx().job_feed, ctx().settings.sse_keepalive_s

    def stream() -> Iterator[str]:
        pending = set(job_ids)
        to_read = list(job_ids)
        last_sent = time.monotonic()
        with feed.watch_many(job_ids) as changes:
            while True:
                for job_id, row in zip(to_read, read_rows(connection, to_read)):
                    if row is None or status_of(row) in FINAL_STATUSES:  # type: ignore[arg-type]
                        pending.discard(job_id)
                        last_sent = time.monotonic()
                        yield sse("job", resource(row) if row is not None  # type: ignore[arg-type]
                                  else {"id": job_id, "status": EXPIRED}, job_id)
                if not pending:
                    yield sse("done", _counts(batch_id, job_ids, read_rows(connection, job_ids)), "done")
                    return
                woke = changes.wait(min(RESYNC_INTERVAL_S, max(0.0, last_sent + keepalive_s - time.monotonic())))
                announced = changes.take()
                # Only the jobs announced are read again; after a quiet spell all pending ones (a message may be lost).
                to_read = [j for j in job_ids if j in pending and (j in announced or not woke)]
                if time.monotonic() - last_sent >= keepalive_s:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
