"""A warm headless Chromium per worker, in a process of its own, that prints HTML to PDF for the work-horses.

RQ forks a work-horse per job; starting a browser (and playwright's driver) in each would cost more than the
print. So the worker parent starts this service once, and each horse sends its one print over a Unix socket
and waits. The horse keeps its memory cap and its kill-on-timeout; the browser stays warm, gets a fresh
context per job, and is restarted after `max_jobs` prints, past its memory cap, or when it crashes.

Every request the page makes (the document, subresources, fetch/XHR, frames, workers) is routed through the
same RestrictedURLFetcher as a WeasyPrint render: Chromium itself never reaches the network or the disk.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from shared.config import DEFAULT_BROWSER_MAX_JOBS, DEFAULT_BROWSER_MEMORY_LIMIT_MB
from shared.errors import BrowserCrashed, ConfigError

log = logging.getLogger(__name__)

DOCUMENT_ORIGIN = "https://document.pdfq.invalid"
"""The page's own origin: its URL serves the job's HTML, and its paths map onto files under templates/.

`.invalid` never resolves (RFC 2606), so nothing outside the route handler could ever answer it."""
DOCUMENT_URL = f"{DOCUMENT_ORIGIN}/__document__"
SERVICE_START_TIMEOUT_S = 60
LOADED = "loaded"
"""What the service sends while a print is under way: the page has loaded and printing starts."""
SERVICE_GRACE_S = 5
"""How long past a print's own timeout a horse waits for the service's answer before it gives the service up."""
LOAD_POLL_MS = 100
"""How often a print waiting for the load event checks whether the page gave up its load by navigating."""
MEMORY_CHECK_EVERY = 5
"""Prints between two reads of the browser's memory: a read walks every Chromium process's smaps (~40 ms)."""
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--mute-audio",
                  # Defence in depth behind the route handler: no proxy, no DNS, so no way out.
                  "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                  "--host-resolver-rules=MAP * ~NOTFOUND")
"""--no-sandbox because workers may run as root in containers; the page is isolated by the route handler,
JavaScript off by default, and a context per job."""


@dataclass(frozen=True)
class PrintRequest:
    """One print: the rendered HTML and how Chromium should lay it out."""

    html: str
    javascript: bool = False
    wait_for_selector: str | None = None
    wait_for_ms: int | None = None
    timeout_s: float = 120
    pdf: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for playwright's page.pdf (format/width/height/margin/landscape/...)."""


@dataclass(frozen=True)
class PrintResult:
    pdf: bytes | None
    error_code: str | None = None
    error_message: str = ""
    open_ms: float = 0.0
    """How long the job waited for its browser context and page (about nothing when it took the spare)."""
    context_open_ms: float = 0.0
    """How long opening that context and page took, whenever it happened (for the spare: after the last print)."""
    refused: tuple[str, ...] = ()
    """Origins of requests the page made that were refused (scheme://host only: paths can carry data)."""
    loaded: tuple[tuple[str, str], ...] = ()
    """(URL, sha256 of the bytes) the fetcher served the page: files under templates/ as file: URLs, https."""


