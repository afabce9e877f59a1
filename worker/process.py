"""The RQ worker class and its start-up: warm WeasyPrint once, then fork a horse per job."""
from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from rq import Worker
from rq.job import Job
from rq.queue import Queue

from shared.errors import ConfigError
from shared.events import announce
from shared.queues import all_queues
from worker.jobs import record_failure
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

JOB_MONITORING_INTERVAL_S = 5
"""How often a busy worker refreshes its heartbeat; a dead worker is noticed after ~3 of these."""
MAINTENANCE_INTERVAL_S = 15
"""How often a worker re-queues jobs abandoned by dead workers (RQ's default is 10 minutes)."""


class PdfWorker(Worker):
    """RQ's forking worker, plus prompt announcements and honest records when a horse dies."""

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any) -> None:  # type: ignore[override]
        super().handle_job_success(job, queue, started_job_registry)
        announce(self.connection, job.id)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,  # type: ignore[override]
                           exc_string: str = "") -> None:
        super().handle_job_failure(job, queue, started_job_registry, exc_string)
        announce(self.connection, job.id)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # The horse's meta updates never reached this (parent) copy of the job; RQ re-saves it next.
        job.meta = job.get_meta(refresh=True)
        record_failure(job, "worker_lost", f"the render process died (wait status {ret_val})", permanent=False)


def check_fast_font_subsetter() -> None:
    """WeasyPrint silently falls back to a 2.2x slower subsetter without libharfbuzz-subset0."""
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    if harfbuzz_subset is None or not harfbuzz.hb_version_atleast(4, 1, 0):
        raise ConfigError("libharfbuzz-subset0 (HarfBuzz >= 4.1) is missing: install it (apt-get install libharfbuzz-subset0)")


def warm_up() -> None:
    """Import and exercise WeasyPrint, fonts and the templates before forking, so horses inherit them."""
    runtime = get_runtime()
    from shared.template_catalog import load_catalog

    for info in load_catalog(runtime.settings.templates_dir).values():
        runtime.renderer.render(template=info.name, html=None, data=info.sample_data)


def build_worker(connection: Redis, **options: Any) -> PdfWorker:
    worker = PdfWorker(all_queues(connection), connection=connection,
                       job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
                       maintenance_interval=MAINTENANCE_INTERVAL_S, **options)
    return worker
