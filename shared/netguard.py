"""Decides which network targets the service may contact (webhooks, remote assets)."""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

DNS_TIMEOUT_S = 3.0
"""Longest a host lookup may take (webhook checks at submit, remote assets during a render)."""


class BlockedTarget(ValueError):
    """The URL points at loopback, a private or link-local range, or cannot be resolved."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url_shape(url: str, schemes: frozenset[str] = frozenset({"https", "http"})) -> None:
    """The part of the check that needs no DNS: an absolute URL with an allowed scheme and a host."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise BlockedTarget(f"URL must be absolute with scheme {' or '.join(sorted(schemes))}")


def resolve_public(url: str, schemes: frozenset[str] = frozenset({"https", "http"})) -> str:
    """The first address of the URL's host, refusing it if ANY address is not public (checked after DNS)."""
    check_url_shape(url, schemes)
    parts = urlsplit(url)
    addresses = [str(info[4][0]) for info in _lookup(parts.hostname or "", parts.port or 443)]
    if not addresses or not all(_is_public(a) for a in addresses):
        raise BlockedTarget(f"host {parts.hostname!r} resolves to a private or loopback address")
    return addresses[0]


def _lookup(host: str, port: int) -> list[Any]:
    """getaddrinfo has no timeout of its own: run it aside and stop waiting after DNS_TIMEOUT_S."""
    answer: list[Any] = []

    def resolve() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP) or ())
        except (OSError, UnicodeError):
            pass  # an empty answer (also a resolver answering None): does not resolve

    lookup = threading.Thread(target=resolve, name="dns-lookup", daemon=True)
    lookup.start()
    lookup.join(DNS_TIMEOUT_S)
    if lookup.is_alive() or not answer:
        raise BlockedTarget(f"host {host!r} does not resolve within {DNS_TIMEOUT_S:g} s")
    return list(answer)


def check_public_url(url: str, *, schemes: frozenset[str] = frozenset({"https", "http"})) -> None:
    resolve_public(url, schemes)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address vetted beforehand, so a second DNS answer (rebinding) cannot redirect it."""

    def __init__(self, host: str, address: str, **kwargs: object) -> None:
        super().__init__(host, context=ssl.create_default_context(), **kwargs)  # type: ignore[arg-type]
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
