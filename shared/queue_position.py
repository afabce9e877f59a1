"""Where a queued job stands and how long it will likely wait, in fair-share order, from live figures."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Any, Protocol, Sequence

from redis import Redis
from redis.client import Pipeline

from shared import keys
from shared.fair_share import FairShare
from shared.job_state import JobState
from shared.workers import add_live_count

RECENT_FOR_ESTIMATE = 100
"""How many recent render times feed the wait estimate."""
DEFAULT_RENDER_S = 1.0
"""Assumed render time, in seconds, before any job has completed."""


@dataclass(frozen=True)
class QueueSnapshot:
    workers: int
    avg_render_s: float

    READS = 2
    """Replies `add_reads` queues on a pipeline, to hand back to `from_replies`."""

    @classmethod
    def add_reads(cls, pipe: Pipeline) -> None:
        """Queue the reads on a caller's pipeline, so a snapshot can ride along with an enqueue.

        Workers are counted live (registration key unexpired), not by SCARD of `rq:workers`, which
        keeps killed workers' names: still one command in the same round trip, whose Redis-side cost
        grows only with the number of workers (a few EXISTS each).
        """
        pipe.lrange(keys.stats("render_ms"), 0, RECENT_FOR_ESTIMATE - 1)
        add_live_count(pipe)

    @classmethod
    def from_replies(cls, replies: list[Any]) -> QueueSnapshot:
        recent, workers = replies[-cls.READS:]
        avg = fmean(float(ms) for ms in recent) / 1000 if recent else DEFAULT_RENDER_S
        return cls(workers, avg)

    def position(self, ahead: int | None) -> dict[str, float | int | None]:
        """The job resource's `queue_position` (jobs that start before it; 0 = next) and the wait that implies.

        A queued job waiting nowhere (-1) has been taken by a worker that has not yet marked it started: it is next.
        """
        if ahead is None or ahead < 0:
            return {"queue_position": 0, "estimated_wait_s": 0.0}
        rounds = ahead // max(self.workers, 1) + 1
        return {"queue_position": ahead, "estimated_wait_s": round(rounds * self.avg_render_s, 2)}


class Placed(Protocol):
    """What placing a job reads: an RQ job or a cheap job row (`shared/job_rows.py`) both have it."""

    @property
    def id(self) -> str: ...

    @property
    def meta(self) -> dict[str, Any]: ...


def add_places(pipe: Pipeline, connection: Redis, fair: FairShare, jobs: Sequence[Placed]) -> None:
    """Queue on a pipeline, for each job, the count of jobs that start before it (fair order)."""
    for job in jobs:
        state = JobState.from_meta(job.meta)
        fair.add_place(pipe, connection, state.priority, state.tenant, job.id)


def places(connection: Redis, fair: FairShare, jobs: Sequence[Placed]) -> tuple[QueueSnapshot, list[int]]:
    """Each job's place and a snapshot for the estimates, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        add_places(pipe, connection, fair, jobs)
        QueueSnapshot.add_reads(pipe)
        replies = pipe.execute()
    return QueueSnapshot.from_replies(replies), [int(r) for r in replies[:len(jobs)]]
