"""`engine: chromium` end to end: rendered by the workers' warm browser, the same sandbox and options as WeasyPrint,
what it cannot honour refused at submit, and a killed browser ending in a retried job."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
from pathlib import Path
from typing import Callable, Iterator

import pikepdf
import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from tests.browser import chromium_path
from tests.conftest import AuthActions, JobsClient
from tests.support import Honeypot, WorkerProcess, wait_until
from tests.test_security import CSS_VECTORS, HTML_VECTORS, assert_nothing_leaked, attack_html, fill
from worker.browser_service import BrowserService
from worker.chromium_render import ChromiumRenderer
from worker.render import Renderer

INVOICE = json.loads((PROJECT_ROOT / "templates" / "invoice.json").read_text())["sample_data"]
BOOK = json.loads((PROJECT_ROOT / "templates" / "book.json").read_text())["sample_data"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[ChromiumRenderer]:
    templates = PROJECT_ROOT / "templates"
    browser = BrowserService(chromium_path(), templates, frozenset({"localhost"}))
    browser.start()
    yield ChromiumRenderer(Renderer(templates, allowed_asset_hosts=frozenset({"localhost"})), browser)
    browser.stop()


def pdf_text(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


@pytest.mark.parametrize(("markup", "origin"), HTML_VECTORS.values(), ids=HTML_VECTORS.keys())
def test_each_html_vector_is_refused_by_chromium_too(chromium: ChromiumRenderer, secret_file: Path,
                                                   honeypot: Honeypot, markup: str, origin: str) -> None:
    """WeasyPrint's sandbox suite, rendered by Chromium: nothing connects to the honeypot, nothing leaks."""
    pdf = chromium.render(template=None, html="<p>visible text</p>" + fill(markup, secret_file, honeypot), data={})
    assert_nothing_leaked(pdf.content, secret_file, honeypot)


@pytest.mark.parametrize(("markup", "origin"), CSS_VECTORS.values(), ids=CSS_VECTORS.keys())
def test_each_css_vector_is_refused_by_chromium_too(chromium: ChromiumRenderer, secret_file: Path,
                                                  honeypot: Honeypot, markup: str, origin: str) -> None:
    """The job's own stylesheet cannot load from loopback or disk through Chromium either."""
    pdf = chromium.render(template=None, html="<p>visible text</p>", data={}, css=fill(markup, secret_file, honeypot))
    assert_nothing_leaked(pdf.content, secret_file, honeypot)


def test_options_are_applied_to_the_browsers_pdf(chromium: ChromiumRenderer) -> None:
    """Page size and orientation, page ranges, metadata, attachments, watermark and encryption with Chromium."""
    from shared.options import RenderOptions

    csv = b"sku,qty\nA-1,3\n"
    options = RenderOptions.model_validate({
        "page": {"size": "A5", "orientation": "landscape", "margins_mm": 10},
        "page_ranges": "2-",
        "document": {"title": "Three pages", "author": "Acme Ltd", "lang": "en"},
        "attachments": [{"filename": "lines.csv", "content_base64": base64.b64encode(csv).decode(),
                         "mime_type": "text/csv"}],
        "watermark": {"text": "DRAFT"},
        "encryption": {"owner_password": "owner-secret", "user_password": "open-me", "permissions": ["print"]},
    })
    html = "<h1>Page 1</h1>" + "".join(f"<h1 style='break-before: page'>Page {n}</h1>" for n in (2, 3))
    rendered = chromium.render(template=None, html=html, data={}, options=options)
    assert rendered.pages == 2
    with pikepdf.open(io.BytesIO(rendered.content), password="open-me") as pdf:
        assert pdf.is_encrypted and not pdf.allow.modify_other and pdf.allow.print_highres
        width, height = (float(v) for v in pdf.pages[0].mediabox[2:])
        assert abs(width - 595.3) < 2 and abs(height - 419.5) < 2  # A5 landscape, in points
        assert str(pdf.docinfo["/Title"]) == "Three pages" and str(pdf.docinfo["/Author"]) == "Acme Ltd"
        assert str(pdf.Root.Lang) == "en"
        assert pdf.attachments["lines.csv"].get_file().read_bytes() == csv
        out = io.BytesIO()
        pdf.save(out)
    texts = pdf_text(out.getvalue())
    assert ["Page 2" in texts[0], "Page 3" in texts[1]] == [True, True]
    assert all("DRAFT" in text for text in texts)


def test_same_inputs_give_the_same_bytes(chromium: ChromiumRenderer) -> None:
    """Without encryption, two Chromium renders of the same inputs are byte for byte equal, also when a new
    browser (whose DOM node numbers, and so structure ids, start elsewhere) prints the second."""
    first = chromium.render(template="invoice.html", html=None, data=INVOICE)
    second = chromium.render(template="invoice.html", html=None, data=INVOICE)
    chromium.browser.kill()
    chromium.browser.ensure_running()
    chromium.render(template="book.html", html=None, data=BOOK)  # moves the new browser's node counter on
    after_restart = chromium.render(template="invoice.html", html=None, data=INVOICE)
    assert first.sha256 == second.sha256 == after_restart.sha256


