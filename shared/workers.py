"""How many RQ workers are alive: registered in `rq:workers` and with their `rq:worker:<name>` key unexpired."""
from __future__ import annotations

from redis import Redis
from redis.client import Pipeline
from rq import Worker

# `rq:workers` keeps a killed worker's name until a live worker prunes it, so count only names whose
# registration key still exists (it expires about 30 s after the last heartbeat). Counted inside Redis:
# one command whatever the fleet size, so it can ride on the submit path's pipeline.
_COUNT_LIVE = """
local alive = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  alive = alive + redis.call('EXISTS', key)
end
return alive
"""


def add_live_count(pipe: Pipeline) -> None:
    """Queue the count on a caller's pipeline; its reply is the number of live workers."""
    pipe.eval(_COUNT_LIVE, 1, Worker.redis_workers_keys)


def live_count(connection: Redis) -> int:
    return int(connection.eval(_COUNT_LIVE, 1, Worker.redis_workers_keys))


def live_workers(connection: Redis) -> list[Worker]:
    """The live workers themselves (to read their state), by the same rule as the count.

    Unlike `Worker.all`, reads only: it leaves pruning `rq:workers` to the workers' own maintenance.
    """
    names = sorted(k.decode() for k in connection.smembers(Worker.redis_workers_keys))
    with connection.pipeline(transaction=False) as pipe:
        for key in names:
            pipe.exists(key)
        alive = pipe.execute()
    found = [Worker.find_by_key(key, connection=connection) for key, exists in zip(names, alive) if exists]
    return [worker for worker in found if worker is not None]
