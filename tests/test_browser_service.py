"""The Chromium engine's browser service: warm prints, JavaScript off by default, a sandbox on every request,
crash recovery and bounded memory."""
from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Iterator

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.errors import BrowserCrashed
from tests.browser import chromium_path
from tests.support import Honeypot, wait_until
from worker.browser_service import BrowserService, PrintRequest


@pytest.fixture(scope="module")
def service() -> Iterator[BrowserService]:
    browser = BrowserService(chromium_path(), PROJECT_ROOT / "templates", frozenset({"localhost"}), max_jobs=25)
    browser.start()
    yield browser
    browser.stop()


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def browser_pids(service: BrowserService) -> list[int]:
    assert service.process is not None
    found, stack = [], [service.process.pid]
    while stack:
        pid = stack.pop()
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = [int(c) for c in (task / "children").read_text().split()]
            stack.extend(children)
            found.extend(c for c in children if b"chrom" in Path(f"/proc/{c}/cmdline").read_bytes()[:200])
    return found


def test_prints_html_with_template_assets(service: BrowserService) -> None:
    """A document prints to a PDF with its text, its A4 page and the stylesheets under templates/ loaded."""
    html = '<html><head><link rel="stylesheet" href="assets/base.css"></head><body><h1>Invoice 42</h1></body></html>'
    result = service.print(PrintRequest(html=html, pdf={"format": "A4"}))
    assert result.error_code is None and result.pdf is not None
    reader = PdfReader(io.BytesIO(result.pdf))
    assert "Invoice 42" in reader.pages[0].extract_text()
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(width - 595.3) < 1.5 and abs(height - 841.9) < 1.5
    assert result.refused == ()
    assert "assets/base.css" in [url.rsplit("/templates/", 1)[1] for url, _ in result.loaded]


def test_javascript_is_off_unless_asked(service: BrowserService) -> None:
    """A script's output is absent by default and present when the job turns JavaScript on."""
    html = '<p>static</p><script>document.body.insertAdjacentHTML("beforeend", "<p>SCRIPTED</p>")</script>'
    off = service.print(PrintRequest(html=html))
    on = service.print(PrintRequest(html=html, javascript=True))
    assert "static" in text_of(off.pdf or b"") and "SCRIPTED" not in text_of(off.pdf or b"")
    assert "SCRIPTED" in text_of(on.pdf or b"")


def test_wait_for_selector_sees_what_a_script_adds(service: BrowserService) -> None:
    """`wait_for` a selector holds the print until a late script has drawn it."""
    html = ('<p>x</p><script>setTimeout(() => document.body.insertAdjacentHTML("beforeend",'
            ' "<p id=chart>LATE CHART</p>"), 300)</script>')
    result = service.print(PrintRequest(html=html, javascript=True, wait_for_selector="#chart"))
    assert "LATE CHART" in text_of(result.pdf or b"")


SCRIPT_VECTORS = {
    "fetch": "fetch('{pot}/fetch').catch(() => {{}})",
    "xhr": "var x = new XMLHttpRequest(); x.open('GET', '{pot}/xhr'); x.send()",
    "websocket": "try {{ new WebSocket('ws://127.0.0.1:{port}/ws') }} catch (e) {{}}",
    "window-open": "window.open('{pot}/popup')",
    "iframe": "document.body.insertAdjacentHTML('beforeend', '<iframe src=\"{pot}/iframe\"></iframe>')",
    "redirect": "location.href = '{pot}/redirect'",
    "worker": "try {{ new Worker('{pot}/worker.js') }} catch (e) {{}}",
    "beacon": "navigator.sendBeacon('{pot}/beacon', 'x')",
    "image": "new Image().src = '{pot}/img.png'",
    "file-fetch": "fetch('file:///etc/passwd').then(r => r.text()).then(t => document.body.append(t))",
}
"""What a script could try once JavaScript is on; the honeypot on loopback must never see a connection."""
MARKUP_VECTORS = {
    "img-loopback": '<img src="{pot}/img.png">',
    "stylesheet-loopback": '<link rel="stylesheet" href="{pot}/x.css">',
    "iframe-file": '<iframe src="file:///etc/passwd"></iframe>',
    "img-file": '<img src="file:///etc/passwd">',
    "object-file": '<object data="{secret}"></object>',
    "dot-dot": '<img src="../../../../etc/passwd">',
    "metadata-endpoint": '<img src="http://169.254.169.254/latest/meta-data/">',
    "allowed-host-but-loopback": '<img src="https://localhost:{port}/loopback.png">',
    "meta-refresh": '<meta http-equiv="refresh" content="0; url={pot}/refresh">',
}


