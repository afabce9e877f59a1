"""Age of the oldest job waiting in each priority queue, the signal workers are scaled on."""
from __future__ import annotations

import time

from redis import Redis
from rq.job import Job
from rq.utils import utcparse

from shared.queues import QUEUE_ORDER, queue_for

HEAD_SCAN = 10
"""Jobs looked at from each queue's head: RQ pops from there, but a job pushed `at_front` may be younger."""

# One round trip for all queues: the oldest `enqueued_at` among the first HEAD_SCAN ids of each list.
# RQ writes enqueued_at in one fixed ISO format, so comparing the strings orders the times. An id whose
# job hash is gone (deleted while queued) is skipped.
_OLDEST_ENQUEUED = """
local out = {}
for i, queue in ipairs(KEYS) do
  local oldest = ''
  for _, id in ipairs(redis.call('LRANGE', queue, 0, tonumber(ARGV[2]) - 1)) do
    local at = redis.call('HGET', ARGV[1] .. id, 'enqueued_at')
    if at and (oldest == '' or at < oldest) then oldest = at end
  end
  out[i] = oldest
end
return out
"""


def oldest_ages(connection: Redis, now: float | None = None) -> dict[str, float]:
    """Seconds since the oldest waiting job of each queue (last) entered it; 0.0 for an empty queue."""
    queues = [queue_for(p, connection) for p in QUEUE_ORDER]
    stamps = connection.eval(_OLDEST_ENQUEUED, len(queues), *(q.key for q in queues),
                             Job.redis_job_namespace_prefix, HEAD_SCAN)
    moment = time.time() if now is None else now
    ages: dict[str, float] = {}
    for queue, raw in zip(queues, stamps):
        stamp = raw.decode() if isinstance(raw, bytes) else raw
        ages[queue.name] = max(0.0, moment - utcparse(stamp).timestamp()) if stamp else 0.0
    return ages