def test_invoice_renders_with_each_engine(workers: list[WorkerProcess], jobs: JobsClient,
                                          client: FlaskClient) -> None:
    """The invoice completes with weasyprint and with chromium; both PDFs carry its number; result names the engine."""
    done = {engine: jobs.wait(jobs.submit({"template": "invoice.html", "data": INVOICE, "engine": engine})["id"])
            for engine in ("weasyprint", "chromium")}
    for engine, job in done.items():
        assert job["status"] == "completed", job
        assert job["engine"] == engine and job["result"]["engine"]["name"] == engine
        texts = pdf_text(client.get(job["links"]["pdf"]).data)
        assert len(texts) == job["result"]["pages"] == 1
        assert INVOICE["invoice_number"] in texts[0]
    assert done["chromium"]["result"]["engine"]["version"].split(".")[0].isdigit()


def test_javascript_is_off_unless_the_job_asks(workers: list[WorkerProcess], jobs: JobsClient,
                                               client: FlaskClient) -> None:
    """A script's output is absent by default and present with javascript: true; wait_for holds the print."""
    html = ("<p>static</p><script>setTimeout(() => document.body.insertAdjacentHTML('beforeend', "
            "'<p id=late>SCRIPTED</p>'), 200)</script>")
    off = jobs.wait(jobs.submit({"html": html, "engine": "chromium"})["id"])
    on = jobs.wait(jobs.submit({"html": html, "engine": "chromium", "javascript": True,
                                "wait_for": {"selector": "#late"}})["id"])
    assert "SCRIPTED" not in pdf_text(client.get(off["links"]["pdf"]).data)[0]
    assert "SCRIPTED" in pdf_text(client.get(on["links"]["pdf"]).data)[0]


@pytest.mark.parametrize(("body", "field"), [
    ({"javascript": True}, "javascript"),
    ({"wait_for": {"ms": 10}}, "wait_for"),
    ({"engine": "chromium", "options": {"pdf_variant": "pdf/a-3b"}}, "options.pdf_variant"),
    ({"engine": "chromium", "options": {"quality": "low"}}, "options.quality"),
    ({"engine": "chromium", "wait_for": {"ms": 20000}}, "wait_for.ms"),
    ({"engine": "chromium", "wait_for": {}}, "wait_for"),
    ({"engine": "gecko"}, "engine"),
    ({"engine": "chromium", "options": {"einvoice": {"profile": "en16931"}}, "template": "invoice.html", "html": None,
      "data": INVOICE},
     "options.einvoice"),
])
def test_what_an_engine_cannot_honour_is_refused(no_workers: None, client: FlaskClient, auth: AuthActions,
                                                body: dict[str, object], field: str) -> None:
    """422 naming the field: scripts with WeasyPrint, PDF/A or image quality with Chromium, bad waits and engines."""
    response = client.post("/v1/jobs", json={"html": "<p>x</p>", **body}, headers=auth.headers())
    assert response.status_code == 422 and response.json["code"] == "validation_error"
    assert field in [error["field"] for error in response.json["errors"]]


def test_attack_through_the_api_with_chromium_fails_safe(private_db: dict[str, str], jobs: JobsClient,
                                                         client: FlaskClient, auth: AuthActions,
                                                         spawn_worker: Callable[..., WorkerProcess],
                                                         secret_file: Path, honeypot: Honeypot) -> None:
    """End to end with JavaScript on: every vector renders without a leak, and other tenants cannot see the job."""
    spawn_worker(private_db)
    script = f"<script>fetch('{honeypot.url('/fetch')}'); window.open('{honeypot.url('/popup')}')</script>"
    job = jobs.wait(jobs.submit({"html": attack_html(secret_file, honeypot) + script, "engine": "chromium",
                                 "javascript": True})["id"])
    assert job["status"] == "completed", job
    assert_nothing_leaked(client.get(job["links"]["pdf"]).data, secret_file, honeypot)
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth.headers("globex")).status_code == 404


def test_killed_browser_ends_in_a_retried_job(private_db: dict[str, str], jobs: JobsClient,
                                              spawn_worker: Callable[..., WorkerProcess]) -> None:
    """Chromium killed mid-print: the attempt fails as browser_crashed, the retry completes on a fresh browser."""
    worker = spawn_worker(private_db)
    slow = "<p>slow</p><script>const end = Date.now() + 4000; while (Date.now() < end) {}</script>"
    job = jobs.submit({"html": slow, "engine": "chromium", "javascript": True, "max_retries": 2})

    def processes(marker: bytes) -> list[int]:
        found, stack = [], [worker.pid]
        while stack:
            pid = stack.pop()
            try:  # every thread's children: playwright's driver starts the browser from one of its threads
                children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
            except FileNotFoundError:
                continue
            stack.extend(children)
            found.extend(c for c in children if marker in _cmdline(c))
        return found

    wait_until(lambda: jobs.get(job["id"])["progress"]["step"] == "loading", timeout=60, interval=0.05)
    before = set(processes(b"--type=renderer"))  # the spare page's; the job (JavaScript on) gets a context of its own
    wait_until(lambda: set(processes(b"--type=renderer")) - before, timeout=10)
    for pid in processes(b"/usr/lib/chromium/"):  # the whole browser, with the job's page
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = jobs.wait(job["id"], timeout=120)
    assert done["status"] == "completed", done
    assert done["attempts"] == 2


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""
