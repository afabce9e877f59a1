"""Redis commands per job: INFO commandstats around a run of jobs, less the bench's own and the idle background."""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from redis import Redis

IDLE_SAMPLE_S = 5.0
"""How long the idle service is watched first, in seconds, to learn its background rate (heartbeats, scheduler)."""


def command_calls(connection: Redis) -> Counter[str]:
    return Counter({name.removeprefix("cmdstat_"): int(stats["calls"])
                    for name, stats in connection.info("commandstats").items()})


def commands_per_job(connection: Redis, run: Callable[[], tuple[int, Counter[str]]]) -> dict[str, object]:
    """`run` submits and waits for jobs, returning how many and the commands the bench sent meanwhile.

    RQ's workers send commands whether or not they have work (heartbeats, the retry scheduler's
    ticks): `per_job` is the run's total, `per_job_net` leaves out what the idle service sends in
    as long a time.
    """
    idle_started = command_calls(connection)
    time.sleep(IDLE_SAMPLE_S)
    before = command_calls(connection)
    idle = before - idle_started - Counter({"info": 1})
    started = time.monotonic()
    jobs, own = run()
    elapsed = time.monotonic() - started
    spent = command_calls(connection) - before - own - Counter({"info": 1})  # the INFO that took `before`
    background = sum(idle.values()) * elapsed / IDLE_SAMPLE_S
    return {"jobs": jobs, "seconds": round(elapsed, 1), "per_job": round(sum(spent.values()) / jobs, 1),
            "per_job_net": round((sum(spent.values()) - background) / jobs, 1),
            "idle_per_s": round(sum(idle.values()) / IDLE_SAMPLE_S, 1),
            "by_command": {name: round(calls / jobs, 2) for name, calls in spent.most_common()}}
