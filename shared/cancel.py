"""Canceling a render job, whoever asks: claim a waiting one atomically, or stop the worker running it."""
from __future__ import annotations

import time
from typing import Callable

from redis import Redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus as RQStatus
from rq.registry import CanceledJobRegistry, ScheduledJobRegistry
from rq.utils import current_timestamp

from shared.fair_share import FairShare, withdrawing
from shared.job_end import record_end
from shared.job_state import JobState
from shared.queues import queue_for
from shared.records import FINAL_STATUSES, WAITING_RQ_STATUSES, JobStatus, iso, status_of, utcnow

CANCEL_HANDOFF_WAIT_S = 2.0
"""How long a cancel waits for a job a worker has just popped to start, so that the stop can reach it."""
HANDOFF_POLL_S = 0.02
# Cancel a job only while it still waits: taking its id out of its queue, its tenant's held list or the retry
# schedule is the claim, so a worker that popped it first keeps it (and gets a stop command); the job then
# expires with retention.
_CANCEL_WAITING = withdrawing("""
local p, t, id = ARGV[2], ARGV[3], ARGV[4]
if withdraw(p, t, id) + redis.call('ZREM', KEYS[1], id) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], 'status', ARGV[5], 'meta', ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[8], id)
return 1
""")


class AlreadyFinished(Exception):
    """The job had already ended (or a racing cancel won) before this cancel could claim it."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"job is already {status.value}")
        self.status = status


def cancel(connection: Redis, fair: FairShare, job: Job, *, retention_s: int, reload: Callable[[], Job]) -> Job:
    """Cancel a waiting job in one atomic step, or stop a started one; raises AlreadyFinished once it is final.

    `reload` reads the job again while a worker that has just popped it has not yet started it.
    """
    deadline = time.monotonic() + CANCEL_HANDOFF_WAIT_S
    while True:
        status = status_of(job)
        if status in FINAL_STATUSES:
            raise AlreadyFinished(status)
        waiting = job.get_status(refresh=False) in WAITING_RQ_STATUSES
        if waiting and _cancel_waiting(connection, fair, job, retention_s):
            return job
        if not waiting or time.monotonic() > deadline:
            _stop_started(connection, job)
            return job
        time.sleep(HANDOFF_POLL_S)  # A worker has just popped it and is about to start it.
        job = reload()


def _cancel_waiting(connection: Redis, fair: FairShare, job: Job, retention_s: int) -> bool:
    """Queued (held or not) or retrying -> canceled, only if the id still waited there (else False)."""
    state = JobState.from_job(job)
    queue = queue_for(state.priority, connection)
    state.canceled, state.finished_at = True, iso(utcnow())
    claimed = fair.run(
        _CANCEL_WAITING, connection, state.priority, state.tenant, job.id, RQStatus.CANCELED.value,
        job.serializer.dumps(state.to_meta()), retention_s, current_timestamp(),
        keys=[ScheduledJobRegistry(queue=queue).key, job.key, CanceledJobRegistry(queue=queue).key])
    if not claimed:
        return False
    state.apply(job)
    job.get_status(refresh=True)  # our copy learns the status the script wrote
    with connection.pipeline() as pipe:
        pipe.multi()  # explicit, so the webhook's enqueue joins this transaction
        record_end(pipe, job, state, JobStatus.CANCELED)
        pipe.execute()
    return True


def _stop_started(connection: Redis, job: Job) -> None:
    """Record the cancel and stop the work-horse; RQ then ends the job `stopped`, which reads as canceled
    (the worker's stop callback records the ending). The state is read again first: the worker may have
    written its attempt since our copy was read."""
    state = JobState.from_job(job, refresh=True)
    state.canceled, state.finished_at = True, iso(utcnow())
    state.save(job)
    try:
        send_stop_job_command(connection, job.id)
    except InvalidJobOperation:
        pass  # It finished between our read and the stop, or no worker holds it; the worker's records stand.
