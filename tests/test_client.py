"""The Python client (clients/python) against the real gunicorn API and real workers, sync and async, with a
loopback proxy putting real faults (lost answers, cut streams, refusals) between them."""
from __future__ import annotations

import asyncio
import builtins
import hashlib
import io
import json
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from pypdf import PdfReader

import pdfq
from pdfq import ApiError, AsyncClient, Client, JobCanceled, JobFailed, JobStatus
from pdfq.waiting import MAX_STREAM_FAILURES
from tests.conftest import TENANT_KEYS
from tests.faulty_proxy import FaultyProxy, Rule
from tests.support import ROOT, LiveServer, WorkerProcess, wait_until

pytestmark = pytest.mark.usefixtures("workers", "redis")

INVOICE = json.loads((ROOT / "templates" / "invoice.json").read_text())["sample_data"]


def run(flavour: str, url: str, method: str, *args: Any, key: str = TENANT_KEYS["acme"], max_retries: int = 3,
        **kwargs: Any) -> Any:
    """Call one client method through a fresh `Client` or `AsyncClient` (an async iterator is drained)."""
    if flavour == "sync":
        with Client(url, key, max_retries=max_retries) as client:
            value = getattr(client, method)(*args, **kwargs)
            return list(value) if isinstance(value, Iterator) else value

    async def call() -> Any:
        async with AsyncClient(url, key, max_retries=max_retries) as client:
            value = getattr(client, method)(*args, **kwargs)
            if hasattr(value, "__aiter__"):
                return [item async for item in value]
            return await value

    return asyncio.run(call())


@contextmanager
def workers_paused_until(workers: list[WorkerProcess], condition: Callable[[], bool]) -> Iterator[None]:
    """Hold the session's workers (SIGSTOP) from now until `condition` holds, so a job waits in its queue exactly
    as long as the test needs; they are resumed in any case when the block ends."""
    def resume() -> None:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGCONT)

    for worker in workers:
        os.killpg(worker.pid, signal.SIGSTOP)
    resumer = threading.Thread(target=lambda: (wait_until(condition, timeout=30), resume()), daemon=True)
    resumer.start()
    try:
        yield
    finally:
        resume()
        resumer.join(timeout=30)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def proxy(live_api: LiveServer) -> Iterator[FaultyProxy]:
    server = FaultyProxy(live_api.url)
    yield server
    server.stop()


def test_submit_wait_and_download_write_the_pdf(live_api: LiveServer, flavour: str, tmp_path: Path) -> None:
    """A submitted invoice is waited for, typed as a completed Job, and downloaded to a path and a file object."""
    data = {**INVOICE, "invoice_number": f"PY-{flavour}"}
    job = run(flavour, live_api.url, "submit_job", "invoice.html", data, "inv.pdf", "high", metadata={"n": 1})
    assert job.status is JobStatus.QUEUED and job.priority == "high" and job.metadata == {"n": 1}
    seen: list[pdfq.Job] = []
    done = run(flavour, live_api.url, "wait_for_job", job, timeout=60, on_update=seen.append)
    assert done.status is JobStatus.COMPLETED and done.filename == "inv.pdf" and done.result.pages == 1
    assert [j.status for j in seen][-1] is JobStatus.COMPLETED and len(seen) >= 2
    assert done.raw["id"] == job.id and done.finished_at >= done.created_at
    written = run(flavour, live_api.url, "download", done, tmp_path / "out.pdf")
    content = (tmp_path / "out.pdf").read_bytes()
    assert written == len(content) == done.result.bytes
    assert hashlib.sha256(content).hexdigest() == done.result.sha256
    assert f"PY-{flavour}" in PdfReader(tmp_path / "out.pdf").pages[0].extract_text()
    buffer = io.BytesIO()
    assert run(flavour, live_api.url, "download", job.id, buffer) == written and buffer.getvalue() == content
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_broken_download_leaves_no_partial_file(proxy: FaultyProxy, flavour: str, tmp_path: Path) -> None:
    """A download cut half-way raises the network error and leaves neither the PDF's name nor a temporary file."""
    done = run(flavour, proxy.url, "wait_for_job", run(flavour, proxy.url, "submit_job", html="<p>cut</p>"))
    proxy.rules.append(Rule("GET", "/pdf", "cut"))
    with pytest.raises(httpx.TransportError):
        run(flavour, proxy.url, "download", done, tmp_path / "cut.pdf")
    assert list(tmp_path.iterdir()) == []
    assert run(flavour, proxy.url, "download", done, tmp_path / "cut.pdf") == done.result.bytes


