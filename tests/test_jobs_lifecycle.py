"""End to end through real Redis and real worker processes: submit, follow, download, cancel, retry."""
from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from pypdf import PdfReader
from rq import Queue

from api.context import EXTENSION
from shared.links import link_signature
from shared.logs import JsonFormatter
from tests.conftest import JobsClient
from tests.support import WorkerProcess, wait_until, work_horse

pytestmark = pytest.mark.usefixtures("workers")


def pdf_text(content: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(content))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_inline_job_completes_and_downloads(jobs: JobsClient, client, auth) -> None:
    """An inline template renders to a one-page PDF holding the submitted data."""
    job = jobs.submit({"html": "<h1>Invoice {{ number }}</h1><p>{{ customer }}</p>",
                       "data": {"number": "INV-7781", "customer": "Ada Lovelace"}, "filename": "../x/inv 7781.pdf"})
    assert job["status"] in ("queued", "started")
    assert job["filename"] == "inv-7781.pdf"
    done = jobs.wait(job["id"])
    assert done["status"] == "completed", done
    assert done["attempts"] == 1 and done["progress"] == {"step": "done", "percent": 100}
    assert done["started_at"] <= done["finished_at"]
    response = client.get(f"/v1/jobs/{job['id']}/pdf", headers=auth.headers())
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="inv-7781.pdf"'
    assert response.headers["ETag"] == f'"{done["result"]["sha256"]}"'
    assert done["result"]["bytes"] == len(response.data)
    pages, text = pdf_text(response.data)
    assert pages == done["result"]["pages"] == 1
    assert "INV-7781" in text and "Ada Lovelace" in text


def test_every_builtin_template_renders_its_sample_data(jobs: JobsClient, client, auth) -> None:
    """Each template in GET /v1/templates renders its own sample_data into a PDF."""
    templates = client.get("/v1/templates", headers=auth.headers()).json["templates"]
    assert {"invoice.html", "report.html", "letter.html"} <= {t["name"] for t in templates}
    submitted = [(t, jobs.submit({"template": t["name"], "data": t["sample_data"]})) for t in templates]
    for template, job in submitted:
        done = jobs.wait(job["id"])
        assert done["status"] == "completed", done
        pages, text = pdf_text(client.get(done["links"]["pdf"]).data)
        assert pages == done["result"]["pages"] >= 1
        assert text.strip(), template["name"]
    report = next(d for t, d in submitted if t["name"] == "report.html")
    assert jobs.get(report["id"])["result"]["pages"] >= 3


def test_invoice_text_contains_submitted_line_items(jobs: JobsClient, client, auth) -> None:
    """The invoice shows the customer's own line items and number, not the sample's."""
    sample = next(t for t in client.get("/v1/templates", headers=auth.headers()).json["templates"]
                  if t["name"] == "invoice.html")["sample_data"]
    data = {**sample, "invoice_number": "ZX-99812"}
    data["items"] = [{**sample["items"][0], "description": f"Widget model {i:03d}", "quantity": 1,
                      "unit_price": 10} for i in range(3)]
    done = jobs.wait(jobs.submit({"template": "invoice.html", "data": data})["id"])
    assert done["status"] == "completed", done
    _, text = pdf_text(client.get(done["links"]["pdf"]).data)
    assert "ZX-99812" in text and "Widget model 002" in text


