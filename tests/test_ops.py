"""Operations: fleet-wide metrics and stats, the dashboard behind auth, the daily report, JSON logs."""
from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pikepdf
import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader
from redis import Redis
from rq import Queue, Worker

from api import create_app
from shared.config import Settings
from tests.conftest import AuthActions, JobsClient
from tests.support import ROOT, LiveServer, RedisServer, WorkerProcess, kill_tree, wait_until

LIVE_DB = 5
"""A database only the worker-counting test uses, so no other test's workers are counted."""


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


DASHBOARD = basic("ops", "s3cret-dash")


@pytest.fixture
def dashboard(no_workers: None, env: dict[str, str], redis) -> FlaskClient:
    """A test client of an app with the dashboard mounted, on the database without workers."""
    env.update(DASHBOARD_USER="ops", DASHBOARD_PASSWORD="s3cret-dash")
    app = create_app(Settings.from_env(env))
    create_app(Settings.from_env(env))  # a second app must not break the first (no blueprint hooks)
    return app.test_client()


def test_dashboard_requires_basic_auth_and_reads_our_redis(dashboard: FlaskClient, auth: AuthActions) -> None:
    """/admin/rq: 401 without or with wrong credentials; with them its pages and data come from our Redis."""
    assert dashboard.get("/admin/rq/").status_code == 401
    assert dashboard.get("/admin/rq/", headers=basic("ops", "wrong")).status_code == 401
    JobsClient(dashboard, auth).submit({"html": "<p>x</p>", "priority": "low"})
    page = dashboard.get("/admin/rq/", headers=DASHBOARD)
    assert page.status_code == 200 and b"Queues" in page.data and b"Connection Error" not in page.data
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    queues = dashboard.get("/admin/rq/0/data/queues.json", headers=DASHBOARD).json["queues"]
    assert {q["name"]: q["count"] for q in queues}["low"] == 1
    app = dashboard.application
    assert app.redis_conn is app.extensions["pdfq"].connection, "it uses the app's own client"  # type: ignore
    assert dashboard.get("/admin/rq/1/data/queues.json", headers=DASHBOARD).status_code == 404


