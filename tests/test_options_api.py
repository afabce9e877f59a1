"""`options` through the HTTP API: validation (422 naming the field), the echo, and real workers rendering them."""
from __future__ import annotations

import base64
import io
from typing import Any

import pikepdf
import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job

from shared import keys, schedules
from shared.config import Settings
from tests.conftest import AuthActions, JobsClient
from tests.support import WorkerProcess
from tests.test_ops import DASHBOARD, dashboard  # noqa: F401 (fixture)
from tests.test_schedules import make_due

OWNER, USER = "owner-Secret-7f3a", "user-Secret-91bc"
ENCRYPTED = {"encryption": {"owner_password": OWNER, "user_password": USER, "permissions": ["print"]}}
CSV = b"sku,qty\nA-1,3\n"
DOC = "<html lang='en'><head><title>Doc</title></head><body>{% for i in range(3) %}<p style='break-after: page'>" \
      "p{{ i + 1 }}</p>{% endfor %}</body></html>"


@pytest.mark.parametrize(("options", "field"), [
    ({"page": {"sise": "A4"}}, "options.page.sise"),
    ({"pagesize": "A4"}, "options.pagesize"),
    ({"page": {"size": "A9"}}, "options.page.size"),
    ({"page": {"size": {"width_mm": 5, "height_mm": 100}}}, "options.page.size"),
    ({"page": {"size": {"width_mm": 100, "height_mm": 2001}}}, "options.page.size"),
    ({"page": {"orientation": "sideways"}}, "options.page.orientation"),
    ({"page": {"margins_mm": 201}}, "options.page.margins_mm"),
    ({"page": {"margins_mm": {"top": -1}}}, "options.page.margins_mm"),
    ({"page": {"margins_mm": {"inner": 3}}}, "options.page.margins_mm"),
    ({"page_ranges": "1-3,x"}, "options.page_ranges"),
    ({"page_ranges": "0"}, "options.page_ranges"),
    ({"page_ranges": "5-2"}, "options.page_ranges"),
    ({"page_ranges": ""}, "options.page_ranges"),
    ({"quality": "ultra"}, "options.quality"),
    ({"pdf_variant": "pdf/a-1a"}, "options.pdf_variant"),
    ({"document": {"title": "x" * 1001}}, "options.document.title"),
    ({"document": {"keywords": ["k"] * 51}}, "options.document.keywords"),
    ({"document": {"lang": "not a tag"}}, "options.document.lang"),
    ({"document": {"titel": "x"}}, "options.document.titel"),
    ({"attachments": [{"filename": "a.csv", "content_base64": "not base64!"}]}, "options.attachments[0].content_base64"),
    ({"attachments": [{"filename": "../..", "content_base64": "YQ=="}]}, "options.attachments[0].filename"),
    ({"attachments": [{"filename": "a.csv", "content_base64": "YQ==", "mime_type": "text csv"}]},
     "options.attachments[0].mime_type"),
    ({"attachments": [{"filename": "a", "content_base64": "YQ=="}] * 21}, "options.attachments"),
    ({"attachments": [{"filename": "a.csv", "content_base64": "YQ==", "size": 1}]}, "options.attachments[0].size"),
    ({"pdf_variant": "pdf/a-2b", "attachments": [{"filename": "a.csv", "content_base64": "YQ=="}]}, "options.attachments"),
    ({"watermark": {"text": ""}}, "options.watermark.text"),
    ({"watermark": {"text": "x" * 101}}, "options.watermark.text"),
    ({"watermark": {"text": "D", "opacity": 1.5}}, "options.watermark.opacity"),
    ({"pdf_variant": "pdf/a-1b", "watermark": {"text": "D"}}, "options.watermark"),
    ({"encryption": {"user_password": "u"}}, "options.encryption.owner_password"),
    ({"encryption": {"owner_password": ""}}, "options.encryption.owner_password"),
    ({"encryption": {"owner_password": "o" * 129}}, "options.encryption.owner_password"),
    ({"encryption": {"owner_password": "same", "user_password": "same"}}, "options.encryption.user_password"),
    ({"encryption": {"owner_password": "o", "permissions": ["print", "fly"]}}, "options.encryption.permissions[1]"),
    ({"pdf_variant": "pdf/a-3b", "encryption": {"owner_password": "o"}}, "options.encryption"),
])
def test_bad_options_are_refused_naming_the_field(no_workers: None, client: FlaskClient, auth: AuthActions,
                                                  options: dict, field: str) -> None:
    """Every bad or unknown option is a 422 validation_error naming its field, and nothing is enqueued."""
    response = client.post("/v1/jobs", json={"html": "<p>x</p>", "options": options}, headers=auth.headers())
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["code"] == "validation_error"
    assert field in [e["field"] for e in response.json["errors"]], response.json["errors"]
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def test_bad_options_in_a_batch_name_the_item(no_workers: None, client: FlaskClient, auth: AuthActions) -> None:
    """A batch item's bad option is named with its index and nothing of the batch is enqueued."""
    body = {"jobs": [{"html": "a"}, {"html": "b", "options": {"quality": "best"}}]}
    response = client.post("/v1/jobs/batch", json=body, headers=auth.headers())
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "jobs[1].options.quality"
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def test_openapi_documents_the_options_and_refuses_unknown_keys(client: FlaskClient) -> None:
    """/openapi.json carries the same models: options on the job request, closed to unknown keys."""
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert "options" in schemas["JobRequest"]["properties"]
    for name in ("RenderOptions", "PageOptions", "Encryption", "AttachmentSpec", "Watermark", "DocumentInfo"):
        assert schemas[name]["additionalProperties"] is False, name
    assert set(schemas["RenderOptions"]["properties"]) == {"page", "page_ranges", "quality", "pdf_variant", "document",
                                                           "attachments", "watermark", "encryption", "einvoice"}
    assert schemas["EInvoiceOptions"]["additionalProperties"] is False
    assert "conformance" in schemas["JobResult"]["properties"]


