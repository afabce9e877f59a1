"""Writes a job's state and announces it, in one Redis round trip."""
from __future__ import annotations

from typing import Callable

from redis.client import Pipeline
from rq.job import Job

from shared.events import announce
from shared.job_state import JobState

REPORTED_STEPS = frozenset({"templating", "layout", "loading", "printing"})
"""Progress steps written to Redis: the attempt's start (its count and start time) and the layout, where a
render spends most of its time (for the Chromium engine: the page loading, and the print). Writing the PDF and storing it are not: every write costs Redis commands
and wakes every stream watching the job, and the job's end follows them closely."""


def save_state(job: Job, state: JobState, end: Callable[[Pipeline], None] | None = None, *,
               atomic: bool = True) -> None:
    """Persist the state on `job` (RQ re-saves this same object later, so it must stay current) and announce;
    `end` (shared.job_end) adds the job's ending to the same transaction, and announces it itself.

    `atomic` wraps it in MULTI/EXEC, so that RQ can add an enqueue (a webhook) to the same transaction; a
    progress step alone needs none.
    """
    with job.connection.pipeline(transaction=atomic) as pipe:
        if atomic:
            pipe.multi()
        state.save(job, pipe)
        if end is not None:
            end(pipe)
        else:
            announce(pipe, job.id)
        pipe.execute()


def reporter(job: Job, state: JobState) -> Callable[[str, int], None]:
    """A progress sink for the renderer: named steps with a rough percentage."""

    def report(step: str, percent: int) -> None:
        if step in REPORTED_STEPS:
            state.progress = {"step": step, "percent": percent}
            save_state(job, state, atomic=False)

    return report
