"""The receiving side of the service's webhooks: check `X-Signature-256`, then read the job it carries."""
from __future__ import annotations

import hashlib
import hmac
import json

from pdfq.models import Job


def verify_signature(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of the raw `body` under the service's
    WEBHOOK_SECRET; compared in constant time. Pass the bytes as received, before any JSON parsing."""
    if not signature or not secret:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def job_from_webhook(body: bytes) -> Job:
    """The job resource a webhook POSTs (check its signature first)."""
    return Job.from_resource(json.loads(body))
