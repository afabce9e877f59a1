"""Capacity limits every path that creates jobs obeys: the API's submissions and the scheduler's runs."""
from __future__ import annotations

from redis import Redis
from rq.job import Job

from shared import keys
from shared.config import Settings
from shared.errors import QueueFull, TenantLimitReached
from shared.fair_share import FairShare
from shared.records import FINAL_STATUSES, status_of


def prune_active(connection: Redis, tenant: str) -> int:
    """Drop ids that are no longer queued or running (a crashed path may have left them); the count left."""
    members = [m.decode() for m in connection.smembers(keys.active_jobs(tenant))]
    jobs = Job.fetch_many(members, connection=connection)  # one round trip
    stale = [job_id for job_id, job in zip(members, jobs) if job is None or status_of(job) in FINAL_STATUSES]
    if stale:
        connection.srem(keys.active_jobs(tenant), *stale)
    return len(members) - len(stale)


def check_capacity(connection: Redis, settings: Settings, tenant: str, new_jobs: int = 1) -> None:
    """Raise TenantLimitReached when the tenant holds its share of active jobs, QueueFull when all queues are."""
    limit = settings.max_active_jobs_per_tenant
    with connection.pipeline(transaction=False) as pipe:  # one round trip for both limits
        pipe.scard(keys.active_jobs(tenant))
        FairShare(settings).add_waiting_total(pipe, connection)  # held jobs are queued jobs
        active, waiting = pipe.execute()
    if active + new_jobs > limit and prune_active(connection, tenant) + new_jobs > limit:
        raise TenantLimitReached(f"tenant has {limit} queued or running jobs; wait for some to finish")
    if waiting + new_jobs > settings.max_queued_jobs:
        raise QueueFull("the service is at capacity; retry later")
