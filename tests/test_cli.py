"""The `pdfq` command run as a subprocess against the real gunicorn API and real workers."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.conftest import TENANT_KEYS
from tests.support import ROOT, LiveServer

pytestmark = pytest.mark.usefixtures("workers", "redis")


def pdfq(server: LiveServer, *args: str, cwd: Path,
         api_key: str = TENANT_KEYS["acme"]) -> subprocess.CompletedProcess[str]:
    """The installed `pdfq` command, importing this checkout's `cli` package (PYTHONPATH)."""
    binary = shutil.which("pdfq", path=str(Path(ROOT / ".venv" / "bin"))) or "pdfq"
    env = {"PDFQ_URL": server.url, "PDFQ_API_KEY": api_key, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_submit_wait_downloads_a_valid_pdf(live_api: LiveServer, tmp_path: Path) -> None:
    """`pdfq submit invoice.html --data data.json --priority high --wait -o invoice.pdf` writes the PDF."""
    sample = json.loads((ROOT / "templates" / "invoice.json").read_text())["sample_data"]
    (tmp_path / "data.json").write_text(json.dumps({**sample, "invoice_number": "CLI-4242"}))
    result = pdfq(live_api, "submit", "invoice.html", "--data", "data.json", "--priority", "high", "--wait",
                  "-o", "invoice.pdf", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr and "invoice.pdf (1 page," in result.stderr
    redraws = result.stderr.splitlines()[0].split("\r")[1:]
    assert all(len(later) >= len(earlier) for earlier, later in zip(redraws, redraws[1:])), redraws
    reader = PdfReader(io.BytesIO((tmp_path / "invoice.pdf").read_bytes()))
    assert len(reader.pages) == 1 and "CLI-4242" in reader.pages[0].extract_text()


def test_local_html_file_is_sent_inline(live_api: LiveServer, tmp_path: Path) -> None:
    """A path to a local .html file renders that file's source."""
    (tmp_path / "hello.html").write_text("<h1>Hello {{ who }}</h1>")
    (tmp_path / "who.json").write_text('{"who": "from the CLI"}')
    result = pdfq(live_api, "submit", "hello.html", "--data", "who.json", "--wait", "-q", "-o", "out.pdf",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hello from the CLI" in PdfReader(str(tmp_path / "out.pdf")).pages[0].extract_text()


def test_failed_job_exits_non_zero_with_the_error(live_api: LiveServer, tmp_path: Path) -> None:
    """A job that fails makes `pdfq submit --wait` exit 1 and print the error code."""
    (tmp_path / "broken.html").write_text("<p>{{ missing_field }}</p>")
    result = pdfq(live_api, "submit", "broken.html", "--wait", cwd=tmp_path)
    assert result.returncode == 1
    assert "template_error" in result.stderr and "missing_field" in result.stderr


def test_refused_key_names_the_setting(live_api: LiveServer, tmp_path: Path) -> None:
    """A 401 tells the CLI user which environment variable holds the API key."""
    result = pdfq(live_api, "status", "x", cwd=tmp_path, api_key="not-a-key")
    assert result.returncode == 2 and "401 unauthorized" in result.stderr and "PDFQ_API_KEY" in result.stderr


def test_status_and_cancel(live_api: LiveServer, tmp_path: Path) -> None:
    """`pdfq status` prints the job; `pdfq cancel` of a finished job reports the 409 and exits 2."""
    submitted = pdfq(live_api, "submit", "letter.html", "--data", str(tmp_path / "none.json"), cwd=tmp_path)
    assert submitted.returncode == 2 and "none.json" in submitted.stderr
    (tmp_path / "d.json").write_text(json.dumps(json.loads((ROOT / "templates" / "letter.json").read_text())
                                                ["sample_data"]))
    job_id = json.loads(pdfq(live_api, "submit", "letter.html", "--data", "d.json", cwd=tmp_path).stdout)["id"]
    for _ in range(300):
        status = pdfq(live_api, "status", job_id, cwd=tmp_path)
        if json.loads(status.stdout)["status"] == "completed":
            break
    assert status.returncode == 0 and json.loads(status.stdout)["id"] == job_id
    unknown = pdfq(live_api, "status", "0" * 32, cwd=tmp_path)
    assert unknown.returncode == 2 and "not_found" in unknown.stderr
    finished = pdfq(live_api, "cancel", job_id, cwd=tmp_path)
    assert finished.returncode == 2 and "already_finished" in finished.stderr
