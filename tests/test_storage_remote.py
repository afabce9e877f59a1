"""Storage for processes that share no disk: PDFs in Redis or in S3, whichever worker rendered them."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pypdf import PdfReader

from api import create_app
from shared.config import Settings
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
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def test_s3_storage_end_to_end(private_db: dict[str, str], s3_endpoint: str, auth: AuthActions,
                               spawn_worker: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    """With STORAGE_URL=s3://bucket/prefix the worker uploads and the API downloads the same PDF."""
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)  # boto3 in this (API) process reads them from the environment
    private_db.update(STORAGE_URL=f"s3://{BUCKET}/pdfs", S3_ENDPOINT_URL=s3_endpoint, **credentials)
    jobs = JobsClient(create_app(Settings.from_env(private_db)).test_client(), auth)
    spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": "<p>stored in S3: {{ ref }}</p>", "data": {"ref": "S3-REF-42"}})["id"])
    assert done["status"] == "completed", done
    response = jobs.client.get(done["links"]["pdf"])
    assert response.status_code == 200
    assert "S3-REF-42" in PdfReader(io.BytesIO(response.data)).pages[0].extract_text()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
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
