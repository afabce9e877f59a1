"""Re-running a failed or canceled render job as if just submitted, whoever asks (API retry, dashboard)."""
from __future__ import annotations

from typing import Callable

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from shared import keys
from shared.config import Settings
from shared.enqueue import RENDER_FUNCTION
from shared.events import announce
from shared.fair_share import fair_queue
from shared.job_state import JobState, is_render_state


def is_render_job(job: Job) -> bool:
    """One of the tenants' render jobs (which carry our meta), not a webhook delivery or a system job."""
    return job.func_name == RENDER_FUNCTION and is_render_state(job)


def rerun_once(connection: Redis, settings: Settings, job_id: str, admit: Callable[[], Job]) -> Job:
    """Re-enqueue a failed or canceled render job with fresh attempts, once however many ask at the same time.

    `admit` reads the job and vets it, raising to refuse (unknown, wrong tenant, not rerunnable, over a
    limit); it runs under WATCH on the job's key, so of racing reruns one enqueues and the others, reading
    again, find it queued and are refused.
    """
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(Job.key_for(job_id))
                job = admit()
                pipe.multi()
                _requeue(job, pipe, settings)
                pipe.execute()
                return job
            except WatchError:
                continue


def _requeue(job: Job, pipe: Pipeline, settings: Settings) -> None:
    """What RQ's registry.requeue does, inside the caller's transaction, plus our own state.

    Our state back to a new job's (attempts 0, no error), all retries again, no failure TTL left on the
    record (it must not expire while queued), and the job counted active for its tenant again.
    """
    state = JobState.from_job(job)
    state.reset_for_rerun()
    state.apply(job)
    job.retries_left = state.max_retries
    job.started_at = job.ended_at = None
    queue = fair_queue(state.priority, job.connection, settings)  # behind the tenant's held jobs
    for registry in (FailedJobRegistry(queue=queue), CanceledJobRegistry(queue=queue)):
        registry.remove(job, pipeline=pipe)
    queue.enqueue_job(job, pipeline=pipe)
    pipe.persist(job.key)
    pipe.sadd(keys.active_jobs(state.tenant), job.id)
    announce(pipe, job.id)
