"""Where finished PDFs live, chosen by STORAGE_URL: local files or Redis (S3 plugs in the same way)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from redis import Redis

from shared import keys
from shared.config import PROJECT_ROOT, Settings


class PdfStorage(Protocol):
    def put(self, job_id: str, content: bytes) -> None: ...
    def get(self, job_id: str) -> bytes | None: ...
    def delete(self, job_id: str) -> None: ...
    def purge_expired(self) -> int: ...


class FileStorage:
    """PDFs as files under one directory; only for processes that share a disk."""

    def __init__(self, root: Path, ttl_s: int) -> None:
        self.root = root
        self.ttl_s = ttl_s

    def _path(self, job_id: str) -> Path:
        return self.root / job_id[:2] / f"{job_id}.pdf"

    def put(self, job_id: str, content: bytes) -> None:
        path = self._path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a PDF.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, path)

    def get(self, job_id: str) -> bytes | None:
        path = self._path(job_id)
        try:
            if time.time() - path.stat().st_mtime > self.ttl_s:
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    def purge_expired(self) -> int:
        """Delete files past retention (and stale partial writes); returns how many."""
        cutoff = time.time() - self.ttl_s
        removed = 0
        for path in self.root.glob("*/*"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class RedisStorage:
    """PDF bytes in Redis with the retention TTL, for hosts that share no disk."""

    def __init__(self, connection: Redis, ttl_s: int) -> None:
        self.connection = connection
        self.ttl_s = ttl_s

    def put(self, job_id: str, content: bytes) -> None:
        self.connection.set(keys.pdf_blob(job_id), content, ex=self.ttl_s)

    def get(self, job_id: str) -> bytes | None:
        return self.connection.get(keys.pdf_blob(job_id))

    def delete(self, job_id: str) -> None:
        self.connection.delete(keys.pdf_blob(job_id))

    def purge_expired(self) -> int:
        return 0  # Redis expires the blobs itself.


def storage_from_settings(settings: Settings, connection: Redis) -> PdfStorage:
    url = urlsplit(settings.storage_url)
    if url.scheme == "file":
        raw = url.netloc + url.path
        root = Path(raw) if raw.startswith("/") else PROJECT_ROOT / raw
        return FileStorage(root.resolve(), settings.result_ttl_s)
    if url.scheme in ("redis", "rediss"):
        if settings.storage_url == settings.redis_url:
            return RedisStorage(connection, settings.result_ttl_s)
        return RedisStorage(Redis.from_url(settings.storage_url), settings.result_ttl_s)
    raise ValueError(f"unsupported STORAGE_URL scheme {url.scheme!r}")