def test_missing_field_fails_at_once_as_template_error(jobs: JobsClient) -> None:
    """StrictUndefined turns a missing field into a permanent template_error without retries."""
    done = jobs.wait(jobs.submit({"html": "<p>{{ customer.name }}</p>", "max_retries": 3})["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "template_error"
    assert "customer" in done["error"]["message"]
    assert done["attempts"] == 1


def test_html_is_autoescaped(jobs: JobsClient, client) -> None:
    """Data is escaped, so markup in a field prints as text instead of becoming HTML."""
    done = jobs.wait(jobs.submit({"html": "<p>{{ note }}</p>", "data": {"note": "<b>bold</b> & co"}})["id"])
    _, text = pdf_text(client.get(done["links"]["pdf"]).data)
    assert "<b>bold</b> & co" in text


def test_pdf_before_completion_is_not_ready(no_workers: None, jobs: JobsClient, client, auth) -> None:
    """Asking for the PDF of a queued job answers 409 not_ready with the job's status."""
    job = jobs.submit({"html": "<p>x</p>"})
    response = client.get(f"/v1/jobs/{job['id']}/pdf", headers=auth.headers())
    assert response.status_code == 409
    assert response.json["code"] == "not_ready" and response.json["job_status"] == "queued"


def test_link_token_is_scoped_to_its_route_and_job(jobs: JobsClient, client) -> None:
    """links.pdf works without a key; a tampered or misrouted token answers 401."""
    done = jobs.wait(jobs.submit({"html": "<p>token</p>"})["id"])
    assert client.get(done["links"]["pdf"]).status_code == 200
    token = done["links"]["pdf"].split("token=")[1]
    events_token = done["links"]["events"].split("token=")[1]
    assert client.get(f"/v1/jobs/{done['id']}/pdf?token={events_token}").status_code == 401
    assert client.get(f"/v1/jobs/{done['id']}/pdf?token={token[:-2]}xx").status_code == 401
    assert client.get(f"/v1/jobs/{done['id']}/pdf?token=1.{token.split('.')[1]}").status_code == 401


def test_link_token_stops_working_when_it_expires(jobs: JobsClient, client) -> None:
    """A correctly signed token opens the PDF until its expiry time and answers 401 from then on."""
    done = jobs.wait(jobs.submit({"html": "<p>expiring</p>"})["id"])
    secret = client.application.extensions[EXTENSION].settings.secret_key

    def token(expires: int) -> str:
        return f"{expires}.{link_signature(secret, 'acme', done['id'], 'pdf', expires)}"

    assert client.get(f"/v1/jobs/{done['id']}/pdf?token={token(int(time.time()) + 60)}").status_code == 200
    expired = client.get(f"/v1/jobs/{done['id']}/pdf?token={token(int(time.time()) - 1)}")
    assert expired.status_code == 401 and expired.json["code"] == "unauthorized"


def test_queued_job_reports_position_and_wait(no_workers: None, jobs: JobsClient) -> None:
    """Queued jobs carry queue_position (0 = next, higher priorities first) and a wait estimate."""
    first = jobs.submit({"html": "<p>1</p>", "priority": "low"})
    second = jobs.submit({"html": "<p>2</p>", "priority": "low"})
    assert (first["queue_position"], second["queue_position"]) == (0, 1)
    urgent = jobs.submit({"html": "<p>3</p>", "priority": "urgent"})
    assert jobs.get(urgent["id"])["queue_position"] == 0
    assert jobs.get(first["id"])["queue_position"] == 1
    assert jobs.get(second["id"])["queue_position"] == 2
    assert jobs.get(second["id"])["estimated_wait_s"] > jobs.get(first["id"])["estimated_wait_s"] > 0


def test_job_popped_but_not_yet_started_is_next(no_workers: None, jobs: JobsClient, client) -> None:
    """A queued job a worker has taken off its queue but not yet started reads as next: position 0, wait 0."""
    job = jobs.submit({"html": "<p>1</p>", "priority": "low"})
    connection = client.application.extensions[EXTENSION].connection
    # A worker's dequeue first pops the id off the queue list and only later marks the job started.
    assert connection.lpop(Queue("low", connection=connection).key) == job["id"].encode()
    popped = jobs.get(job["id"])
    assert popped["status"] == "queued"
    assert (popped["queue_position"], popped["estimated_wait_s"]) == (0, 0)


def test_list_is_newest_first_with_cursor_and_status_filter(no_workers: None, jobs: JobsClient, client, auth) -> None:
    """GET /v1/jobs pages through the tenant's jobs newest first, filtered by status."""
    ids = [jobs.submit({"html": f"<p>{i}</p>"})["id"] for i in range(5)]
    client.delete(f"/v1/jobs/{ids[0]}", headers=auth.headers())
    page = client.get("/v1/jobs?limit=2", headers=auth.headers()).json
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    page2 = client.get(f"/v1/jobs?limit=2&cursor={page['next_cursor']}", headers=auth.headers()).json
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
    page3 = client.get(f"/v1/jobs?limit=2&cursor={page2['next_cursor']}", headers=auth.headers()).json
    assert [j["id"] for j in page3["jobs"]] == [ids[0]] and page3["next_cursor"] is None
    canceled = client.get("/v1/jobs?status=canceled", headers=auth.headers()).json
    assert [j["id"] for j in canceled["jobs"]] == [ids[0]]


def test_priority_order_urgent_first(no_workers: None, env: dict[str, str], jobs: JobsClient,
                                     spawn_worker: Callable[..., WorkerProcess]) -> None:
    """One worker started after jobs queued takes urgent, high, normal, low in that order."""
    submitted = {p: [jobs.submit({"html": f"<p>{p} {i}</p>", "priority": p})["id"] for i in range(2)]
                 for p in ("low", "normal", "high", "urgent")}
    spawn_worker(env)
    done = {p: [jobs.wait(i) for i in ids] for p, ids in submitted.items()}
    order = ["urgent", "high", "normal", "low"]
    for higher, lower in zip(order, order[1:]):
        assert max(j["started_at"] for j in done[higher]) <= min(j["started_at"] for j in done[lower])


def test_cancel_queued_job_then_retry(no_workers: None, env: dict[str, str], jobs: JobsClient, client, auth,
                                      spawn_worker: Callable[..., WorkerProcess]) -> None:
    """A queued job cancels at once, cannot be canceled twice, and retry puts it back to run."""
    job = jobs.submit({"html": "<p>cancel me</p>"})
    response = client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers())
    assert response.status_code == 200 and response.json["status"] == "canceled"
    assert jobs.get(job["id"])["status"] == "canceled"
    again = client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers())
    assert again.status_code == 409 and again.json["code"] == "already_finished"
    retried = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers())
    assert retried.status_code == 202 and retried.json["status"] == "queued"
    spawn_worker(env)
    assert jobs.wait(job["id"])["status"] == "completed"
    not_retryable = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers())
    assert not_retryable.status_code == 409 and not_retryable.json["code"] == "not_retryable"


