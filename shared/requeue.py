"""Re-running a failed or canceled render job as if just submitted, whoever asks (API retry, dashboard)."""
from __future__ import annotations

from redis import Redis
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from shared import keys
from shared.enqueue import RENDER_FUNCTION
from shared.events import announce
from shared.queues import queue_for
from shared.records import JobStatus

RERUNNABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED})
"""Statuses from which a job may be run again (`POST /v1/jobs/{id}/retry`, the dashboard's Requeue)."""


def is_render_job(job: Job) -> bool:
    """One of the tenants' render jobs (which carry our meta), not a webhook delivery or a system job."""
    return job.func_name == RENDER_FUNCTION and "tenant" in job.meta


def reset_for_rerun(job: Job, connection: Redis) -> Job:
    """Re-enqueue a failed or canceled render job with fresh attempts; the caller checks its status.

    Besides RQ's own requeue: our meta back to a new job's (attempts 0, no error), all retries again,
    no failure TTL left on the record (it must not expire while queued), and the job counted active
    for its tenant again.
    """
    job.meta.update(attempts=0, error=None, result=None, canceled=False, finished_at=None, started_at=None,
                    progress={"step": "queued", "percent": 0})
    job.retries_left = job.meta.get("max_retries", 0)
    queue = queue_for(job.meta["priority"], connection)
    for registry in (FailedJobRegistry(queue=queue), CanceledJobRegistry(queue=queue)):
        try:
            job = registry.requeue(job)
            break
        except InvalidJobOperation:
            continue
    else:
        job = queue.enqueue_job(job)
    with connection.pipeline(transaction=False) as pipe:
        pipe.persist(job.key)
        pipe.sadd(keys.active_jobs(job.meta["tenant"]), job.id)
        announce(pipe, job.id)
        pipe.execute()
    return job
