"""Where a queued job stands and how long it will likely wait, from live queue and worker figures."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Any

from redis import Redis
from redis.client import Pipeline

from shared import keys
from shared.queues import QUEUE_ORDER
from shared.workers import add_live_count

RECENT_FOR_ESTIMATE = 100
"""How many recent render times feed the wait estimate."""
DEFAULT_RENDER_S = 1.0
"""Assumed render time, in seconds, before any job has completed."""


@dataclass(frozen=True)
class QueueSnapshot:
    lengths: dict[str, int]
    workers: int
    avg_render_s: float

    READS = len(QUEUE_ORDER) + 2
    """Replies `add_reads` queues on a pipeline, to hand back to `from_replies`."""

    @classmethod
    def add_reads(cls, pipe: Pipeline) -> None:
        """Queue the reads on a caller's pipeline, so a snapshot can ride along with an enqueue.

        Workers are counted live (registration key unexpired), not by SCARD of `rq:workers`, which
        keeps killed workers' names: still one command in the same round trip, whose Redis-side cost
        grows only with the number of workers (a few EXISTS each).
        """
        for priority in QUEUE_ORDER:
            pipe.llen(keys.rq_queue(priority.value))
        pipe.lrange(keys.stats("render_ms"), 0, RECENT_FOR_ESTIMATE - 1)
        add_live_count(pipe)

    @classmethod
    def from_replies(cls, replies: list[Any]) -> QueueSnapshot:
        *lengths, recent, workers = replies[-cls.READS:]
        avg = fmean(float(ms) for ms in recent) / 1000 if recent else DEFAULT_RENDER_S
        return cls(dict(zip((p.value for p in QUEUE_ORDER), lengths)), workers, avg)

    @classmethod
    def take(cls, connection: Redis) -> QueueSnapshot:
        with connection.pipeline(transaction=False) as pipe:
            cls.add_reads(pipe)
            return cls.from_replies(pipe.execute())

    def position(self, connection: Redis, priority: str, job_id: str,
                 from_end: int | None = None) -> dict[str, float | int | None]:
        """Jobs ahead across all higher queues plus this queue (0 = next), and the wait that implies.

        `from_end` (jobs behind it) places a job just enqueued without scanning its queue. A queued job no
        longer in its queue's list has been popped by a worker that has not yet marked it started: it is next.
        """
        own = (self.lengths[priority] - 1 - from_end if from_end is not None
               else connection.lpos(keys.rq_queue(priority), job_id))
        return self._place(priority, own)

    def positions(self, connection: Redis, queued: list[tuple[str, str]]) -> dict[str, dict[str, float | int | None]]:
        """`position` of many (priority, job id) pairs in one round trip (a page of the job list)."""
        if not queued:
            return {}
        with connection.pipeline(transaction=False) as pipe:
            for priority, job_id in queued:
                pipe.lpos(keys.rq_queue(priority), job_id)
            owns = pipe.execute()
        return {job_id: self._place(priority, own) for (priority, job_id), own in zip(queued, owns)}

    def _place(self, priority: str, own: int | None) -> dict[str, float | int | None]:
        if own is None or own < 0:
            return {"queue_position": 0, "estimated_wait_s": 0.0}
        ahead = own
        for higher in QUEUE_ORDER:
            if higher.value == priority:
                break
            ahead += self.lengths[higher.value]
        rounds = ahead // max(self.workers, 1) + 1
        return {"queue_position": ahead, "estimated_wait_s": round(rounds * self.avg_render_s, 2)}