def test_failed_job_raises_job_failed_and_can_be_retried(live_api: LiveServer, flavour: str) -> None:
    """A template error ends the wait with JobFailed carrying `template_error`; retry_job runs it again."""
    job = run(flavour, live_api.url, "submit_job", html="<p>{{ missing_field }}</p>")
    with pytest.raises(JobFailed) as failed:
        run(flavour, live_api.url, "wait_for_job", job.id, timeout=60)
    assert failed.value.code == "template_error" and "missing_field" in failed.value.message
    assert failed.value.job.status is JobStatus.FAILED and run(flavour, live_api.url, "get_job_status", job) == "failed"
    retried = run(flavour, live_api.url, "retry_job", job)
    assert retried.id == job.id and retried.status in (JobStatus.QUEUED, JobStatus.STARTED)
    with pytest.raises(JobFailed) as again:
        run(flavour, live_api.url, "wait_for_job", retried, timeout=60)
    assert again.value.job.finished_at > failed.value.job.finished_at


def test_canceled_job_raises_job_canceled(live_api: LiveServer, flavour: str) -> None:
    """A batch is one list of Jobs; the last one, canceled, ends its wait with JobCanceled."""
    jobs = run(flavour, live_api.url, "submit_batch", [{"html": f"<p>{i}</p>", "priority": "low"} for i in range(6)])
    assert len(jobs) == 6 and all(isinstance(j, pdfq.Job) for j in jobs)
    canceled = run(flavour, live_api.url, "cancel_job", jobs[-1].id)
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(JobCanceled) as ended:
        run(flavour, live_api.url, "wait_for_job", jobs[-1], timeout=30)
    assert ended.value.job.id == jobs[-1].id
    with pytest.raises(ApiError) as finished:
        run(flavour, live_api.url, "cancel_job", jobs[-1])
    assert (finished.value.status, finished.value.code) == (409, "already_finished")
    for job in jobs[:-1]:  # none left rendering into the next test
        assert run(flavour, live_api.url, "wait_for_job", job, timeout=60).status is JobStatus.COMPLETED


@pytest.mark.parametrize(("method", "args", "kwargs", "status", "code", "field"), [
    ("submit_job", ("no-such.html",), {}, 422, "validation_error", "template"),
    ("submit_job", (), {"html": "<p/>", "priority": "asap"}, 422, "validation_error", "priority"),
    ("get_job", ("0" * 32,), {}, 404, "not_found", None),
    ("download", ("0" * 32, io.BytesIO()), {}, 404, "not_found", None),
    ("list_jobs", (), {"page_size": 0}, 422, "validation_error", "limit"),
])
def test_refusals_raise_api_error_with_the_problem_fields(live_api: LiveServer, flavour: str, method: str,
                                                         args: tuple[Any, ...], kwargs: dict[str, Any], status: int,
                                                         code: str, field: str | None) -> None:
    """A refused call raises ApiError with the problem+json status, code, detail and field errors."""
    with pytest.raises(ApiError) as refused:
        run(flavour, live_api.url, method, *args, **kwargs)
    error = refused.value
    assert (error.status, error.code) == (status, code) and error.detail
    if field is not None:
        assert field in [e["field"] for e in error.errors] and field in str(error)


