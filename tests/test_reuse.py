"""Result reuse, reproducible bytes and the render manifest, with real workers, Redis, storage and WeasyPrint."""
from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from flask.testing import FlaskClient
from weasyprint import __version__ as weasyprint_version

from shared.config import PROJECT_ROOT
from tests.conftest import AuthActions, JobsClient

TEMPLATES = PROJECT_ROOT / "templates"


def invoice(**changes: object) -> dict:
    """The built-in invoice with its sample data and a fresh invoice number, so no other test shares its inputs."""
    data = json.loads((TEMPLATES / "invoice.json").read_text())["sample_data"]
    return {"template": "invoice.html", "data": {**data, "invoice_number": f"INV-{uuid.uuid4().hex[:8]}"}, **changes}


def completed(jobs: JobsClient, body: dict, tenant: str = "acme") -> dict:
    job = jobs.wait(jobs.submit(body, tenant=tenant)["id"], tenant=tenant)
    assert job["status"] == "completed", job
    return job


def pdf_bytes(client: FlaskClient, auth: AuthActions, job_id: str, tenant: str = "acme") -> bytes:
    response = client.get(f"/v1/jobs/{job_id}/pdf", headers=auth.headers(tenant))
    assert response.status_code == 200
    return response.data


@pytest.mark.usefixtures("workers")
def test_identical_job_of_same_tenant_reuses_the_render(jobs: JobsClient, client: FlaskClient,
                                                        auth: AuthActions) -> None:
    """A second job with the same inputs (other filename and metadata) gets the first PDF's bytes and names it."""
    body = invoice()
    first = completed(jobs, body)
    second = completed(jobs, {**body, "filename": "copy.pdf", "metadata": {"run": 2}, "priority": "high"})
    assert second["result"]["reused_from"] == first["id"]
    assert first["result"].get("reused_from") is None
    assert second["result"]["sha256"] == first["result"]["sha256"]
    assert pdf_bytes(client, auth, second["id"]) == pdf_bytes(client, auth, first["id"])
    assert second["result"]["expires_at"] >= first["result"]["expires_at"]


@pytest.mark.usefixtures("workers")
def test_changed_data_renders_anew(jobs: JobsClient) -> None:
    """Inputs that differ only in data are not reused."""
    body = invoice()
    first = completed(jobs, body)
    second = completed(jobs, {**body, "data": {**body["data"], "tax_rate": 0.07}})
    assert second["result"].get("reused_from") is None
    assert second["result"]["sha256"] != first["result"]["sha256"]


@pytest.mark.usefixtures("workers")
def test_reuse_never_crosses_tenants_and_renders_are_reproducible(jobs: JobsClient) -> None:
    """Another tenant's identical job is rendered for it, not reused, and still has the same sha256."""
    body = invoice()
    mine = completed(jobs, body, tenant="acme")
    theirs = completed(jobs, body, tenant="globex")
    assert theirs["result"].get("reused_from") is None
    assert theirs["result"]["sha256"] == mine["result"]["sha256"]


@pytest.mark.usefixtures("workers")
@pytest.mark.parametrize("flag", [{"cache": False}, {"skip_cache": True}])
def test_cache_false_forces_a_render_with_equal_bytes(jobs: JobsClient, client: FlaskClient, auth: AuthActions,
                                                      flag: dict) -> None:
    """`"cache": false` (or `skip_cache`) renders again; two renders of the same inputs have equal sha256."""
    body = {"html": "<h1>{{ title }}</h1><p>{{ n }}</p>", "data": {"title": "Same", "n": uuid.uuid4().hex}}
    first = completed(jobs, body)
    second = completed(jobs, {**body, **flag})
    assert second["result"].get("reused_from") is None
    assert second["result"]["sha256"] == first["result"]["sha256"]
    assert hashlib.sha256(pdf_bytes(client, auth, second["id"])).hexdigest() == first["result"]["sha256"]


@pytest.mark.usefixtures("workers")
def test_reuse_never_serves_an_expired_file(jobs: JobsClient, app, client: FlaskClient, auth: AuthActions) -> None:
    """Once the first job's stored PDF is gone (retention purge), an identical job renders its own PDF."""
    from api.context import EXTENSION

    body = invoice()
    first = completed(jobs, body)
    app.extensions[EXTENSION].storage.delete(first["id"])
    assert client.get(f"/v1/jobs/{first['id']}/pdf", headers=auth.headers()).status_code == 410
    second = completed(jobs, body)
    assert second["result"].get("reused_from") is None
    assert hashlib.sha256(pdf_bytes(client, auth, second["id"])).hexdigest() == first["result"]["sha256"]
    third = completed(jobs, body)  # the fresh render is the one offered from now on
    assert third["result"]["reused_from"] == second["id"]


@pytest.mark.usefixtures("workers")
def test_manifest_names_what_the_pdf_was_made_from(jobs: JobsClient, client: FlaskClient, auth: AuthActions) -> None:
    """The manifest lists the template's and every loaded asset's sha256, the fonts, engine versions and the PDF's hash."""
    job = completed(jobs, invoice())
    response = client.get(f"/v1/jobs/{job['id']}/manifest", headers=auth.headers())
    assert response.status_code == 200
    manifest = response.json
    assert set(manifest) == {"job_id", "inputs_sha256", "template", "assets", "fonts", "engine", "options",
                             "pdf_sha256", "rendered_at"}
    assert manifest["job_id"] == job["id"] and manifest["pdf_sha256"] == job["result"]["sha256"]
    assert manifest["template"] == {"name": "invoice.html",
                                    "sha256": hashlib.sha256((TEMPLATES / "invoice.html").read_bytes()).hexdigest()}
    assets = {a["url"].rsplit("/templates/", 1)[-1]: a["sha256"] for a in manifest["assets"]}
    for name in ("assets/base.css", "assets/logo.svg", "assets/fonts/Inter-Regular.otf"):
        assert assets[name] == hashlib.sha256((TEMPLATES / name).read_bytes()).hexdigest(), name
    assert manifest["fonts"] and all(f["family"] == "Inter" and len(f["sha256"]) == 64 for f in manifest["fonts"])
    assert manifest["engine"]["weasyprint"] == weasyprint_version and manifest["engine"]["python"].startswith("3.")
    assert len(manifest["inputs_sha256"]) == 64 and manifest["rendered_at"].endswith("Z")
    assert client.get(f"/v1/jobs/{job['id']}/manifest", headers=auth.headers("globex")).status_code == 404


@pytest.mark.usefixtures("workers")
def test_reused_job_has_its_own_manifest_of_the_same_render(jobs: JobsClient, client: FlaskClient,
                                                            auth: AuthActions) -> None:
    """A reused job's manifest is the first render's record under its own job id."""
    body = invoice()
    first = completed(jobs, body)
    second = completed(jobs, body)
    one, two = (client.get(f"/v1/jobs/{j['id']}/manifest", headers=auth.headers()).json for j in (first, second))
    assert two["job_id"] == second["id"]
    assert {k: v for k, v in two.items() if k != "job_id"} == {k: v for k, v in one.items() if k != "job_id"}


def test_manifest_before_completion_is_not_ready(no_workers: None, jobs: JobsClient, client: FlaskClient,
                                                 auth: AuthActions) -> None:
    """A queued job's manifest answers 409 not_ready with the job's status."""
    job = jobs.submit(invoice())
    response = client.get(f"/v1/jobs/{job['id']}/manifest", headers=auth.headers())
    assert response.status_code == 409
    assert response.json["code"] == "not_ready" and response.json["job_status"] == "queued"