def keys_holding(redis: Redis, needle: str) -> list[bytes]:
    """Every key whose value (string, hash, list, set or zset, raw bytes) contains `needle`."""
    found = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        values: list[bytes] = {
            b"string": lambda: [redis.get(key) or b""],
            b"hash": lambda: [b for pair in redis.hgetall(key).items() for b in pair],
            b"list": lambda: redis.lrange(key, 0, -1),
            b"set": lambda: list(redis.smembers(key)),
            b"zset": lambda: redis.zrange(key, 0, -1),
        }.get(kind, lambda: [])()
        if any(needle.encode() in v for v in values):
            found.append(key)
    return found


def test_passwords_wait_apart_from_the_job_and_go_on_cancel(no_workers: None, client: FlaskClient, jobs: JobsClient,
                                                            auth: AuthActions, redis: Redis) -> None:
    """A queued encrypted job keeps its passwords in one secrets key only (not its hash, kwargs or meta); cancel deletes it."""
    job = jobs.submit({"html": "<p>x</p>", "options": ENCRYPTED})
    assert job["options"] == {"encryption": {"permissions": ["print"]}}
    for password in (OWNER, USER):
        assert keys_holding(redis, password) == [keys.job_secrets(job["id"]).encode()]
    listed = client.get("/v1/jobs", headers=auth.headers()).get_data(as_text=True)
    assert OWNER not in listed and USER not in listed
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth.headers()).status_code == 200
    assert keys_holding(redis, OWNER) == keys_holding(redis, USER) == []


def test_schedules_refuse_encryption_and_keep_other_options(no_workers: None, client: FlaskClient,
                                                            auth: AuthActions, redis: Redis) -> None:
    """A schedule may not hold passwords (422 job.options.encryption); other options are stored and echoed."""
    body = {"cron": "0 9 * * 1", "job": {"html": "<p>x</p>", "options": ENCRYPTED}}
    refused = client.post("/v1/schedules", json=body, headers=auth.headers())
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "job.options.encryption"
    assert keys_holding(redis, OWNER) == []
    options = {"page": {"size": "A5"}, "watermark": {"text": "WEEKLY"}}
    created = client.post("/v1/schedules", json={"cron": "0 9 * * 1", "job": {"html": "<p>x</p>", "options": options}},
                          headers=auth.headers())
    assert created.status_code == 201
    assert created.json["job"]["options"]["page"] == {"size": "A5"}
    assert created.json["job"]["options"]["watermark"]["text"] == "WEEKLY"