def test_unknown_key_is_unauthorized(live_api: LiveServer, flavour: str) -> None:
    """An unknown API key raises ApiError 401 `unauthorized`."""
    with pytest.raises(ApiError) as refused:
        run(flavour, live_api.url, "templates", key="wrong")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


def test_templates_stats_and_status(live_api: LiveServer, flavour: str) -> None:
    """templates() lists typed templates with sample data; get_queue_stats() is the stats resource."""
    templates = {t.name: t for t in run(flavour, live_api.url, "templates")}
    assert templates["invoice.html"].sample_data == INVOICE and templates["invoice.html"].description
    stats = run(flavour, live_api.url, "get_queue_stats")
    assert set(stats["queues"]) == {"urgent", "high", "normal", "low"} and stats["workers"]["total"] >= 2


def test_list_jobs_iterates_every_page(proxy: FaultyProxy, flavour: str) -> None:
    """list_jobs follows next_cursor through every page, and filters by status."""
    jobs = run(flavour, proxy.url, "submit_batch", [{"html": f"<p>{i}</p>"} for i in range(5)])
    listed = run(flavour, proxy.url, "list_jobs", page_size=2)
    assert sorted(j.id for j in listed) == sorted(j.id for j in jobs)
    pages = proxy.requests("GET", "/v1/jobs?")
    assert len(pages) == 3 and "cursor=" not in pages[0].path and all("cursor=" in p.path for p in pages[1:])
    for job in jobs:
        run(flavour, proxy.url, "wait_for_job", job, timeout=60)
    assert {j.id for j in run(flavour, proxy.url, "list_jobs", pdfq.JobStatus.COMPLETED)} == {j.id for j in jobs}
    assert run(flavour, proxy.url, "list_jobs", "failed") == []


@pytest.mark.parametrize("ids", ["inject", "strip"])
def test_dropped_stream_is_resumed(proxy: FaultyProxy, flavour: str, ids: str,
                                   workers: list[WorkerProcess]) -> None:
    """A stream cut while the job waits is reopened: with Last-Event-ID when events had ids, else after re-reading
    the job; the reopened stream then carries the job to its end."""
    proxy.ids = ids  # type: ignore[assignment]
    proxy.rules.append(Rule("GET", "/events", "cut", cut_after_events=1))
    with workers_paused_until(workers, lambda: len(proxy.streams) >= 2):
        job = run(flavour, proxy.url, "submit_job", "letter.html",
                  json.loads((ROOT / "templates" / "letter.json").read_text())["sample_data"])
        done = run(flavour, proxy.url, "wait_for_job", job, timeout=60)
    assert done.status is JobStatus.COMPLETED and done.result.pages >= 1
    first, second = proxy.streams
    assert first.cut and first.events == 1 and not second.cut and second.events >= 3  # queued, started…, done
    reopened = proxy.requests("GET", "/events")[1]
    if ids == "inject":
        assert first.last_id is not None and reopened.headers.get("Last-Event-ID") == first.last_id
    else:
        assert "Last-Event-ID" not in reopened.headers
        rereads = [s for s in proxy.requests("GET", f"/v1/jobs/{job.id}") if "/events" not in s.path]
        assert rereads and proxy.seen.index(rereads[0]) < proxy.seen.index(reopened)


def test_wait_polls_when_streaming_fails(proxy: FaultyProxy, flavour: str, workers: list[WorkerProcess]) -> None:
    """When the event stream cannot be opened, the wait gives it up after a few tries and polls the job."""
    proxy.rules.append(Rule("GET", "/events", "refuse", times=100, status=502, retry_after=None))

    def polling() -> bool:
        streams = proxy.requests("GET", "/events")
        last = proxy.seen.index(streams[-1]) if len(streams) == MAX_STREAM_FAILURES else len(proxy.seen)
        return sum(s.method == "GET" and "/v1/jobs/" in s.path for s in proxy.seen[last + 1:]) >= 2

    with workers_paused_until(workers, polling):
        job = run(flavour, proxy.url, "submit_job", html="<p>polled</p>")
        done = run(flavour, proxy.url, "wait_for_job", job, timeout=60)
    assert done.status is JobStatus.COMPLETED
    assert len(proxy.requests("GET", "/events")) == MAX_STREAM_FAILURES


