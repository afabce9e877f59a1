"""The RQ worker class and its start-up: warm WeasyPrint once, then fork a horse per job."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import traceback
from typing import Any, Iterator

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.registry import CanceledJobRegistry
from rq.utils import now
from rq.worker import WorkerStatus

from shared.config import Settings
from shared.errors import ConfigError, JobFailure, TemplateError
from shared.events import announce
from shared.fair_share import FairShare, fair_queue_class
from shared.job_state import JobState
from shared.previews import store_template_preview
from shared.queues import register_queues
from shared.records import FINAL_RQ_STATUSES
from shared.template_catalog import load_catalog
from worker.jobs import record_failure
from worker.limits import cap_memory
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

JOB_MONITORING_INTERVAL_S = 5
"""How often a busy worker refreshes its heartbeat, in seconds."""
HEARTBEAT_GRACE_S = 10
"""A running job whose heartbeat is this many seconds overdue counts as abandoned (RQ uses 60)."""
WORKER_TTL_S = 30
"""Registration lifetime of an idle worker; it also paces idle maintenance (every TTL - 15 s)."""
REGISTRATION_GRACE_S = 10
"""A worker's key outlives its last heartbeat by at most WORKER_TTL_S + this (RQ allows + 60): a killed worker
stops counting (readiness, wait estimates) within 40 s. Busy workers beat every 5 s, idle ones every 15 s."""
HEARTBEAT_SLACK_S = 1.0
"""A heartbeat that would move the registration's expiry by less than this, in seconds, is not sent."""


