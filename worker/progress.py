"""Writes a job's state (meta) and announces it, in one Redis round trip."""
from __future__ import annotations

from typing import Callable

from redis.client import Pipeline
from rq.job import Job

from shared.events import announce


def save_state(job: Job, extra: Callable[[Pipeline], None] | None = None) -> None:
    """Persist `job.meta` (RQ re-saves this same object later, so it must stay current) and announce."""
    with job.connection.pipeline() as pipe:
        pipe.multi()  # explicit MULTI first, so RQ can add an enqueue (a webhook) to the same transaction
        pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
        if extra is not None:
            extra(pipe)
        announce(pipe, job.id)
        pipe.execute()


def reporter(job: Job) -> Callable[[str, int], None]:
    """A progress sink for the renderer: named steps with a rough percentage."""

    def report(step: str, percent: int) -> None:
        job.meta["progress"] = {"step": step, "percent": percent}
        save_state(job)

    return report
