"""Age of the oldest job waiting in each priority queue, the signal workers are scaled on."""
from __future__ import annotations

from redis import Redis

from shared.config import Settings
from shared.fair_share import FairShare


def oldest_ages(connection: Redis, now: float | None = None) -> dict[str, float]:
    """Seconds since the oldest waiting job of each queue (last) entered it, jobs fair share holds back
    included; 0.0 for an empty queue. Read with the fair-share layout, which no setting changes."""
    return {name: waiting.oldest_age_s for name, waiting in FairShare(Settings()).waiting(connection, now).items()}