def test_wait_times_out(proxy: FaultyProxy, flavour: str, live_api: LiveServer) -> None:
    """A wait whose stream stays silent ends at its timeout with pdfq.TimeoutError (a builtin TimeoutError too)."""
    proxy.rules.append(Rule("GET", "/events", "stall", times=10))
    job = run(flavour, proxy.url, "submit_job", html="<p>slow</p>")
    with pytest.raises(builtins.TimeoutError) as timed_out:
        run(flavour, proxy.url, "wait_for_job", job, timeout=0.5)
    assert isinstance(timed_out.value, pdfq.TimeoutError) and timed_out.value.job.id == job.id
    run(flavour, live_api.url, "wait_for_job", job, timeout=60)  # it went on running, and ends without the proxy


@pytest.mark.parametrize(("action", "status", "retry_after"), [("lose", 503, "1"), ("refuse", 429, "0")])
def test_retried_submit_makes_one_job(proxy: FaultyProxy, flavour: str, action: str, status: int,
                                      retry_after: str, live_api: LiveServer) -> None:
    """A submit answered 503/429 (even after the service made the job) is retried after Retry-After with the same
    Idempotency-Key, and the tenant has exactly one job."""
    proxy.rules.append(Rule("POST", "/v1/jobs", action, status=status, retry_after=retry_after))  # type: ignore[arg-type]
    job = run(flavour, proxy.url, "submit_job", html="<p>once</p>")
    first, second = proxy.requests("POST", "/v1/jobs")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert second.at - first.at >= float(retry_after)
    assert [j.id for j in run(flavour, live_api.url, "list_jobs")] == [job.id]
    run(flavour, live_api.url, "wait_for_job", job, timeout=60)


def test_retries_stop_at_max_retries(proxy: FaultyProxy) -> None:
    """A service that keeps answering 503 is asked 1 + max_retries times, then the ApiError reaches the caller."""
    proxy.rules.append(Rule("POST", "/v1/jobs", "refuse", times=100, status=503, retry_after="0"))
    with pytest.raises(ApiError) as refused:
        run("sync", proxy.url, "submit_job", html="<p>never</p>", max_retries=2)
    assert (refused.value.status, refused.value.code, refused.value.retry_after_s) == (503, "queue_full", 0)
    assert len(proxy.requests("POST", "/v1/jobs")) == 3


def test_caller_idempotency_key_answers_the_first_job(live_api: LiveServer, flavour: str) -> None:
    """Two submits with the caller's Idempotency-Key answer the same job."""
    first = run(flavour, live_api.url, "submit_job", html="<p>k</p>", idempotency_key=f"order-{flavour}")
    again = run(flavour, live_api.url, "submit_job", html="<p>k</p>", idempotency_key=f"order-{flavour}")
    assert again.id == first.id
    run(flavour, live_api.url, "wait_for_job", first, timeout=60)


def test_webhook_signature_and_body(live_api: LiveServer) -> None:
    """verify_signature accepts exactly what the worker signs (worker/webhooks.sign) and job_from_webhook reads it."""
    from worker.webhooks import sign

    resource = run("sync", live_api.url, "submit_job", html="<p>hook</p>").raw
    body = json.dumps(resource).encode()
    header = sign("hook-secret", body)
    assert pdfq.verify_signature(body, header, "hook-secret")
    assert not pdfq.verify_signature(body + b" ", header, "hook-secret")
    assert not pdfq.verify_signature(body, header, "other-secret")
    assert not pdfq.verify_signature(body, None, "hook-secret") and not pdfq.verify_signature(body, header, "")
    assert pdfq.job_from_webhook(body).id == resource["id"]
    run("sync", live_api.url, "wait_for_job", resource["id"], timeout=60)
