"""Announces job changes on a per-job channel so event streams wake without polling."""
from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

from shared import keys


def announce(target: Redis | Pipeline, job_id: str) -> None:
    """Tell listeners the job changed; they re-read it, so the message carries no state."""
    target.publish(keys.job_events(job_id), "changed")
