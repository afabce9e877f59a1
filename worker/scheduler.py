"""`python -m worker.scheduler`: rq-scheduler for the system schedules, plus tenants' cron schedules."""
from __future__ import annotations

import logging
import os
import sys
import time
import uuid

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq_scheduler import Scheduler

from shared import schedules
from shared.config import Settings
from shared.connection import connect
from shared.job_state import cron_string
from shared.logs import configure_logging
from shared.metrics import record_scheduler_pass
from shared.queues import Priority

log = logging.getLogger("scheduler")

REDIS_RETRY_S = 5
"""Seconds the scheduler waits after a Redis error before it starts its loop again."""

SYSTEM_SCHEDULES = (
    # (fixed id, cron, function, queue): fixed ids make a re-deploy update rather than duplicate them.
    ("pdfq-system-queue-status", "*/5 * * * *", "worker.maintenance.queue_status", Priority.URGENT),
    ("pdfq-system-daily-report", "5 0 * * *", "worker.maintenance.daily_report", Priority.LOW),
)
RETIRED_SYSTEM_SCHEDULES = ("pdfq-system-cleanup",)
"""Ids an earlier release registered, dropped at start: expired PDFs are purged by each worker's maintenance."""


class PdfScheduler(Scheduler):
    """Each locked pass also fires tenants' due schedules (claimed atomically, so at most one fires a run)."""

    def __init__(self, *args: object, settings: Settings, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def enqueue_jobs(self) -> list:  # type: ignore[override]
        jobs = super().enqueue_jobs()
        schedules.fire_due(self.connection, self.settings)
        record_scheduler_pass(self.connection)
        return jobs

    def run(self, burst: bool = False) -> None:
        """rq-scheduler's loop ends on the first Redis error; wait for Redis and enter it again instead."""
        while True:
            try:
                super().run(burst=burst)
                return
            except RedisError as exc:
                log.error("scheduler lost redis; retrying", extra={"error": type(exc).__name__,
                                                                   "retry_in_s": REDIS_RETRY_S})
                time.sleep(REDIS_RETRY_S)
                # A fresh name: the old registration may lack its death mark, and rq-scheduler
                # refuses to start under a name that looks alive (the old key expires by itself).
                self.name = uuid.uuid4().hex

    def register_death(self) -> None:
        """Best effort, so SIGTERM still stops the process while Redis is down (the key expires anyway)."""
        try:
            super().register_death()
        except RedisError:
            log.warning("could not record the scheduler's exit in redis")

    def remove_lock(self) -> None:
        """Best effort, for the same reason; an unreleased lock expires after one interval plus 10 s."""
        try:
            super().remove_lock()
        except RedisError:
            self._lock_acquired = False


def _registered_as(scheduler: Scheduler, job_id: str) -> tuple[str | None, str, str] | None:
    """(cron, function, queue) of a registered system schedule; None if absent or its job record vanished."""
    if job_id not in scheduler:
        return None
    try:
        job = Job.fetch(job_id, connection=scheduler.connection)
    except NoSuchJobError:
        return None
    return cron_string(job), job.func_name, job.origin


def register_system_schedules(scheduler: Scheduler) -> None:
    """Idempotent: an unchanged schedule keeps its next run; a changed one is registered again under its
    fixed id, which replaces the job record and its single entry (never a duplicate). result_ttl=-1 keeps
    periodic jobs from expiring, and one whose job record vanished anyway (rq-scheduler issues 42, 315)
    is registered afresh; retired ones are canceled."""
    for job_id in RETIRED_SYSTEM_SCHEDULES:
        if job_id in scheduler:
            scheduler.cancel(job_id)
            log.info("retired system schedule removed", extra={"schedule": job_id})
    for job_id, cron, function, priority in SYSTEM_SCHEDULES:
        if _registered_as(scheduler, job_id) == (cron, function, priority.value):
            continue
        scheduler.cron(cron, func=function, id=job_id, queue_name=priority.value, result_ttl=-1, timeout=300,
                       description=f"system: {function.rsplit('.', 1)[1]}")
        log.info("system schedule registered", extra={"schedule": job_id, "cron": cron})


def main() -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    settings = Settings.from_env()
    connection = connect(settings)
    scheduler = PdfScheduler(connection=connection, interval=settings.scheduler_interval_s, settings=settings)
    register_system_schedules(scheduler)
    log.info("scheduler ready", extra={"interval_s": settings.scheduler_interval_s})
    scheduler.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
