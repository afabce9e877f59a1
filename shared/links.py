"""The job resource's links, with signed tokens a browser can follow without an Authorization header."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from functools import lru_cache

from shared.config import Settings

LINK_EXPIRY_STEP_S = 10
"""Link expiries are rounded down to this step, in seconds, so a resource polled again reuses its signatures
(a token lives LINK_TTL_S less at most this)."""
SIGNATURES_KEPT = 4096
"""Signatures remembered per process: a few pages of polled job lists."""


@lru_cache(maxsize=SIGNATURES_KEPT)
def link_signature(secret: str, tenant: str, job_id: str, route: str, expires: int) -> str:
    """HMAC over tenant, job, route and expiry: a token opens one route of one job until it expires."""
    message = f"{tenant}\n{job_id}\n{route}\n{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def link_token(settings: Settings, tenant: str, job_id: str, route: str) -> str:
    now = int(time.time())
    expires = now - now % LINK_EXPIRY_STEP_S + settings.link_ttl_s
    return f"{expires}.{link_signature(settings.secret_key, tenant, job_id, route, expires)}"


def job_links(settings: Settings, tenant: str, job_id: str) -> dict[str, str]:
    """Paths (relative to the API's root) for the job, its PDF, its page previews and its event stream."""
    base = f"/v1/jobs/{job_id}"
    return {
        "self": base,
        "pdf": f"{base}/pdf?token={link_token(settings, tenant, job_id, 'pdf')}",
        "events": f"{base}/events?token={link_token(settings, tenant, job_id, 'events')}",
        "preview": f"{base}/preview.png?token={link_token(settings, tenant, job_id, 'preview')}",
    }