@pytest.mark.parametrize("script", SCRIPT_VECTORS.values(), ids=SCRIPT_VECTORS.keys())
def test_script_driven_requests_never_leave(service: BrowserService, honeypot: Honeypot, secret_file: Path,
                                            script: str) -> None:
    """With JavaScript on, fetch/XHR/WebSocket/popups/frames/redirects/workers reach nothing outside."""
    source = script.format(pot=honeypot.url(""), port=honeypot.port)
    html = f"<p>visible text</p><script>{source}</script>"
    result = service.print(PrintRequest(html=html, javascript=True, wait_for_ms=300))
    assert result.pdf is not None, result.error_message
    text = text_of(result.pdf)
    assert "root:" not in text and "HONEYPOT" not in text
    assert honeypot.connections == []


@pytest.mark.parametrize("markup", MARKUP_VECTORS.values(), ids=MARKUP_VECTORS.keys())
def test_markup_requests_never_leave(service: BrowserService, honeypot: Honeypot, secret_file: Path,
                                     markup: str) -> None:
    """Markup that loads from loopback, link-local, file: or outside templates/ is refused; nothing leaks."""
    html = "<p>visible text</p>" + markup.format(pot=honeypot.url(""), port=honeypot.port, secret=secret_file.as_uri())
    result = service.print(PrintRequest(html=html, wait_for_ms=200))
    assert result.pdf is not None, result.error_message
    text = text_of(result.pdf)
    assert "visible text" in text
    assert "root:" not in text and "TOPSECRET" not in text and "HONEYPOT" not in text
    assert b"TOPSECRET" not in result.pdf
    assert honeypot.connections == []


def test_opening_a_job_page_is_fast(service: BrowserService) -> None:
    """A job takes the spare context prepared after the previous print, so opening it costs no new page."""
    service.print(PrintRequest(html="<p>warm</p>"))
    result = service.print(PrintRequest(html="<p>second</p>"))
    assert result.pdf is not None
    with_own_page = service.print(PrintRequest(html="<p>js</p>", javascript=True))
    assert result.open_ms < with_own_page.open_ms  # took the spare instead of opening one


def test_killed_browser_is_reported_and_replaced(service: BrowserService) -> None:
    """A browser killed during a print answers browser_crashed; the next print gets a fresh browser."""
    service.print(PrintRequest(html="<p>before</p>"))
    launches, service_pid = service.stats()["launches"], service.process.pid if service.process else 0
    html = "<p>slow</p><script>const end = Date.now() + 3000; while (Date.now() < end) {}</script>"
    import threading

    def kill_soon() -> None:
        wait_until(lambda: browser_pids(service), timeout=10)
        for pid in browser_pids(service):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    killer = threading.Timer(0.5, kill_soon)
    killer.start()
    with pytest.raises(BrowserCrashed):
        service.print(PrintRequest(html=html, javascript=True, timeout_s=8))
    killer.join()
    service.ensure_running()  # what the worker parent does before each job
    after = service.print(PrintRequest(html="<p>after the crash</p>"))
    assert "after the crash" in text_of(after.pdf or b"")
    assert service.stats()["launches"] > launches or service.process.pid != service_pid  # a fresh browser


def test_dead_service_is_started_again_and_a_horse_sees_a_transient_fault(tmp_path: Path) -> None:
    """A horse whose service died gets BrowserCrashed (retried); the parent starts the service again."""
    browser = BrowserService(chromium_path(), PROJECT_ROOT / "templates", frozenset())
    browser.start()
    try:
        assert browser.process is not None
        os.killpg(browser.process.pid, signal.SIGKILL)
        browser.process.wait(timeout=10)
        with pytest.raises(BrowserCrashed):
            browser.print(PrintRequest(html="<p>x</p>"))
        browser.ensure_running()
        assert "back" in text_of(browser.print(PrintRequest(html="<p>back</p>")).pdf or b"")
    finally:
        browser.stop()


def test_browser_memory_stays_bounded_by_restarts(service: BrowserService) -> None:
    """Over many prints the browser is replaced every max_jobs prints, so its RSS cannot grow without bound."""
    memory = []
    launches = service.stats()["launches"]
    for i in range(60):
        assert service.print(PrintRequest(html=f"<h1>Doc {i}</h1>" + "<p>line</p>" * 50)).pdf
        if i % 10 == 9:
            memory.append(service.stats()["memory_mb"])
    assert service.stats()["launches"] >= launches + 2  # max_jobs=25: restarted at least twice in 60 prints
    assert max(memory) < 1024
