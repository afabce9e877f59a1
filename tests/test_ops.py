"""Operations: fleet-wide metrics and stats, the dashboard behind auth, the daily report, JSON logs."""
from __future__ import annotations

import base64
import io
import json
from typing import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader
from rq import Queue

from api import create_app
from shared.config import Settings
from tests.conftest import AuthActions, JobsClient
from tests.support import WorkerProcess, wait_until


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


@pytest.mark.usefixtures("workers")
def test_metrics_are_fleet_wide_and_rise_as_jobs_complete(jobs: JobsClient, client) -> None:
    """/metrics parses as Prometheus text; completed and histogram counts rise with jobs done by two workers."""
    before = scrape(client)
    submitted = [jobs.submit({"html": f"<p>{i}</p>", "priority": "high"})["id"] for i in range(6)]
    submitted.append(jobs.submit({"html": "{{ missing }}", "priority": "high"})["id"])
    finals = [jobs.wait(i) for i in submitted]
    after = scrape(client)
    assert after[("pdf_jobs_enqueued_total", (("priority", "high"),))] - \
        before.get(("pdf_jobs_enqueued_total", (("priority", "high"),)), 0) == 7
    assert after[("pdf_jobs_completed_total", (("priority", "high"),))] - \
        before.get(("pdf_jobs_completed_total", (("priority", "high"),)), 0) == 6
    assert after[("pdf_jobs_failed_total", (("priority", "high"),))] >= 1
    assert after[("pdf_render_seconds_count", ())] - before.get(("pdf_render_seconds_count", ()), 0) == 6
    assert after[("pdf_render_seconds_bucket", (("le", "+Inf"),))] == after[("pdf_render_seconds_count", ())]
    assert after[("pdf_workers", ())] >= 2
    assert ("pdf_queue_depth", (("queue", "urgent"),)) in after
    renderers = {jobs.client.application.extensions["pdfq"].connection.hget(f"rq:job:{j['id']}", "worker_name")
                 for j in finals if j["status"] == "completed"}
    assert len(renderers) == 2, "both worker processes contributed to the same counters"


@pytest.mark.usefixtures("workers")
def test_queue_stats_shape_and_figures(jobs: JobsClient, client, auth: AuthActions) -> None:
    """/v1/queue/stats reports the four queues, workers, totals, render percentiles, throughput and memory."""
    for i in range(3):
        jobs.wait(jobs.submit({"html": f"<p>{i}</p>"})["id"])
    stats = client.get("/v1/queue/stats", headers=auth.headers()).json
    assert set(stats["queues"]) == {"urgent", "high", "normal", "low"}
    assert set(stats["queues"]["normal"]) == {"queued", "started", "failed", "scheduled"}
    assert stats["workers"]["total"] >= 2 and 0 <= stats["workers"]["busy"] <= stats["workers"]["total"]
    assert stats["jobs"]["completed"] >= 3
    assert 0 < stats["render_ms"]["p50"] <= stats["render_ms"]["p95"]
    assert stats["throughput_per_min"] >= 3 and stats["peak_rss_mb"] > 10
    assert client.get("/v1/queue/stats").status_code == 401


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_dashboard_requires_basic_auth_and_requeues_our_jobs(no_workers: None, env: dict[str, str], redis,
                                                            auth: AuthActions, spawn_worker) -> None:
    """/admin/rq: 401 without or with wrong credentials, 200 with them; its requeue re-runs our failed job."""
    env.update(DASHBOARD_USER="ops", DASHBOARD_PASSWORD="s3cret-dash")
    app = create_app(Settings.from_env(env))
    create_app(Settings.from_env(env))  # a second app must not break the first (no blueprint hooks)
    client = app.test_client()
    assert client.get("/admin/rq/").status_code == 401
    assert client.get("/admin/rq/", headers=basic("ops", "wrong")).status_code == 401
    page = client.get("/admin/rq/", headers=basic("ops", "s3cret-dash"))
    assert page.status_code == 200 and b"urgent" in page.data or b"queues" in page.data.lower()
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    queues = client.get("/admin/rq/0/data/queues.json", headers=basic("ops", "s3cret-dash")).json
    assert {"urgent", "high", "normal", "low"} <= {q["name"] for q in queues["queues"]} or queues
    jobs = JobsClient(client, auth)
    failed = jobs.submit({"html": "{{ nope }}"})
    spawn_worker(env)
    assert jobs.wait(failed["id"])["status"] == "failed"
    requeue = client.post(f"/admin/rq/job/{failed['id']}/requeue", headers=basic("ops", "s3cret-dash"))
    assert requeue.status_code == 200
    wait_until(lambda: jobs.get(failed["id"])["attempts"] == 2, timeout=30)


def test_dashboard_not_mounted_without_password(client) -> None:
    """Without DASHBOARD_PASSWORD /admin/rq does not exist."""
    response = client.get("/admin/rq/")
    assert response.status_code == 404 and response.json["code"] == "not_found"


@pytest.mark.usefixtures("workers")
def test_daily_report_pdf_has_figures_and_charts(jobs: JobsClient, client, auth: AuthActions, redis) -> None:
    """The daily operations report renders through the service itself, with the day's figures and SVG charts."""
    for i in range(3):
        jobs.wait(jobs.submit({"html": f"<p>{i}</p>"}, tenant="globex")["id"], tenant="globex")
    jobs.wait(jobs.submit({"html": "{{ nope }}"})["id"])
    from datetime import datetime, timezone

    today = f"{datetime.now(timezone.utc):%Y-%m-%d}"
    Queue("urgent", connection=redis).enqueue("worker.maintenance.daily_report", today)
    report_id = wait_until(lambda: redis.get("pdfq:ops:latest_report"), timeout=30).decode()
    done = jobs.wait(report_id, tenant="ops")
    assert done["status"] == "completed", done
    pdf = client.get(f"/v1/jobs/{report_id}/pdf", headers=auth.headers("ops")).data
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert f"Operations report — {today}" in text
    assert "globex" in text and "template_error" in text and "p95" in text
    drawing = reader.pages[0].get_contents().get_data()
    assert drawing.count(b" re") >= 6, "bar charts are drawn as rectangles"
    assert client.get(f"/v1/jobs/{report_id}", headers=auth.headers("acme")).status_code == 404


def test_worker_logs_are_json_with_job_fields_and_no_template_data(private_db: dict[str, str], jobs: JobsClient,
                                                                   spawn_worker: Callable[..., WorkerProcess]) -> None:
    """Every worker log line is a JSON object; job lines carry id, tenant, queue, attempt, duration; no data."""
    worker = spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": "<p>{{ card }}</p>", "data": {"card": "4111-LOGCHECK-9"}})["id"])
    failed = jobs.wait(jobs.submit({"html": "<p>{{ card.number }}</p>", "data": {"card": "4111-LOGCHECK-9"}})["id"])
    assert done["status"] == "completed" and failed["status"] == "failed"
    wait_until(lambda: done["id"] in worker.log_path.read_text(), timeout=10)
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    completed = next(r for r in records if r.get("msg") == "job completed" and r.get("job_id") == done["id"])
    assert {"job_id", "tenant", "queue", "attempt", "duration_ms"} <= set(completed)
    assert "4111-LOGCHECK-9" not in worker.log_path.read_text()
    assert "acme-key" not in worker.log_path.read_text()
