"""Storage for processes that share no disk: PDFs in Redis or in S3, whichever worker rendered them."""
from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image
from pypdf import PdfReader

from api import create_app
from shared.config import Settings
from shared.storage import CHUNK_BYTES, S3Storage
from tests.conftest import AuthActions, JobsClient
from tests.support import WorkerProcess, free_port

BUCKET = "pdfq-test"


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto in server mode) with one bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on the local server, with moto's dummy credentials."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


def noise_png(side: int) -> str:
    """A data: URI of an incompressible PNG, so the PDF embedding it is several stream chunks long."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_s3_storage_streams_the_object_in_chunks(s3_endpoint: str) -> None:
    """S3Storage.open reads the object body in CHUNK_BYTES pieces as it arrives, not all at once."""
    storage = S3Storage(s3_client(s3_endpoint), BUCKET, "unit", ttl_s=60)
    content = os.urandom(3 * CHUNK_BYTES + 5)
    storage.put("big1", content)
    pdf = storage.open("big1")
    assert pdf is not None
    chunks = list(pdf)
    pdf.close()
    assert b"".join(chunks) == content and [len(c) for c in chunks] == [CHUNK_BYTES] * 3 + [5]
    assert storage.open("missing") is None
    storage.delete("big1")


def test_s3_previews_live_beside_the_pdf_and_expire_with_it(s3_endpoint: str) -> None:
    """A file kept beside a PDF in S3 opens while the PDF is within retention, and goes when the PDF is deleted."""
    client = s3_client(s3_endpoint)
    storage = S3Storage(client, BUCKET, "unit", ttl_s=60)
    assert storage.put_beside("job9", "p1-w600.png", b"png") is False, "nothing is kept beside a missing PDF"
    storage.put("job9", b"%PDF-1.7")
    assert storage.put_beside("job9", "p1-w600.png", b"png") is True
    assert storage.open_beside("job9", "p1-w600.png") == b"png"
    assert storage.open_beside("job9", "p2-w600.png") is None
    past_retention = S3Storage(client, BUCKET, "unit", ttl_s=-1)
    assert past_retention.open_beside("job9", "p1-w600.png") is None
    assert past_retention.put_beside("job9", "p2-w600.png", b"png") is False
    storage.delete("job9")
    assert client.list_objects_v2(Bucket=BUCKET, Prefix="unit/job9.").get("KeyCount") == 0


def test_s3_storage_end_to_end(private_db: dict[str, str], s3_endpoint: str, auth: AuthActions,
                               spawn_worker: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    """With STORAGE_URL=s3://bucket/prefix the worker uploads and the API streams the same PDF back in chunks."""
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)  # boto3 in this (API) process reads them from the environment
    private_db.update(STORAGE_URL=f"s3://{BUCKET}/pdfs", S3_ENDPOINT_URL=s3_endpoint, **credentials)
    jobs = JobsClient(create_app(Settings.from_env(private_db)).test_client(), auth)
    spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": '<p>stored in S3: {{ ref }}</p><img src="{{ image }}">',
                                  "data": {"ref": "S3-REF-42", "image": noise_png(256)}})["id"])
    assert done["status"] == "completed", done
    response = jobs.client.get(done["links"]["pdf"], buffered=False)
    chunks = list(response.response)
    response.close()
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{done["id"]}.pdf"'
    assert response.headers["ETag"] == f'"{done["result"]["sha256"]}"'
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= CHUNK_BYTES
    content = b"".join(chunks)
    assert hashlib.sha256(content).hexdigest() == done["result"]["sha256"]
    assert response.headers["Content-Length"] == str(len(content))
    assert "S3-REF-42" in PdfReader(io.BytesIO(content)).pages[0].extract_text()
    s3 = s3_client(s3_endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pdfs/")["Contents"]]
    assert keys == [f"pdfs/{done['id']}.pdf"]
    s3.delete_object(Bucket=BUCKET, Key=keys[0])
    gone = jobs.client.get(done["links"]["pdf"])
    assert gone.status_code == 410 and gone.json["code"] == "expired"


def test_two_worker_hosts_without_shared_disk(private_db: dict[str, str], tmp_path: Path, auth: AuthActions,
                                              spawn_worker: Callable[..., WorkerProcess]) -> None:
    """Two workers in separate working directories, PDFs in Redis: every download works, both rendered some."""
    private_db["STORAGE_URL"] = private_db["REDIS_URL"]
    jobs = JobsClient(create_app(Settings.from_env(private_db)).test_client(), auth)
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
        spawn_worker(private_db, cwd=host)
    ids = [jobs.submit({"html": "<p>{% for i in range(300) %}{{ n }} {% endfor %}</p>", "data": {"n": f"DOC-{i}"}})["id"]
           for i in range(12)]
    renderers = set()
    for i, job_id in enumerate(ids):
        done = jobs.wait(job_id)
        assert done["status"] == "completed", done
        text = PdfReader(io.BytesIO(jobs.client.get(done["links"]["pdf"]).data)).pages[0].extract_text()
        assert f"DOC-{i}" in text
        renderers.add(jobs.client.application.extensions["pdfq"].connection.hget(f"rq:job:{job_id}", "worker_name"))
    assert len(renderers) == 2
    assert [p for host in hosts for p in host.rglob("*")] == [], "no files written on the worker hosts"