class JobPage:
    """One job's browser context and page, and what its route handler needs to know of the job."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.open_ms = 0.0
        self.page: Any = None
        self.refused: list[str] = []
        self.loaded: list[tuple[str, str]] = []
        self.crashed = False
        self.html: str | None = None
        """The job's document, served once at DOCUMENT_URL (the page's first navigation)."""
        self.served_document = False
        self.navigation_refused = False

    def watch(self, page: Any) -> None:
        self.page = page
        page.on("crash", lambda _: setattr(self, "crashed", True))

    def discard(self) -> None:
        from playwright.sync_api import Error as PlaywrightError

        try:
            self.context.close()
        except PlaywrightError:
            pass

    def usable(self) -> bool:
        return self.page is not None and not self.page.is_closed() and not self.crashed

    def refuse_socket(self, socket: Any) -> None:
        self.refused.append(_origin(socket.url))
        socket.close()


class BrowserHost:
    """Owns playwright and one Chromium inside the service process; prints one request at a time."""

    def __init__(self, executable: str, templates_dir: Path, allowed_hosts: frozenset[str], *,
                 max_jobs: int = DEFAULT_BROWSER_MAX_JOBS, memory_limit_mb: int = DEFAULT_BROWSER_MEMORY_LIMIT_MB) -> None:
        from playwright.sync_api import sync_playwright

        from worker.fetcher import RestrictedURLFetcher

        self.executable = executable
        self.templates_dir = templates_dir.resolve()
        self.fetcher = RestrictedURLFetcher(templates_dir, allowed_hosts)
        self.max_jobs = max_jobs
        self.memory_limit_mb = memory_limit_mb
        self._playwright = sync_playwright().start()
        self._browser: Any = None
        self._spare: JobPage | None = None
        self.prints_since_launch = 0
        self.launches = 0

    @property
    def version(self) -> str:
        return self._ensure_browser().version

    def _ensure_browser(self) -> Any:
        if self._browser is None or not self._browser.is_connected():
            self._close_browser()
            self._browser = self._playwright.chromium.launch(executable_path=self.executable, headless=True,
                                                             args=list(CHROMIUM_FLAGS), handle_sigint=False,
                                                             handle_sigterm=False, handle_sighup=False)
            self.prints_since_launch = 0
            self.launches += 1
        return self._browser

    def _close_browser(self) -> None:
        self._spare = None
        if self._browser is not None:
            try:
                self._browser.close()
            except Exception:  # A crashed browser cannot be closed cleanly; its processes are already gone.
                pass
            self._browser = None

    def memory_mb(self) -> float:
        """The browser's memory (PSS, MiB): every Chromium process under this service, not playwright's driver."""
        total = 0.0
        for pid in _descendants(os.getpid()):
            try:
                if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                    total += _own_pss_mb(pid)
            except FileNotFoundError:
                continue
        return total

    def between_prints(self) -> None:
        """After a print's answer is sent, while no job waits: replace a browser that has served its prints or
        outgrown its memory cap, and open the next job's context and page, so that a job pays for neither."""
        from playwright.sync_api import Error as PlaywrightError

        if self._browser is not None and self.due_for_restart():
            log.info("browser restarted", extra={"prints": self.prints_since_launch,
                                                 "memory_mb": round(self.memory_mb())})
            self._close_browser()
        if self._spare is None:
            try:
                self._spare = self._open(javascript=False)
            except PlaywrightError:
                self._close_browser()

    def _open(self, *, javascript: bool) -> JobPage:
        browser = self._ensure_browser()
        started = time.perf_counter()
        context = browser.new_context(java_script_enabled=javascript, service_workers="block", accept_downloads=False,
                                      permissions=[])
        job_page = JobPage(context)
        context.route("**/*", lambda route: self._answer_safely(route, job_page))
        context.route_web_socket("**/*", lambda socket: job_page.refuse_socket(socket))
        context.on("page", _close_popup)
        # No navigation yet: the job's own, to DOCUMENT_URL, gives the page the origin its relative URLs
        # resolve against (templates/). A blank one first would cost a job a second navigation (~100 ms CPU).
        job_page.watch(context.new_page())
        job_page.open_ms = (time.perf_counter() - started) * 1000
        return job_page

    def print(self, request: PrintRequest, on_loaded: Callable[[], None] = lambda: None) -> PrintResult:
        from playwright.sync_api import Error as PlaywrightError

        started = time.perf_counter()
        job_page = None
        if not request.javascript:  # the spare has JavaScript off; a job that wants it gets its own
            job_page, self._spare = self._spare, None
        try:
            if job_page is not None and not job_page.usable():
                job_page.discard()
                job_page = None
            if job_page is None:
                job_page = self._open(javascript=request.javascript)
        except PlaywrightError as exc:
            self._close_browser()
            return PrintResult(None, "browser_crashed", f"the browser could not open a page: {_first_line(exc)}")
        self.prints_since_launch += 1
        open_ms = (time.perf_counter() - started) * 1000
        page = job_page.page
        try:
            job_page.context.set_default_timeout(request.timeout_s * 1000)
            job_page.html = request.html
            # "commit", then our own wait for load: a page that navigates away would hold playwright's waits.
            page.goto(DOCUMENT_URL, wait_until="commit")
            self._wait_for_load(job_page, time.monotonic() + request.timeout_s)
            if request.wait_for_selector:
                page.wait_for_selector(request.wait_for_selector, state="attached")
            if request.wait_for_ms:
                page.wait_for_timeout(request.wait_for_ms)
            # Web fonts may still be arriving at the load event; printing then would set text in a fallback
            # font, and the same inputs would not give the same bytes. (Runs in playwright's own world, so it
            # works with the page's JavaScript off.)
            page.evaluate("document.fonts.ready.then(() => true)")
            on_loaded()
            pdf = page.pdf(print_background=True, **request.pdf)
            return PrintResult(pdf, open_ms=open_ms, context_open_ms=job_page.open_ms, refused=tuple(job_page.refused),
                               loaded=tuple(job_page.loaded))
        except PlaywrightError as exc:
            message = _first_line(exc)
            lost = self._browser is None or not self._browser.is_connected()
            if lost or job_page.crashed or "closed" in message.lower() or "crash" in message.lower():
                self._close_browser()
                return PrintResult(None, "browser_crashed", f"the browser died during the print: {message}")
            if "timeout" in message.lower():
                return PrintResult(None, "timeout", f"the page did not finish within {request.timeout_s:g} s")
            return PrintResult(None, "render_error", f"printing failed: {message}")
        finally:
            job_page.discard()

    @staticmethod
    def _wait_for_load(job_page: JobPage, deadline: float) -> None:
        """Wait for the document's load event, unless the page tried to navigate away: Chromium then never
        fires it (the refused navigation's 204 keeps the document but stops its loading), so print as it is."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        while not job_page.navigation_refused:
            try:
                job_page.page.wait_for_load_state("load", timeout=LOAD_POLL_MS)
                return
            except PlaywrightTimeout:
                if time.monotonic() > deadline:
                    raise

    def due_for_restart(self) -> bool:
        if self.prints_since_launch >= self.max_jobs:
            return True
        return self.prints_since_launch % MEMORY_CHECK_EVERY == 0 and self.memory_mb() > self.memory_limit_mb

    def _answer_safely(self, route: Any, job_page: JobPage) -> None:
        """A handler that raised would leave the request hanging until the job's timeout: refuse instead."""
        try:
            self._answer(route, job_page)
        except Exception as exc:
            from playwright.sync_api import Error as PlaywrightError

            if isinstance(exc, PlaywrightError):  # the page went away while we answered
                return
            log.warning("asset refused", extra={"url": _origin(route.request.url), "reason": type(exc).__name__})
            job_page.refused.append(_origin(route.request.url))
            _refuse(route)

    def _answer(self, route: Any, job_page: JobPage) -> None:
        """Serve the document and what the fetch policy allows; refuse everything else."""
        from weasyprint.urls import URLFetchingError

        url = route.request.url
        refused = job_page.refused
        if url == DOCUMENT_URL and not job_page.served_document and job_page.html is not None:
            job_page.served_document = True
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=job_page.html)
            return
        fetch_url = self._fetcher_url(url)
        try:
            if fetch_url is None:
                raise URLFetchingError("not a URL the fetcher serves")
            response = self.fetcher.fetch(fetch_url)
        except URLFetchingError:
            refused.append(_origin(url))
            job_page.navigation_refused |= route.request.is_navigation_request()
            _refuse(route)
            return
        body = response.read()
        route.fulfill(status=200, body=body, content_type=response.headers.get("Content-Type") or None)
        job_page.loaded.append((fetch_url, hashlib.sha256(body).hexdigest()))

    def _fetcher_url(self, url: str) -> str | None:
        """The URL the fetcher decides on: document-origin paths become files under templates/."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == DOCUMENT_ORIGIN:
            return (self.templates_dir / parts.path.lstrip("/")).as_uri()
        if parts.scheme in ("https", "data"):
            return url
        return None  # file:, http:, ws:, blob: and the rest

    def close(self) -> None:
        self._close_browser()
        self._playwright.stop()


def _own_pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes that map them, so Chromium's many
    processes (which share most of their libraries) add up to what the browser really costs."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            children = [int(c) for task in Path(f"/proc/{current}/task").iterdir()
                        for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
        found.extend(children)
        stack.extend(children)
    return found


def _refuse(route: Any) -> None:
    """Refuse a request; a refused navigation answers 204, which keeps the document where it is (an aborted one
    would replace it with the browser's error page)."""
    if route.request.is_navigation_request():
        route.fulfill(status=204, body=b"")
    else:
        route.abort("blockedbyclient")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" if parts.hostname else f"{parts.scheme}:"


def _close_popup(page: Any) -> None:
    """A second page in a job's context (window.open, target=_blank) is closed before it loads anything."""
    if len(page.context.pages) > 1:
        page.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class BrowserService:
    """The worker parent's handle on its browser process: start it, keep it alive, stop it."""

    def __init__(self, executable: str, templates_dir: Path, allowed_hosts: frozenset[str], *,
                 max_jobs: int = DEFAULT_BROWSER_MAX_JOBS, memory_limit_mb: int = DEFAULT_BROWSER_MEMORY_LIMIT_MB) -> None:
        self.executable = executable
        self.templates_dir = templates_dir
        self.allowed_hosts = allowed_hosts
        self.max_jobs = max_jobs
        self.memory_limit_mb = memory_limit_mb
        self._folder = Path(tempfile.mkdtemp(prefix="pdfq-browser-"))
        self.address = str(self._folder / "service.sock")
        self.authkey = secrets.token_bytes(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.version: str | None = None
        """Chromium's version, known once the service has started (None: not started, or it would not start)."""

    def start(self) -> None:
        Path(self.address).unlink(missing_ok=True)  # left behind by a service that was killed
        env = {**os.environ, "PDFQ_BROWSER_AUTHKEY": self.authkey.hex()}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.browser_service", "--address", self.address, "--executable", self.executable,
             "--templates", str(self.templates_dir), "--allowed-hosts", ",".join(sorted(self.allowed_hosts)),
             "--max-jobs", str(self.max_jobs), "--memory-limit-mb", str(self.memory_limit_mb)],
            env=env, start_new_session=True)
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError("the browser service did not start (is chromium working?)")
            time.sleep(0.05)
        self.version = self._ask("version")

    def _ask(self, kind: str) -> Any:
        with self.client() as connection:
            connection.send((kind, None))
            return connection.recv()

    def stats(self) -> dict[str, float]:
        """The browser's memory (PSS, MiB), how often it was launched, and prints since the last launch."""
        answer: dict[str, float] = self._ask("stats")
        return answer

    def ready(self) -> bool:
        try:
            with self.client(timeout_s=5) as connection:
                connection.send(("ping", None))
                return connection.poll(5) and connection.recv() == "pong"
        except (OSError, EOFError):
            return False

    def ensure_running(self) -> None:
        """Called by the parent before each job: a dead service (or one never started) is started again."""
        if self.process is None or self.process.poll() is not None:
            log.warning("browser service restarted", extra={"exit_code": self.process and self.process.returncode})
            self.start()

    def client(self, timeout_s: float = 5) -> Connection:
        return Client(self.address, family="AF_UNIX", authkey=self.authkey)

    def print(self, request: PrintRequest, on_loaded: Callable[[], None] = lambda: None) -> PrintResult:
        """Run in a work-horse: send the print and wait for it, at most the job's timeout; `on_loaded` is called
        when the page has loaded and printing starts.

        A crashed browser, or a service that misses the deadline, raises BrowserCrashed (a transient fault: the
        job is retried). A service stuck past its deadline is killed here, so the worker parent starts a fresh
        one before its next job instead of handing every later job to a browser that no longer answers."""
        deadline = time.monotonic() + request.timeout_s + SERVICE_GRACE_S
        try:
            connection = self.client()
        except OSError as exc:
            raise BrowserCrashed(f"the browser service is not reachable: {exc}") from None
        with connection:
            connection.send(("print", request))
            while True:
                if not connection.poll(max(0.0, deadline - time.monotonic())):
                    self.kill()
                    raise BrowserCrashed("the browser service did not answer in time; it is being replaced")
                try:
                    answer = connection.recv()
                except EOFError:
                    raise BrowserCrashed("the browser service stopped during the print") from None
                if answer == LOADED:
                    on_loaded()
                    continue
                break
        result: PrintResult = answer
        if result.error_code == "browser_crashed":
            raise BrowserCrashed(result.error_message)
        return result

    def kill(self) -> None:
        """SIGKILL the service and its browser, and wait until they are gone (so `ensure_running` sees it)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)  # in a horse (not the parent) this returns at once: no child to reap

    def stop(self) -> None:
        """TERM the service, which closes its browser; KILL what is left of its process group after 10 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def die_with_parent() -> None:
    """The service must not outlive its worker (a SIGKILLed worker cannot stop it): ask Linux to TERM us."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        log.warning("cannot tie the browser service to its worker's lifetime")


def serve(address: str, authkey: bytes, host: BrowserHost) -> None:
    """Answer prints one at a time until SIGTERM; a print never outlives its own deadline."""
    with Listener(address, family="AF_UNIX", authkey=authkey) as listener:
        while True:
            try:
                connection = listener.accept()
            except (OSError, EOFError):  # a client that failed the handshake
                continue
            with connection:
                try:
                    kind, payload = connection.recv()
                    if kind == "ping":
                        connection.send("pong")
                    elif kind == "print":
                        connection.send(host.print(payload, on_loaded=lambda: connection.send(LOADED)))
                        host.between_prints()
                    elif kind == "stats":
                        connection.send({"memory_mb": host.memory_mb(), "launches": host.launches,
                                         "prints_since_launch": host.prints_since_launch})
                    elif kind == "version":
                        connection.send(host.version)
                except (EOFError, OSError, BrokenPipeError):
                    continue  # the horse went away (killed on timeout); the next one gets a fresh context


def main() -> int:
    from shared.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--executable", required=True)
    parser.add_argument("--templates", required=True, type=Path)
    parser.add_argument("--allowed-hosts", default="")
    parser.add_argument("--max-jobs", type=int, default=DEFAULT_BROWSER_MAX_JOBS)
    parser.add_argument("--memory-limit-mb", type=int, default=DEFAULT_BROWSER_MEMORY_LIMIT_MB)
    args = parser.parse_args()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    die_with_parent()
    authkey = bytes.fromhex(os.environ.pop("PDFQ_BROWSER_AUTHKEY"))
    hosts = frozenset(h for h in args.allowed_hosts.split(",") if h)
    host = BrowserHost(args.executable, args.templates, hosts, max_jobs=args.max_jobs,
                       memory_limit_mb=args.memory_limit_mb)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        host.between_prints()  # launch now: the first job should not pay for it
        serve(args.address, authkey, host)
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    # Run as the imported module, so the results pickle as worker.browser_service classes, not __main__'s.
    from worker.browser_service import main as service_main

    sys.exit(service_main())
