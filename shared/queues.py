"""The four priority queues and the order every worker drains them in."""
from __future__ import annotations

from enum import Enum

from redis import Redis
from rq import Queue


class Priority(str, Enum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


QUEUE_ORDER: tuple[Priority, ...] = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)
"""Workers listen in this order, so a waiting urgent job is always taken first."""


def queue_for(priority: Priority | str, connection: Redis) -> Queue:
    return Queue(Priority(priority).value, connection=connection)


def all_queues(connection: Redis) -> list[Queue]:
    return [queue_for(p, connection) for p in QUEUE_ORDER]


def register_queues(connection: Redis) -> None:
    """Name all four queues in RQ's queue set, so `rq info` and the dashboard list them before their first job."""
    connection.sadd(Queue.redis_queues_keys, *(queue.key for queue in all_queues(connection)))