def test_dashboard_shows_queues_and_requeue_in_a_real_browser(private_db: dict[str, str], jobs: JobsClient,
                                                                spawn_worker: Callable[..., WorkerProcess],
                                                                page: Page, tmp_path: Path) -> None:
    """In headless Chromium the dashboard fills its queue table and shows a failed job's Requeue button;
    its favicon loads, and only its HTML pages allow 'unsafe-eval'."""
    spawn_worker(private_db)
    failed = jobs.wait(jobs.submit({"html": "<p>{{ nope }}</p>", "max_retries": 0})["id"])
    assert failed["status"] == "failed"
    server = LiveServer({**private_db, "DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "s3cret-dash"},
                        tmp_path / "gunicorn.log")
    try:
        page.set_extra_http_headers(DASHBOARD)
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(f"{server.url}/admin/rq/0/view/queues")
        page.locator("#queues tbody tr", has_text="normal").wait_for(timeout=15_000)
        page.goto(f"{server.url}/admin/rq/0/view/jobs/normal/failed/8/asc/1")
        row = page.locator("#jobs tbody tr", has_text=failed["id"])
        row.locator("[data-role=requeue-job-btn]").wait_for(timeout=15_000)
        assert refused == []
        favicon = page.request.get(f"{server.url}/static/favicon.ico")
        assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/")
        data = page.request.get(f"{server.url}/admin/rq/0/data/queues.json")
        assert "'unsafe-eval'" not in data.headers["content-security-policy"]
    finally:
        server.stop()


def test_dashboard_connects_with_the_apps_tls_options(env: dict[str, str]) -> None:
    """With rediss:// and REDIS_SSL_CERT_REQS=none the dashboard's client skips verification, like the app's."""
    env.update(DASHBOARD_PASSWORD="s3cret-dash", REDIS_URL="rediss://127.0.0.1:1/0", REDIS_SSL_CERT_REQS="none")
    app = create_app(Settings.from_env(env))
    options = app.redis_conn.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert options["ssl_cert_reqs"] is None


def test_dashboard_requeue_reruns_our_failed_job_with_fresh_attempts(dashboard: FlaskClient, redis, env: dict[str, str],
                                                                    auth: AuthActions, spawn_worker) -> None:
    """Requeue from the dashboard resets our record (queued, attempts 0, no error, no TTL); then it completes."""
    jobs = JobsClient(dashboard, auth)
    pages = "".join(f"<p style='break-before: page'>{i}</p>" for i in range(25))
    job_id = jobs.submit({"html": pages, "max_retries": 0})["id"]
    strict = spawn_worker({**env, "MAX_PAGES": "20"})  # room for the built-in templates it renders at start
    failed = jobs.wait(job_id)
    assert failed["status"] == "failed" and failed["error"]["code"] == "page_limit"
    strict.stop()
    assert redis.ttl(f"rq:job:{job_id}") > 0 and not redis.sismember("pdfq:tenant:acme:active", job_id)
    assert dashboard.post(f"/admin/rq/job/{job_id}/requeue", headers=DASHBOARD).json == {"status": "OK"}
    requeued = jobs.get(job_id)
    assert (requeued["status"], requeued["attempts"], requeued["error"]) == ("queued", 0, None)
    assert redis.ttl(f"rq:job:{job_id}") == -1 and redis.sismember("pdfq:tenant:acme:active", job_id)
    spawn_worker(env)
    done = jobs.wait(job_id)
    assert (done["status"], done["attempts"], done["result"]["pages"]) == ("completed", 1, 25)


def test_dashboard_requeue_all_takes_post_only(dashboard: FlaskClient, env: dict[str, str], auth: AuthActions,
                                               spawn_worker) -> None:
    """"Requeue all" answers GET with 405 and cross-site POSTs with 403; its own POST re-runs every failed job."""
    jobs = JobsClient(dashboard, auth)
    failed = [jobs.submit({"html": "{{ nope }}", "priority": "high"})["id"] for _ in range(2)]
    worker = spawn_worker(env)
    assert all(jobs.wait(job_id)["status"] == "failed" for job_id in failed)
    worker.stop()
    refused = dashboard.get("/admin/rq/requeue/high", headers=DASHBOARD)
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST"
    assert all(jobs.get(job_id)["status"] == "failed" for job_id in failed)
    for forged in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        assert dashboard.post("/admin/rq/requeue/high", headers={**DASHBOARD, **forged}).status_code == 403
    assert all(jobs.get(job_id)["status"] == "failed" for job_id in failed), "a forged POST changed nothing"
    own_page = {**DASHBOARD, "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    assert dashboard.post("/admin/rq/requeue/high", headers=own_page).json == {"status": "OK", "count": 2}
    assert [(jobs.get(i)["status"], jobs.get(i)["attempts"]) for i in failed] == [("queued", 0), ("queued", 0)]


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


@pytest.mark.usefixtures("workers")
def test_operator_makes_a_report_now_on_one_page_in_the_documents_font(base_env: dict[str, str], jobs: JobsClient,
                                                                       client, auth: AuthActions) -> None:
    """`python -m worker.ops_report DAY` enqueues the report at once; it fits one page, charts in Inter."""
    jobs.wait(jobs.submit({"html": "<p>counted</p>"})["id"])
    today = f"{datetime.now(timezone.utc):%Y-%m-%d}"
    made = subprocess.run([sys.executable, "-m", "worker.ops_report", today], cwd=ROOT, env=base_env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    report_id = made.stdout.strip()
    assert report_id.startswith(f"ops-report-{today}") and "/pdf" in made.stderr
    assert jobs.wait(report_id, tenant="ops")["status"] == "completed"
    pdf = pikepdf.open(io.BytesIO(client.get(f"/v1/jobs/{report_id}/pdf", headers=auth.headers("ops")).data))
    assert len(pdf.pages) == 1, "the render-time chart shares the page with the other figures"
    fonts = {str(font.BaseFont).split("+")[-1] for page in pdf.pages for font in page.Resources.Font.values()}
    assert fonts and all(name.startswith("Inter") for name in fonts), fonts


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


def test_metrics_content_type_is_prometheus_text_0_0_4(client) -> None:
    """/metrics declares exactly the Prometheus text format version the contract names (0.0.4)."""
    assert client.get("/metrics").headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def live_db(env: dict[str, str], redis_server: RedisServer) -> Redis:
    """Point this test's app (list it before `client`) at a database of its own, its worker registry emptied."""
    env["REDIS_URL"] = redis_server.url(LIVE_DB)
    connection = Redis.from_url(env["REDIS_URL"])
    connection.flushdb()
    return connection


@pytest.mark.timeout(240)
def test_readyz_and_pdf_workers_count_only_live_workers(live_db: Redis, env: dict[str, str], client,
                                                        spawn_worker: Callable[..., WorkerProcess]) -> None:
    """A stale name in rq:workers is not counted, and once a kill -9'd worker's registration lapses /readyz is 503."""
    worker = spawn_worker(env)
    live_db.sadd(Worker.redis_workers_keys, "rq:worker:ghost-of-a-killed-worker")
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["workers"] == 1
    assert scrape(client)[("pdf_workers", ())] == 1
    kill_tree(worker.pid)

    def unready() -> dict | None:
        response = client.get("/readyz")
        return response.json if response.status_code == 503 else None

    lapsed = {"status": "unready", "checks": {"redis": "ok", "workers": "no worker registered"}}
    killed_at = time.monotonic()
    assert wait_until(unready, timeout=120, interval=1) == lapsed
    assert time.monotonic() - killed_at < 45, "a killed worker stops counting within 40 s of its last beat"
    assert scrape(client)[("pdf_workers", ())] == 0
    assert live_db.scard(Worker.redis_workers_keys) == 2, "nothing pruned the names: the count alone ignores them"


def test_api_logs_at_log_level(base_env: dict[str, str]) -> None:
    """The gunicorn entry point (api.wsgi) sets the root logger to LOG_LEVEL, as the README documents."""
    probe = "import logging, api.wsgi; print(logging.getLevelName(logging.getLogger().level))"
    for level in ("DEBUG", "WARNING"):
        run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**base_env, "LOG_LEVEL": level},
                             capture_output=True, text=True, timeout=60, check=True)
        assert run.stdout.strip() == level


def test_make_run_restarts_worker_and_scheduler() -> None:
    """scripts/run.sh's one sed wraps the worker and the scheduler lines of the Procfile (not web) in a restart loop."""
    script = (ROOT / "scripts" / "run.sh").read_text()
    expression = re.search(r"^sed -E '(.+)' \\$", script, re.M)
    assert expression, "run.sh rewrites the Procfile with one sed"
    local = subprocess.run(["sed", "-E", expression.group(1), str(ROOT / "Procfile")], capture_output=True,
                           text=True, check=True).stdout
    processes = dict(line.split(": ", 1) for line in local.splitlines() if line.strip())
    assert processes["web"] == "gunicorn --config api/gunicorn_conf.py api.wsgi:app"
    for name, command in (("worker", "python -m worker"), ("scheduler", "python -m worker.scheduler")):
        assert processes[name] == (f'while true; do {command}; echo "{name} exited ($?), restarting in 1 s" >&2; '
                                   f"sleep 1; done")
