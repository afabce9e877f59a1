"""RQ entry points, enqueued by dotted path: render a job, and record its failures."""
from __future__ import annotations

import logging
import resource
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from weasyprint import __version__ as WEASYPRINT_VERSION

from shared import job_secrets, metrics
from shared.engines import Engine, WaitFor
from shared.errors import EngineUnavailable, JobFailure, SecretsExpired, StorageError
from shared.job_end import record_end
from shared.job_state import JobState
from shared.options import RenderOptions
from shared.records import JobStatus, iso, utcnow
from worker import reuse
from worker.einvoice_pdf import embed_einvoice
from worker.merge import PartSource
from worker.progress import reporter, save_state
from worker.render import NO_OPTIONS, RenderedPdf
from worker.runtime import WorkerRuntime, get_runtime

log = logging.getLogger(__name__)


def render_pdf(template: str | None, html: str | None, data: dict[str, Any], css: str | None,
               options: dict[str, Any] | None = None, cache: bool = True, parts: list[dict[str, Any]] | None = None,
               engine: str = Engine.WEASYPRINT.value, javascript: bool = False,
               wait_for: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Render (or reuse the tenant's identical render), store, and record the result; any failure raises so RQ
    records and retries it."""
    job = get_current_job()
    assert job is not None, "render_pdf runs only inside an RQ job"
    state = JobState.from_job(job, refresh=True)
    state.apply(job)
    if state.canceled:
        # Canceled between leaving its queue and starting here (a retry the scheduler moved, a slow
        # hand-off): the API already recorded the cancel, so this attempt only steps aside.
        log.info("job skipped: canceled before it started", extra={"job_id": job.id, "tenant": state.tenant})
        return None
    runtime = get_runtime()
    state.attempts += 1
    state.started_at = iso(utcnow())
    state.error = None
    report = reporter(job, state)
    started = time.perf_counter()
    render_options = _options(job, options)
    inputs_sha256 = runtime.environment.inputs_sha256(job.kwargs)
    # Jobs with options are always rendered: their results carry more than the bytes (conformance), and
    # encryption passwords are kept apart from the job's arguments, so equal arguments need not mean equal PDFs.
    # A merged document's result carries its parts' places, which a reused PDF does not bring along; Chromium
    # jobs are not reused either: the browser's version is not part of the worker's render environment.
    reusable = cache and not options and parts is None and engine == Engine.WEASYPRINT.value
    reused = reuse.find_reusable(runtime.connection, runtime.storage, tenant=state.tenant,
                                 inputs_sha256=inputs_sha256) if reusable else None
    engine_version = WEASYPRINT_VERSION
    if reused:
        rendered = reused.pdf
    elif engine == Engine.CHROMIUM.value:
        rendered, engine_version = _print_with_chromium(runtime, template=template, html=html, data=data, css=css,
                                                        options=render_options, javascript=javascript,
                                                        wait_for=wait_for, timeout_s=state.timeout_s, progress=report,
                                                        owner=state.tenant)
    elif parts is not None:
        rendered = runtime.renderer.render_parts([PartSource(**part) for part in parts], options=render_options,
                                                 progress=report, owner=state.tenant)
    else:
        rendered = runtime.renderer.render(template=template, html=html, data=data, css=css, options=render_options,
                                           progress=report, owner=state.tenant)
    einvoice_result = None
    if render_options.einvoice is not None:
        report("einvoice", 80)
        made = embed_einvoice(rendered, render_options.einvoice, template=template, data=data)
        rendered, einvoice_result = made.pdf, made.result
    render_s = time.perf_counter() - started
    report("storing", 90)
    stored = time.perf_counter()
    try:
        runtime.storage.put(job.id, rendered.content)
    except (OSError, RedisError) as exc:
        raise StorageError(f"could not store the PDF: {exc}") from exc
    state.store_ms = round((time.perf_counter() - stored) * 1000, 1)
    finished = utcnow()
    state.result = {
        "bytes": len(rendered.content),
        "pages": rendered.pages,
        "sha256": rendered.sha256,
        "expires_at": iso(finished + timedelta(seconds=runtime.settings.result_ttl_s)),
        "engine": {"name": engine, "version": engine_version},
    }
    if rendered.conformance is not None:
        state.result.update(pdf_variant=rendered.conformance.variant.value, conformance=rendered.conformance.to_dict())
    if einvoice_result is not None:
        state.result["einvoice"] = einvoice_result
    if rendered.parts:
        state.result["parts"] = [part.as_result() for part in rendered.parts]
    if reused:
        state.result["reused_from"] = reused.job_id
        manifest = {**reused.manifest, "job_id": job.id}
    else:
        manifest = reuse.manifest(runtime.environment, job_id=job.id, inputs_sha256=inputs_sha256, rendered=rendered,
                                  template=runtime.environment.template_entry(template, html),
                                  options=job.kwargs.get("options"), rendered_at=finished)
    state.progress = {"step": "done", "percent": 100}
    state.finished_at = iso(finished)
    state.render_ms = round(render_s * 1000, 1)
    figures = metrics.RenderFigures(render_s=render_s, pages=rendered.pages, worker=job.worker_name or "unknown",
                                    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    def end(pipe: Pipeline) -> None:
        reuse.record(pipe, job, manifest, offer=reusable and not reused and not rendered.remote_assets,
                     ttl_s=runtime.settings.result_ttl_s)
        record_end(pipe, job, state, JobStatus.COMPLETED, render=figures)

    save_state(job, state, end)
    log.info("job completed", extra={"job_id": job.id, "tenant": state.tenant, "queue": job.origin,
                                     "attempt": state.attempts, "duration_ms": state.render_ms})
    return state.result


def _print_with_chromium(runtime: WorkerRuntime, *, wait_for: dict[str, Any] | None,
                         **render: Any) -> tuple[RenderedPdf, str]:
    """The job printed by this worker's warm browser, and the browser's version."""
    if runtime.chromium is None or runtime.chromium.browser.version is None:
        raise EngineUnavailable("this worker has no working Chromium (install chromium or set CHROMIUM_PATH)")
    rendered = runtime.chromium.render(wait_for=WaitFor(**wait_for) if wait_for else None, **render)
    return rendered, runtime.chromium.browser.version


def _options(job: Job, options: dict[str, Any] | None) -> RenderOptions:
    """The job's options, with its encryption passwords fetched from where they wait apart from the job."""
    if not options:
        return NO_OPTIONS
    if "encryption" in options:
        passwords = job_secrets.load(job.connection, job.id)
        if passwords is None:
            raise SecretsExpired("the encryption passwords are gone (an unfinished job keeps them for "
                                 f"{job_secrets.JOB_SECRETS_TTL_S} s at most); submit the job again")
        options = job_secrets.with_passwords(options, passwords)
    return RenderOptions.model_validate(options)


def classify(exc_type: type[BaseException], exc: BaseException | None) -> tuple[str, bool]:
    """(error code, permanent?) for an exception that ended an attempt."""
    if isinstance(exc, JobFailure):
        return exc.code, exc.permanent
    if issubclass(exc_type, MemoryError):
        return "memory_limit", True
    if issubclass(exc_type, JobTimeoutException):
        return "timeout", False
    if issubclass(exc_type, AbandonedJobError):
        return "worker_lost", False
    if issubclass(exc_type, RedisError):
        return "backend_unavailable", False
    return "render_error", False


INFRASTRUCTURE_FAULTS = frozenset({"worker_lost", "worker_shutdown", "browser_crashed"})
"""Faults of the machine, not the job: the retry runs at once instead of after a backoff delay."""


def record_failure(job: Job, code: str, message: str, *, permanent: bool) -> None:
    """Store the error; a permanent one or the last attempt makes the job final (no retry)."""
    if permanent:
        job.retries_left = 0
    if code in INFRASTRUCTURE_FAULTS and job.should_retry and job.retry_intervals:
        # RQ reads the delay at index len - retries_left; zero it so the job re-queues now.
        index = max(len(job.retry_intervals) - job.retries_left, 0)
        job.retry_intervals = [0 if i == index else d for i, d in enumerate(job.retry_intervals)]
    state = JobState.from_job(job)
    state.error = {"code": code, "message": message[:500]}
    final = not job.should_retry
    if final:
        state.finished_at = iso(utcnow())
    save_state(job, state, (lambda pipe: record_end(pipe, job, state, JobStatus.FAILED, code=code)) if final else None)
    log.warning("job attempt failed", extra={"job_id": job.id, "tenant": state.tenant, "queue": job.origin,
                                             "attempt": state.attempts, "code": code, "final": final})


def on_render_failure(job: Job, connection: Redis, exc_type: type[BaseException], exc: BaseException | None,
                      traceback: TracebackType | Any) -> None:
    """RQ calls this after every failed attempt, also ones it will retry, and for abandoned jobs."""
    code, permanent = classify(exc_type, exc)
    message = str(exc) if exc is not None and str(exc) else code.replace("_", " ")
    if code == "timeout":
        message = f"render exceeded timeout_s={JobState.from_job(job).timeout_s}"
    elif code == "worker_lost":
        message = "the worker running this job stopped without finishing it"
    record_failure(job, code, message, permanent=permanent)


def on_render_stopped(job: Job, connection: Redis) -> None:
    """A stop command (sent only to cancel a running job) ends it as canceled, never retried."""
    state = JobState.from_job(job, refresh=True)
    state.canceled = True
    state.finished_at = state.finished_at or iso(utcnow())
    save_state(job, state, lambda pipe: record_end(pipe, job, state, JobStatus.CANCELED))
