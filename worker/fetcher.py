"""The render's only door to resources: data: URIs, files under templates/, allow-listed https hosts."""
from __future__ import annotations

import contextlib
import functools
import http.client
import io
import logging
import mimetypes
import socket
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

import weasyprint.css
from weasyprint.urls import URLFetcher, URLFetcherResponse, URLFetchingError

from shared.netguard import BlockedTarget, PinnedHTTPSConnection, resolve_public
from worker.render_cache import note_fetch

log = logging.getLogger(__name__)

MAX_REMOTE_ASSET_BYTES = 5 * 1024 * 1024
"""Largest remote asset fetched from an allow-listed host, in bytes."""
REMOTE_ASSET_TIMEOUT_S = 5
"""Seconds from the start of a remote asset's fetch to its last byte (also the connect and TLS handshake timeout)."""


class DeadlineReader(io.RawIOBase):
    """Socket reads that share one deadline, so a server trickling bytes cannot hold a render past it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        # Like HTTPResponse's own file, this keeps the socket open after the connection lets go of it.
        self.raw = sock.makefile("rb", buffering=0)
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


class DeadlineResponse(http.client.HTTPResponse):
    """An HTTP response whose status line, headers and body must all arrive before `deadline` (time.monotonic())."""

    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()
        self.fp = io.BufferedReader(DeadlineReader(sock, deadline))


def origin(url: str) -> str:
    """Scheme and host only: a URL's user, path and query can carry template data, which logs must not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}"


class RestrictedURLFetcher(URLFetcher):
    """Refused URLs raise URLFetchingError: WeasyPrint logs it and renders without the resource."""

    def __init__(self, templates_dir: Path, allowed_hosts: frozenset[str]) -> None:
        super().__init__(timeout=REMOTE_ASSET_TIMEOUT_S, allowed_protocols=("data", "file", "https"),
                         allow_redirects=False)
        self.root = templates_dir.resolve()
        self.allowed_hosts = allowed_hosts

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data":
            note_fetch(url.split(",", 1)[0] + ",…", url.encode())  # the URI is its bytes; the manifest names its type
            return super().fetch(url, headers)
        if scheme == "file":
            return self._fetch_template_file(url)
        if scheme == "https":
            return self._fetch_allowed_host(url)
        return self._refuse(url, "scheme not allowed")

    def _refuse(self, url: str, reason: str) -> URLFetcherResponse:
        log.warning("asset refused", extra={"url": origin(url), "reason": reason})
        raise URLFetchingError(f"refused {origin(url)}: {reason}")

    def _fetch_template_file(self, url: str) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return self._refuse(url, "remote file URL")
        # resolve() follows symlinks and '..', so the check sees the real target.
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return self._refuse(url, "outside templates/")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = path.read_bytes()
        note_fetch(path.as_uri(), body)
        return URLFetcherResponse(path.as_uri(), body=body, headers={"Content-Type": mime})

    def _fetch_allowed_host(self, url: str) -> URLFetcherResponse:
        deadline = time.monotonic() + REMOTE_ASSET_TIMEOUT_S
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            return self._refuse(url, "host not in ALLOWED_ASSET_HOSTS")
        try:
            address = resolve_public(url, schemes=frozenset({"https"}))
        except BlockedTarget as exc:
            return self._refuse(url, str(exc))
        # Connecting and the TLS handshake are bounded by the socket timeout; every later read by the deadline.
        connection = PinnedHTTPSConnection(host, address, port=parts.port or 443, timeout=REMOTE_ASSET_TIMEOUT_S)
        connection.response_class = functools.partial(DeadlineResponse, deadline=deadline)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"User-Agent": "pdfq"})
            response = connection.getresponse()
            if response.status != 200:  # Redirects included: they could lead anywhere.
                return self._refuse(url, f"HTTP {response.status}")
            body = response.read(MAX_REMOTE_ASSET_BYTES + 1)
        except TimeoutError:
            return self._refuse(url, f"slower than {REMOTE_ASSET_TIMEOUT_S} s")
        finally:
            connection.close()
        if len(body) > MAX_REMOTE_ASSET_BYTES:
            return self._refuse(url, "asset too large")
        note_fetch(url, body)
        return URLFetcherResponse(url, body=body, headers={"Content-Type": response.getheader("Content-Type", "")})


_original_css_fetch = weasyprint.css.fetch


@contextlib.contextmanager
def _fetch_color_profile(url_fetcher: Any, url: str) -> Iterator[URLFetcherResponse]:
    """WeasyPrint's `fetch`, except that a failed fetch yields an empty body instead of raising."""
    with contextlib.ExitStack() as stack:
        try:
            response = stack.enter_context(_original_css_fetch(url_fetcher, url))
        except URLFetchingError:
            response = URLFetcherResponse(url, body=b"")
        yield response


# Every fetch WeasyPrint makes catches URLFetchingError and renders without the resource, except
# @color-profile's (the only `fetch` weasyprint.css calls), whose error fails the whole render.
# An empty body there takes WeasyPrint's own path for an unusable profile: a warning, and the rule is
# ignored. Narrower than refusing with an empty body everywhere (an attachment would then be embedded
# empty) and more faithful than stripping @color-profile rules from CSS that arrives from many places.
# (Pinned: WeasyPrint 70.)
weasyprint.css.fetch = _fetch_color_profile