def test_a_scheduled_run_renders_with_the_schedules_options(no_workers: None, client: FlaskClient, auth: AuthActions,
                                                            redis: Redis, settings: Settings) -> None:
    """Each run of a schedule is a job carrying the schedule's options (echoed, and in the render's kwargs)."""
    options = {"page": {"size": "A5"}, "watermark": {"text": "WEEKLY"}, "pdf_variant": "pdf/ua-1"}
    schedule = client.post("/v1/schedules", json={"cron": "* * * * *", "job": {"html": "<p>x</p>", "options": options}},
                           headers=auth.headers()).json
    make_due(redis, schedule["id"], 1)
    [job_id] = schedules.fire_due(redis, settings)
    job = JobsClient(client, auth).get(job_id)
    assert job["options"]["page"] == {"size": "A5"} and job["options"]["pdf_variant"] == "pdf/ua-1"
    assert Job.fetch(job_id, connection=redis).kwargs["options"]["watermark"]["text"] == "WEEKLY"


def test_options_are_part_of_the_idempotency_comparison(no_workers: None, client: FlaskClient,
                                                        auth: AuthActions) -> None:
    """The same key with other options is a conflict; with the same options it returns the first job."""
    headers = {**auth.headers(), "Idempotency-Key": "export-42"}
    body = {"html": "<p>x</p>", "options": {"page_ranges": "1"}}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202 and first.json["id"] == again.json["id"]
    other = client.post("/v1/jobs", json={**body, "options": {"page_ranges": "2"}}, headers=headers)
    assert other.status_code == 422 and other.json["code"] == "idempotency_conflict"


@pytest.mark.usefixtures("workers")
def test_encrypted_pdfua_job_end_to_end(jobs: JobsClient, client: FlaskClient, auth: AuthActions, redis: Redis,
                                        workers: list[WorkerProcess]) -> None:
    """A job with every option completes; the resource echoes them without passwords or file content; the PDF
    opens with the user password; no Redis key and no worker log holds a password afterwards."""
    options: dict[str, Any] = {
        "page": {"size": "A5", "orientation": "landscape"}, "page_ranges": "2-", "quality": "low",
        "pdf_variant": "pdf/ua-1", "document": {"title": "Quarterly", "author": "Acme Ltd", "lang": "en"},
        "attachments": [{"filename": "lines.csv", "content_base64": base64.b64encode(CSV).decode(),
                         "mime_type": "text/csv"}],
        "watermark": {"text": "CONFIDENTIAL"}, **ENCRYPTED}
    job = jobs.submit({"html": DOC, "options": options})
    done = jobs.wait(job["id"])
    assert done["status"] == "completed", done
    echoed = done["options"]
    assert "owner_password" not in str(echoed) and OWNER not in str(done) and USER not in str(done)
    assert echoed["encryption"] == {"permissions": ["print"]}
    assert echoed["attachments"][0]["bytes"] == len(CSV) and "content_base64" not in echoed["attachments"][0]
    assert echoed["page"] == options["page"] and echoed["watermark"]["text"] == "CONFIDENTIAL"
    result = done["result"]
    assert result["pages"] == 2 and result["pdf_variant"] == "pdf/ua-1"
    assert result["conformance"]["passed"] is True and result["conformance"]["variant"] == "pdf/ua-1"
    assert {c["name"] for c in result["conformance"]["checks"]} >= {"tagged", "language", "title", "fonts_embedded"}
    pdf = client.get(f"/v1/jobs/{job['id']}/pdf", headers=auth.headers()).data
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(pdf))
    with pikepdf.open(io.BytesIO(pdf), password=USER) as doc:
        assert len(doc.pages) == 2 and doc.encryption.bits == 256
        assert str(doc.docinfo["/Title"]) == "Quarterly"
        assert doc.attachments["lines.csv"].get_file().read_bytes() == CSV
        width, height = (float(v) for v in doc.pages[0].MediaBox[2:])
        assert round(width / 72 * 25.4) == 210 and round(height / 72 * 25.4) == 148
    assert keys_holding(redis, OWNER) == keys_holding(redis, USER) == []
    for worker in workers:
        log = worker.log_path.read_text()
        assert OWNER not in log and USER not in log