SLOW_HTML = "<table>{% for i in range(rows) %}<tr><td>row {{ i }}</td><td>{{ i * 3 }}</td></tr>{% endfor %}</table>"


def test_cancel_started_job_stops_it(jobs: JobsClient, client, auth, redis) -> None:
    """DELETE on a running job kills its work-horse: RQ records it stopped, no PDF is stored, it is not retried."""
    job = jobs.submit({"html": SLOW_HTML, "data": {"rows": 40000}, "timeout_s": 120})
    jobs.wait(job["id"], ("started",))
    worker_name = redis.hget(f"rq:job:{job['id']}", "worker_name").decode()
    horse = wait_until(lambda: work_horse(int(redis.hget(f"rq:worker:{worker_name}", "pid"))))
    response = client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers())
    assert response.status_code == 200 and response.json["status"] == "canceled"
    # Long before this render could end (tens of seconds), the horse is gone and RQ's own record says stopped.
    wait_until(lambda: not Path(f"/proc/{horse}").exists(), timeout=10)
    wait_until(lambda: redis.hget(f"rq:job:{job['id']}", "status") == b"stopped", timeout=10)
    final = jobs.get(job["id"])
    assert final["status"] == "canceled" and final["attempts"] == 1 and final["result"] is None
    assert client.application.extensions["pdfq"].storage.open(job["id"]) is None
    # The worker survived the stop and takes new work.
    assert jobs.wait(jobs.submit({"html": "<p>after</p>"})["id"])["status"] == "completed"
    assert redis.hget(f"rq:job:{job['id']}", "status") == b"stopped"


def test_canceled_queued_job_expires_with_retention(no_workers: None, jobs: JobsClient, client, auth, redis,
                                                    settings) -> None:
    """A canceled queued job's record expires after RESULT_TTL_S; a retry makes it permanent again."""
    job = jobs.submit({"html": "<p>cancel me</p>"})
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers()).status_code == 200
    assert 0 < redis.ttl(f"rq:job:{job['id']}") <= settings.result_ttl_s
    assert client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers()).status_code == 202
    assert redis.ttl(f"rq:job:{job['id']}") == -1