class PdfWorker(Worker):
    """RQ's forking worker with faster loss detection, bounded shutdown, and honest job records."""

    def __init__(self, *args: Any, fair: FairShare, shutdown_grace_s: float = 25, horse_memory_mb: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fair = fair
        self.shutdown_grace_s = shutdown_grace_s
        self.horse_memory_mb = horse_memory_mb
        self._shutdown_timer: threading.Timer | None = None
        self._requeue_on_shutdown = False
        self._registered_until = 0.0
        """When (time.monotonic()) the registration key expires after the last heartbeat sent."""
        self._attempts_before_fork = 0
        """The current job's recorded attempts when its horse was forked: the horse adds its own."""

    def register_birth(self) -> None:
        # RQ gives a new registration worker_ttl + 60 s: a worker killed before its first beat would count that long.
        super().register_birth()
        self.connection.expire(self.key, self.worker_ttl + REGISTRATION_GRACE_S)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ beats several times around each job; a direct beat that would move the expiry by under a second is
        skipped (beats inside RQ's pipelines are always sent: RQ reads their replies by position)."""
        cap = self.worker_ttl + REGISTRATION_GRACE_S
        ttl = min(timeout or cap, cap)
        expires = time.monotonic() + ttl
        if pipeline is None and abs(expires - self._registered_until) < HEARTBEAT_SLACK_S:
            return
        super().heartbeat(ttl, pipeline=pipeline)
        self._registered_until = expires

    def get_heartbeat_ttl(self, job: Job) -> int:
        # RQ adds 60 s; a shorter grace lets another worker re-run a lost job within ~30 s.
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return int(max(1, min(remaining, self.job_monitoring_interval))) + HEARTBEAT_GRACE_S
        return self.job_monitoring_interval + HEARTBEAT_GRACE_S

    def handle_warm_shutdown_request(self) -> None:
        """SIGTERM: finish the current job if it ends within the grace period, else put it back."""
        super().handle_warm_shutdown_request()
        if self.get_state() == WorkerStatus.BUSY and self._shutdown_timer is None:
            self._shutdown_timer = threading.Timer(self.shutdown_grace_s, self._abort_for_shutdown)
            self._shutdown_timer.daemon = True
            self._shutdown_timer.start()

    def _abort_for_shutdown(self) -> None:
        if self.horse_pid:
            self._requeue_on_shutdown = True
            log.warning("shutdown grace period over; returning the job to its queue",
                        extra={"worker": self.name, "job_id": self.get_current_job_id()})
            os.kill(self.horse_pid, signal.SIGKILL)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Before forking the job's horse: a Chromium service that died (or that a horse gave up) starts again,
        and the job's inline template is compiled here, for this horse and the tenant's later jobs to inherit.
        After every attempt, however it ended, free the tenant's running slot and release its next job."""
        runtime = get_runtime()
        state = JobState.from_job(job)
        tenant, self._attempts_before_fork = state.tenant, state.attempts
        inline = _inline_source(job)
        if tenant and inline is not None:
            runtime.renderer.keep_inline(tenant, inline)
        chromium = runtime.chromium
        if chromium is not None and chromium.browser.version is not None:
            try:
                chromium.browser.ensure_running()
            except ConfigError as exc:  # the horse then meets a dead service: a transient fault, retried
                log.warning("browser service did not restart", extra={"reason": str(exc)})
        try:
            super().execute_job(job, queue)
        finally:
            if tenant:
                with self._outage_tolerated("fair-share release"):  # maintenance releases it otherwise
                    self.fair.attempt_ended(self.connection, tenant, job.id)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        cap_memory(self.horse_memory_mb)
        super().main_work_horse(job, queue)

    def setup_work_horse_signals(self) -> None:
        # Platforms signal every process of a dyno; the parent alone decides when the horse must stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any) -> None:  # type: ignore[override]
        super().handle_job_success(job, queue, started_job_registry)
        announce(self.connection, job.id)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,  # type: ignore[override]
                           exc_string: str = "") -> None:
        super().handle_job_failure(job, queue, started_job_registry, exc_string)
        announce(self.connection, job.id)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # The horse's meta updates never reached this (parent) copy of the job; RQ re-saves it next.
        state = JobState.from_job(job, refresh=True)
        # A horse killed before it wrote its attempt (it starts at a lower CPU priority) still made one.
        state.attempts = max(state.attempts, self._attempts_before_fork + 1)
        state.apply(job)
        if self._requeue_on_shutdown:
            # A deploy is not the job's fault: give the attempt back so the retry is free.
            job.retries_left = (job.retries_left or 0) + 1
            state.attempts = max(0, state.attempts - 1)
            state.apply(job)
            record_failure(job, "worker_shutdown", "the worker shut down; the job was returned to its queue",
                           permanent=False)
            return
        if job.timeout and job.timeout > 0 and job.started_at and (now() - job.started_at).total_seconds() > job.timeout:
            # RQ's own backstop: a render deaf to its timeout alarm is killed 60 s past timeout_s.
            record_failure(job, "timeout", f"render exceeded timeout_s={job.timeout}", permanent=False)
            return
        record_failure(job, "worker_lost", f"the render process died (wait status {ret_val})", permanent=False)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's version logs the exception text, which can quote template data: log its type and frames only.

        A template error is the tenant's own mistake, never retried: a warning with its code, no frames.
        """
        exc_type, exc, tb = exc_info
        if isinstance(exc, TemplateError):
            log.warning("job template error", extra={"job_id": job.id, "queue": job.origin, "code": exc.code})
        else:
            frames = "".join(traceback.format_tb(tb)) if tb is not None else ""
            log.error("job raised", extra={"job_id": job.id, "queue": job.origin, "exception": exc_type.__name__,
                                           "frames": frames})
        for handler in self._exc_handlers:
            if handler(job, *exc_info) is False:
                break

    def maintain_heartbeats(self, job: Job) -> None:
        """While a horse renders, keep beating through Redis outages, and keep up maintenance.

        RQ quits the worker when a heartbeat fails, orphaning the render; and it looks for lost
        jobs only between jobs, so with every worker busy nobody would. The parent only waits
        here, so it does both.
        """
        with self._outage_tolerated("heartbeat"):
            super().maintain_heartbeats(job)
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()

    def set_current_job_working_time(self, current_job_working_time: float, pipeline: Any = None) -> None:
        with self._outage_tolerated("working time update"):
            super().set_current_job_working_time(current_job_working_time, pipeline=pipeline)

    @contextlib.contextmanager
    def _outage_tolerated(self, what: str) -> Iterator[None]:
        """A write the monitor loop can retry at its next beat (every 5 s) must not end the worker."""
        try:
            yield
        except RedisError as exc:
            log.warning(f"{what} failed; retrying at the next beat", extra={"worker": self.name,
                                                                           "error": type(exc).__name__})

    def clean_registries(self) -> None:
        """Drop finished jobs RQ left in started registries (rq issue 2424) before it calls them abandoned."""
        for queue in self.queues:
            registry = queue.started_job_registry
            for entry in self.connection.zrangebyscore(registry.key, 0, "+inf"):
                job_id = registry.parse_job_id(entry)
                try:
                    status = Job.fetch(job_id, connection=self.connection).get_status(refresh=False)
                except NoSuchJobError:
                    status = None
                if status is None or status in FINAL_RQ_STATUSES:
                    self.connection.zrem(registry.key, entry)
            canceled = CanceledJobRegistry(queue=queue)
            self.connection.zremrangebyscore(canceled.key, 0, time.time() - get_runtime().settings.result_ttl_s)
        super().clean_registries()
        returned = self.fair.reconcile(self.connection)
        if returned:
            log.warning("jobs lost in a worker's hand-off returned to their queue", extra={"count": returned})
        try:
            removed = get_runtime().storage.purge_expired()
        except Exception as exc:  # Storage trouble must not stop the worker; the next pass tries again.
            log.warning("expired PDF purge failed", extra={"error": type(exc).__name__})
            return
        if removed:
            log.info("expired PDFs removed", extra={"count": removed})


def _inline_source(job: Job) -> str | None:
    """The job's inline template, if it has one; arguments that do not load are left to the horse to report."""
    try:
        html = job.kwargs.get("html")
    except DeserializationError:
        return None
    return html if isinstance(html, str) else None


def check_fast_font_subsetter() -> None:
    """WeasyPrint silently falls back to a 2.2x slower subsetter without libharfbuzz-subset0."""
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    if harfbuzz_subset is None or not harfbuzz.hb_version_atleast(4, 1, 0):
        raise ConfigError("libharfbuzz-subset0 (HarfBuzz >= 4.1) is missing: apt-get install libharfbuzz-subset0")


def warm_up() -> None:
    """Exercise WeasyPrint, fonts and every template before forking, so each horse inherits them warm.

    The renders are the templates' previews too: the API shows them without ever running WeasyPrint.
    """
    runtime = get_runtime()
    for info in load_catalog(runtime.settings.templates_dir).values():
        try:
            rendered = runtime.renderer.render(template=info.name, html=None, data=info.sample_data, warm=True)
        except JobFailure as exc:  # e.g. a MAX_PAGES below the book's length: that template then has no preview
            log.warning("template not warmed", extra={"template": info.name, "code": exc.code})
            continue
        store_template_preview(runtime.connection, info.name, rendered.content)


def build_worker(connection: Redis, settings: Settings) -> PdfWorker:
    register_queues(connection)
    queue_class = fair_queue_class(settings)
    queues = [queue_class(name, connection=connection) for name in settings.worker_queues]
    return PdfWorker(queues, connection=connection, queue_class=queue_class, fair=queue_class.fair,
                     job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
                     maintenance_interval=settings.worker_maintenance_interval_s, worker_ttl=WORKER_TTL_S,
                     shutdown_grace_s=settings.worker_shutdown_grace_s, horse_memory_mb=settings.worker_memory_limit_mb)
