"""Writes a job's state and announces it, in one Redis round trip."""
from __future__ import annotations

from typing import Callable

from redis.client import Pipeline
from rq.job import Job

from shared.events import announce
from shared.job_state import JobState


def save_state(job: Job, state: JobState, end: Callable[[Pipeline], None] | None = None) -> None:
    """Persist the state on `job` (RQ re-saves this same object later, so it must stay current) and announce;
    `end` (shared.job_end) adds the job's ending to the same transaction, and announces it itself."""
    with job.connection.pipeline() as pipe:
        pipe.multi()  # explicit MULTI first, so RQ can add an enqueue (a webhook) to the same transaction
        state.save(job, pipe)
        if end is not None:
            end(pipe)
        else:
            announce(pipe, job.id)
        pipe.execute()


def reporter(job: Job, state: JobState) -> Callable[[str, int], None]:
    """A progress sink for the renderer: named steps with a rough percentage."""

    def report(step: str, percent: int) -> None:
        state.progress = {"step": step, "percent": percent}
        save_state(job, state)

    return report
