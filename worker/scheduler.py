"""`python -m worker.scheduler`: rq-scheduler for the system schedules, plus tenants' cron schedules."""
from __future__ import annotations

import logging
import os
import sys

from rq.job import Job
from rq_scheduler import Scheduler

from shared import schedules
from shared.config import Settings
from shared.connection import connect
from shared.logs import configure_logging
from shared.queues import Priority

log = logging.getLogger("scheduler")

SYSTEM_SCHEDULES = (
    # (fixed id, cron, function, queue): fixed ids make a re-deploy update rather than duplicate them.
    ("pdfq-system-cleanup", "*/15 * * * *", "worker.maintenance.cleanup_expired", Priority.LOW),
    ("pdfq-system-queue-status", "*/5 * * * *", "worker.maintenance.queue_status", Priority.URGENT),
    ("pdfq-system-daily-report", "5 0 * * *", "worker.maintenance.daily_report", Priority.LOW),
)


class PdfScheduler(Scheduler):
    """Each locked pass also fires tenants' due schedules (claimed atomically, so at most one fires a run)."""

    def __init__(self, *args: object, settings: Settings, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def enqueue_jobs(self) -> list:  # type: ignore[override]
        jobs = super().enqueue_jobs()
        schedules.fire_due(self.connection, self.settings)
        return jobs


def register_system_schedules(scheduler: Scheduler) -> None:
    """Idempotent: a live schedule keeps its next run; result_ttl=-1 keeps periodic jobs from expiring,
    and one whose job record vanished anyway (rq-scheduler issues 42, 315) is registered afresh."""
    for job_id, cron, function, priority in SYSTEM_SCHEDULES:
        if job_id in scheduler and Job.exists(job_id, connection=scheduler.connection):
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
