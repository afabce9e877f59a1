"""PNG previews: job pages (first request renders, storage keeps them beside the PDF) and template page 1."""
from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path
from typing import Callable

import pytest
from flask.testing import FlaskClient
from PIL import Image
from redis import Redis
from redis.exceptions import RedisError

from api import create_app
from shared import keys
from shared.config import Settings
from shared.previews import render_png
from shared.storage import MAX_FILES_BESIDE_PDF, FileStorage, RedisStorage
from tests.conftest import AuthActions, JobsClient
from tests.support import WorkerProcess, wait_until

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FOUR_PAGES = {"html": "{% for n in range(4) %}<h1 style='break-before: page'>Page {{ n + 1 }}</h1>{% endfor %}"}


def png_size(content: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking its signature."""
    assert content[:8] == PNG_SIGNATURE
    return struct.unpack(">II", content[16:24])


def ink(content: bytes) -> float:
    """Share of pixels that are not white: a blank render has none."""
    image = Image.open(io.BytesIO(content)).convert("L")
    return sum(image.histogram()[:200]) / (image.width * image.height)


@pytest.mark.usefixtures("workers")
def test_job_preview_is_the_page_asked_for_at_the_width_asked(jobs: JobsClient, client: FlaskClient,
                                                              settings: Settings) -> None:
    """links.preview opens without a key; page and width pick the page and the PNG's exact width."""
    done = jobs.wait(jobs.submit(FOUR_PAGES)["id"])
    assert done["status"] == "completed" and done["result"]["pages"] == 4
    first = client.get(done["links"]["preview"])
    assert first.status_code == 200 and first.mimetype == "image/png"
    assert png_size(first.data)[0] == 600 and ink(first.data) > 0.001
    third = client.get(f"{done['links']['preview']}&page=3&width=321")
    width, height = png_size(third.data)
    assert (width, abs(height - round(321 * 297 / 210)) <= 1) == (321, True)
    assert third.data != client.get(f"{done['links']['preview']}&page=2&width=321").data
    stored = Path(settings.storage_url.removeprefix("file://")) / done["id"][:2]
    pdf_mtime = (stored / f"{done['id']}.pdf").stat().st_mtime
    assert (stored / f"{done['id']}.p3-w321.png").stat().st_mtime == pdf_mtime, "expires with the PDF"


@pytest.mark.usefixtures("workers")
def test_cached_preview_is_served_from_storage_and_by_etag(jobs: JobsClient, client: FlaskClient,
                                                           auth: AuthActions) -> None:
    """The second request reads the kept PNG (the PDF is not needed), and If-None-Match answers 304."""
    done = jobs.wait(jobs.submit({"html": "<h1>kept</h1>"})["id"])
    url = f"/v1/jobs/{done['id']}/preview.png?width=200"
    first = client.get(url, headers=auth.headers())
    storage = client.application.extensions["pdfq"].storage
    assert storage.open_beside(done["id"], "p1-w200.png") == first.data
    again = client.get(url, headers={**auth.headers(), "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    storage.delete(done["id"])
    assert storage.open_beside(done["id"], "p1-w200.png") is None, "deleting the PDF deletes its previews"
    assert client.get(url, headers=auth.headers()).json["code"] == "expired"


@pytest.mark.usefixtures("workers")
def test_a_store_that_cannot_keep_the_preview_still_serves_it(jobs: JobsClient, client: FlaskClient,
                                                              auth: AuthActions, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Keeping the PNG is an optimisation: when the store refuses, the request still gets its preview."""
    done = jobs.wait(jobs.submit({"html": "<h1>unkept</h1>"})["id"])
    storage = client.application.extensions["pdfq"].storage

    def refuse(job_id: str, name: str, content: bytes) -> bool:
        raise RedisError("store down")

    monkeypatch.setattr(storage, "put_beside", refuse)
    response = client.get(f"/v1/jobs/{done['id']}/preview.png", headers=auth.headers())
    assert response.status_code == 200 and png_size(response.data)[0] == 600
    assert [r for r in caplog.records if r.getMessage() == "preview not kept"]


@pytest.mark.usefixtures("workers")
@pytest.mark.parametrize("query, field", [("page=5", "page"), ("page=0", "page"), ("page=x", "page"),
                                          ("width=49", "width"), ("width=2001", "width"), ("width=%C2%B2", "width")])
def test_bad_page_or_width_is_422_naming_the_field(jobs: JobsClient, client: FlaskClient, auth: AuthActions,
                                                   query: str, field: str) -> None:
    """A page past the end or out of range, or a width outside 50..2000, is a 422 naming that parameter."""
    done = jobs.wait(jobs.submit(FOUR_PAGES)["id"])
    response = client.get(f"/v1/jobs/{done['id']}/preview.png?{query}", headers=auth.headers())
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert response.json["code"] == "validation_error" and response.json["errors"][0]["field"] == field


@pytest.mark.usefixtures("workers")
def test_preview_is_the_tenants_own_and_needs_its_own_token(jobs: JobsClient, client: FlaskClient,
                                                            auth: AuthActions) -> None:
    """Another tenant gets 404; no key, a bad token or the PDF link's token gets 401."""
    done = jobs.wait(jobs.submit({"html": "<p>mine</p>"})["id"])
    url = f"/v1/jobs/{done['id']}/preview.png"
    assert client.get(url, headers=auth.headers("globex")).json["code"] == "not_found"
    pdf_token = done["links"]["pdf"].split("token=")[1]
    for attempt in (url, f"{url}?token=1.abc", f"{url}?token={pdf_token}"):
        response = client.get(attempt)
        assert response.status_code == 401 and response.json["code"] == "unauthorized", attempt


def test_preview_before_completion_is_not_ready(no_workers: None, jobs: JobsClient, client: FlaskClient,
                                                auth: AuthActions) -> None:
    """A queued job's preview is 409 not_ready with its status."""
    job = jobs.submit({"html": "<p>later</p>"})
    response = client.get(job["links"]["preview"])
    assert response.status_code == 409 and response.json["code"] == "not_ready"
    assert response.json["job_status"] == "queued"


def test_previews_with_redis_storage_expire_with_the_pdf(private_db: dict[str, str], auth: AuthActions,
                                                         spawn_worker: Callable[..., WorkerProcess]) -> None:
    """With PDFs in Redis the preview lives in Redis too, with the PDF's TTL; after retention it is 410."""
    private_db.update(STORAGE_URL=private_db["REDIS_URL"], RESULT_TTL_S="3")
    client = create_app(Settings.from_env(private_db)).test_client()
    jobs = JobsClient(client, auth)
    spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": "<h1>in redis</h1>"})["id"])
    preview = client.get(f"{done['links']['preview']}&width=120")
    assert png_size(preview.data)[0] == 120
    connection: Redis = client.application.extensions["pdfq"].connection
    pdf_ttl, preview_ttl = connection.pttl(f"pdfq:pdf:{done['id']}"), connection.pttl(f"pdfq:pdf:{done['id']}:beside")
    assert preview_ttl > 0 and abs(pdf_ttl - preview_ttl) < 50, "the preview expires when the PDF does"
    url = f"/v1/jobs/{done['id']}/preview.png"
    wait_until(lambda: client.get(url, headers=auth.headers()).status_code == 410, timeout=20, interval=0.2)
    assert not connection.exists(f"pdfq:pdf:{done['id']}:beside")


def test_file_previews_expire_and_are_purged_with_the_pdf(tmp_path: Path) -> None:
    """A file kept beside a PDF takes its age: past retention neither opens, and one purge removes both."""
    storage = FileStorage(tmp_path, ttl_s=60)
    assert storage.put_beside("job1", "p1-w600.png", b"png") is False, "nothing is kept beside a missing PDF"
    storage.put("job1", b"%PDF-1.7")
    pdf = tmp_path / "jo" / "job1.pdf"
    old = time.time() - 30
    os.utime(pdf, (old, old))
    assert storage.put_beside("job1", "p1-w600.png", b"png") and storage.open_beside("job1", "p1-w600.png") == b"png"
    os.utime(pdf, (old - 60, old - 60))
    os.utime(tmp_path / "jo" / "job1.p1-w600.png", (old - 60, old - 60))
    assert storage.open_beside("job1", "p1-w600.png") is None
    assert storage.purge_expired() == 2 and list(tmp_path.rglob("*.*")) == []


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_previews_kept_per_job_are_capped(kind: str, tmp_path: Path, redis: Redis) -> None:
    """Past MAX_FILES_BESIDE_PDF a new preview is not kept (it is rendered again on request), so one job
    cannot fill the store."""
    storage = FileStorage(tmp_path, ttl_s=60) if kind == "file" else RedisStorage(redis, ttl_s=60)
    storage.put("job1", b"%PDF-1.7")
    kept = [storage.put_beside("job1", f"p{i}-w600.png", b"png") for i in range(MAX_FILES_BESIDE_PDF + 1)]
    assert kept == [True] * MAX_FILES_BESIDE_PDF + [False]
    assert storage.open_beside("job1", f"p{MAX_FILES_BESIDE_PDF}-w600.png") is None


@pytest.mark.usefixtures("workers")
def test_template_preview_is_page_one_with_sample_data(client: FlaskClient, auth: AuthActions) -> None:
    """Workers render each template's preview at start-up; the API serves it as a 600 px PNG with ink on it."""
    for name in client.get("/v1/templates", headers=auth.headers()).json["templates"]:
        response = client.get(f"/v1/templates/{name['name']}/preview.png", headers=auth.headers())
        assert response.status_code == 200 and png_size(response.data)[0] == 600
        assert ink(response.data) > 0.001, name["name"]  # a title page has little ink; a blank one has none
    assert client.get("/v1/templates/nope.html/preview.png", headers=auth.headers()).json["code"] == "not_found"
    assert client.get("/v1/templates/invoice.html/preview.png").status_code == 401


def test_template_preview_before_any_worker_started_is_503(no_workers: None, redis: Redis, client: FlaskClient,
                                                            auth: AuthActions) -> None:
    """Without a worker having rendered it, the template preview is 503 with Retry-After, never a render in the API."""
    redis.delete(keys.template_preview("invoice.html"))  # kept by the cleaning: a worker started earlier wrote it
    response = client.get("/v1/templates/invoice.html/preview.png", headers=auth.headers())
    assert response.status_code == 503 and response.json["code"] == "preview_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_rasteriser_keeps_the_aspect_ratio_and_refuses_pages_past_the_end(tmp_path: Path) -> None:
    """render_png on a US Letter page: exact width, Letter's ratio; page 2 of 1 raises."""
    from weasyprint import HTML

    pdf = HTML(string="<style>@page { size: Letter }</style><p>letter</p>").write_pdf()
    width, height = png_size(render_png(pdf, 1, 850))
    assert width == 850 and abs(height - round(850 * 11 / 8.5)) <= 1
    with pytest.raises(ValueError, match="1 page"):
        render_png(pdf, 2, 600)
