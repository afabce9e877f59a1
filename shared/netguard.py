"""Decides which network targets the service may contact (webhooks, remote assets)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedTarget(ValueError):
    """The URL points at loopback, a private or link-local range, or cannot be resolved."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_public_url(url: str, *, schemes: frozenset[str] = frozenset({"https", "http"})) -> None:
    """Refuse URLs whose host resolves to any non-public address (checked after DNS)."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise BlockedTarget(f"URL must be absolute with scheme {' or '.join(sorted(schemes))}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise BlockedTarget(f"host {parts.hostname!r} does not resolve") from None
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise BlockedTarget(f"host {parts.hostname!r} resolves to a private or loopback address")


def check_url_shape(url: str) -> None:
    """The part of the check that needs no DNS: an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise BlockedTarget("URL must be absolute with scheme http or https")