@pytest.mark.usefixtures("workers")
def test_page_range_past_the_end_fails_at_once_and_an_encrypted_failure_cannot_be_retried(
        jobs: JobsClient, client: FlaskClient, auth: AuthActions, redis: Redis) -> None:
    """page_ranges keeping no page fails with page_range on the first attempt; the passwords are gone, so retry is 409."""
    job = jobs.submit({"html": "<p>one page</p>", "max_retries": 3, "options": {"page_ranges": "2-", **ENCRYPTED}})
    failed = jobs.wait(job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "page_range" and failed["attempts"] == 1
    assert keys_holding(redis, OWNER) == []
    retry = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth.headers())
    assert retry.status_code == 409 and retry.json["code"] == "not_retryable"
    plain = jobs.submit({"html": "<p>one page</p>", "options": {"page_ranges": "2-"}})
    assert jobs.wait(plain["id"])["error"]["code"] == "page_range"
    assert client.post(f"/v1/jobs/{plain['id']}/retry", headers=auth.headers()).status_code == 202


@pytest.mark.usefixtures("workers")
def test_batch_items_and_named_templates_take_their_own_options(jobs: JobsClient, client: FlaskClient,
                                                                auth: AuthActions) -> None:
    """Each batch item renders with its own options, a named template with PDF/A-3b among them."""
    templates = {t["name"]: t["sample_data"] for t in client.get("/v1/templates", headers=auth.headers()).json["templates"]}
    body = {"jobs": [
        {"template": "invoice.html", "data": templates["invoice.html"], "options": {"pdf_variant": "pdf/a-3b"}},
        {"html": DOC, "options": {"page_ranges": "1,3", "page": {"size": "Letter"}}},
    ]}
    created = client.post("/v1/jobs/batch", json=body, headers=auth.headers())
    assert created.status_code == 202
    invoice, doc = (jobs.wait(j["id"]) for j in created.json["jobs"])
    assert invoice["status"] == doc["status"] == "completed"
    assert invoice["result"]["conformance"]["passed"] and invoice["result"]["pdf_variant"] == "pdf/a-3b"
    assert doc["result"]["pages"] == 2 and "conformance" not in doc["result"]
    with pikepdf.open(io.BytesIO(client.get(doc["links"]["pdf"]).data)) as pdf:
        assert [round(float(v)) for v in pdf.pages[0].MediaBox] == [0, 0, 612, 792]
        assert len(pdf.pages) == 2


def test_dashboard_does_not_requeue_an_ended_encrypted_job(dashboard: FlaskClient, env: dict[str, str],
                                                           auth: AuthActions, spawn_worker, redis: Redis) -> None:
    """The dashboard refuses to requeue an encrypted job whose passwords went when it failed, and "requeue all" skips
    it; its job page shows no password."""
    jobs = JobsClient(dashboard, auth)
    encrypted = jobs.submit({"html": "{{ nope }}", "priority": "high", "options": ENCRYPTED})["id"]
    plain = jobs.submit({"html": "{{ nope }}", "priority": "high"})["id"]
    worker = spawn_worker(env)
    assert jobs.wait(encrypted)["status"] == jobs.wait(plain)["status"] == "failed"
    worker.stop()
    assert keys_holding(redis, OWNER) == []
    for route in (f"/admin/rq/0/view/job/{encrypted}", f"/admin/rq/0/data/job/{encrypted}.json"):
        page = dashboard.get(route, headers=DASHBOARD)
        assert page.status_code == 200, route
        assert OWNER not in page.get_data(as_text=True) and USER not in page.get_data(as_text=True)
    refused = dashboard.post(f"/admin/rq/job/{encrypted}/requeue", headers=DASHBOARD)
    assert refused.status_code == 409 and refused.json["code"] == "not_retryable"
    own_page = {**DASHBOARD, "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    assert dashboard.post("/admin/rq/requeue/high", headers=own_page).json == {"status": "OK", "count": 1}
    assert (jobs.get(encrypted)["status"], jobs.get(plain)["status"]) == ("failed", "queued")