def test_unchanged_pdf_answers_304_from_the_record(jobs: JobsClient, client, auth) -> None:
    """If-None-Match with the job's ETag answers 304 from the job record, without reading the stored PDF."""
    done = jobs.wait(jobs.submit({"html": "<p>cached</p>"})["id"])
    first = client.get(f"/v1/jobs/{done['id']}/pdf", headers=auth.headers())
    assert first.headers["Content-Length"] == str(len(first.data)) == str(done["result"]["bytes"])
    client.application.extensions["pdfq"].storage.delete(done["id"])
    cached = client.get(f"/v1/jobs/{done['id']}/pdf", headers={**auth.headers(), "If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304 and cached.headers["ETag"] == first.headers["ETag"] and cached.data == b""
    assert client.get(f"/v1/jobs/{done['id']}/pdf", headers=auth.headers()).status_code == 410


def test_lifecycle_events_are_logged_without_job_data(no_workers: None, client, auth,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Accepting, canceling and retrying a job each log one line naming job, tenant, queue and template, not data."""
    secret = "SECRET-7781"
    with caplog.at_level(logging.INFO, logger="api.jobs"):
        single = client.post("/v1/jobs", json={"html": f"<p>{secret}</p>", "css": f"/* {secret} */",
                                               "data": {"note": secret}, "priority": "high"}, headers=auth.headers())
        batch = client.post("/v1/jobs/batch", json={"jobs": [{"template": "invoice.html", "data": {"note": secret}},
                                                             {"html": secret, "priority": "low"}]},
                            headers=auth.headers())
        job_id = single.json["id"]
        client.delete(f"/v1/jobs/{job_id}", headers=auth.headers())
        client.post(f"/v1/jobs/{job_id}/retry", headers=auth.headers())
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "api.jobs"]
    batch_ids = [j["id"] for j in batch.json["jobs"]]
    assert [(line["msg"], line["job_id"], line["tenant"], line["queue"], line["template"]) for line in lines] == [
        ("job accepted", job_id, "acme", "high", "inline"),
        ("job accepted", batch_ids[0], "acme", "normal", "invoice.html"),
        ("job accepted", batch_ids[1], "acme", "low", "inline"),
        ("job canceled", job_id, "acme", "high", "inline"),
        ("job retried", job_id, "acme", "high", "inline"),
    ]
    assert secret not in caplog.text and all(secret not in json.dumps(line) for line in lines)


@pytest.mark.parametrize("route", ["", "/pdf", "/events", "/retry", "DELETE"])
def test_other_tenants_job_is_not_found(jobs: JobsClient, client, auth, route: str) -> None:
    """Every job route answers 404 for another tenant's id, exactly as for an unknown id."""
    job = jobs.wait(jobs.submit({"html": "<p>mine</p>"})["id"])
    method, path = ("delete", "") if route == "DELETE" else ("post" if route == "/retry" else "get", route)
    response = getattr(client, method)(f"/v1/jobs/{job['id']}{path}", headers=auth.headers("globex"))
    unknown = getattr(client, method)(f"/v1/jobs/{'0' * 32}{path}", headers=auth.headers("globex"))
    assert response.status_code == unknown.status_code == 404
    assert response.json["code"] == "not_found"
    assert response.json["detail"].replace(job["id"], "ID") == unknown.json["detail"].replace("0" * 32, "ID")


def test_tenant_lists_only_its_own_jobs(no_workers: None, jobs: JobsClient, client, auth) -> None:
    """GET /v1/jobs never shows another tenant's jobs."""
    mine = jobs.submit({"html": "<p>a</p>"}, tenant="acme")["id"]
    theirs = jobs.submit({"html": "<p>b</p>"}, tenant="globex")["id"]
    listed: dict[str, Any] = client.get("/v1/jobs", headers=auth.headers("acme")).json
    assert [j["id"] for j in listed["jobs"]] == [mine]
    assert theirs not in str(listed)
