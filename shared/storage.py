"""Where finished PDFs live, chosen by STORAGE_URL: local files, Redis, or S3(-compatible) object storage."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Protocol
from urllib.parse import urlsplit

from redis import Redis

from shared import keys
from shared.config import PROJECT_ROOT, Settings
from shared.connection import connect
from shared.errors import PdfTooLarge, StorageError

if TYPE_CHECKING:
    from botocore.response import StreamingBody


CHUNK_BYTES = 64 * 1024
"""Size of the pieces a stored PDF is read in, so a download never holds a whole PDF in memory."""


class PdfStream:
    """A stored PDF as an iterable of chunks; WSGI servers call close() when the response ends."""

    def __init__(self, source: BinaryIO | StreamingBody) -> None:
        self.source = source

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.source.read(CHUNK_BYTES):
            yield chunk

    def close(self) -> None:
        self.source.close()


MAX_FILES_BESIDE_PDF = 32
"""Derived files (previews) kept per job; past it a put is skipped, so no client can fill the store with one job."""


class PdfStorage(Protocol):
    def put(self, job_id: str, content: bytes) -> None: ...
    def open(self, job_id: str) -> PdfStream | None:
        """The stored PDF, or None when it is missing or past retention."""
    def delete(self, job_id: str) -> None:
        """The PDF and every file kept beside it."""
    def purge_expired(self) -> int: ...
    def put_beside(self, job_id: str, name: str, content: bytes) -> bool:
        """Keep a file derived from the job's PDF until the PDF expires; False (nothing kept) when the PDF is
        gone or MAX_FILES_BESIDE_PDF are already kept."""
    def open_beside(self, job_id: str, name: str) -> bytes | None:
        """A file kept beside the job's PDF, or None (never kept, or expired with the PDF)."""


class FileStorage:
    """PDFs as files under one directory; only for processes that share a disk."""

    def __init__(self, root: Path, ttl_s: int) -> None:
        self.root = root
        self.ttl_s = ttl_s

    def _path(self, job_id: str, suffix: str = "pdf") -> Path:
        return self.root / job_id[:2] / f"{job_id}.{suffix}"

    def put(self, job_id: str, content: bytes) -> None:
        path = self._path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a PDF.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, path)

    def open(self, job_id: str) -> PdfStream | None:
        return self._open_path(self._path(job_id))

    def _open_path(self, path: Path) -> PdfStream | None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        if time.time() - os.fstat(handle.fileno()).st_mtime > self.ttl_s:
            handle.close()
            return None
        return PdfStream(handle)

    def delete(self, job_id: str) -> None:
        for path in self._path(job_id).parent.glob(f"{job_id}.*"):
            path.unlink(missing_ok=True)

    def put_beside(self, job_id: str, name: str, content: bytes) -> bool:
        """The file takes the PDF's modification time, so retention checks and purges treat both alike."""
        try:
            pdf_mtime = self._path(job_id).stat().st_mtime
        except FileNotFoundError:
            return False
        path = self._path(job_id, name)
        if time.time() - pdf_mtime > self.ttl_s or len(list(path.parent.glob(f"{job_id}.*"))) > MAX_FILES_BESIDE_PDF:
            return False
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            tmp.write(content)
        os.utime(tmp.name, (pdf_mtime, pdf_mtime))
        os.replace(tmp.name, path)
        return True

    def open_beside(self, job_id: str, name: str) -> bytes | None:
        stream = self._open_path(self._path(job_id, name))
        if stream is None:
            return None
        with contextlib.closing(stream):
            return b"".join(stream)

    def purge_expired(self) -> int:
        """Delete files past retention (and stale partial writes); returns how many this call removed.

        Every worker purges the same directory, so a file may vanish between listing, stat and unlink.
        """
        cutoff = time.time() - self.ttl_s
        removed = 0
        for path in self.root.glob("*/*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


REDIS_STORAGE_MAX_BYTES = 10 * 2**20
"""Largest PDF kept in Redis, in bytes: every PDF there costs Redis memory for RESULT_TTL_S (use S3 for more)."""


class RedisStorage:
    """PDF bytes in Redis with the retention TTL, for hosts that share no disk."""

    def __init__(self, connection: Redis, ttl_s: int) -> None:
        self.connection = connection
        self.ttl_s = ttl_s

    def put(self, job_id: str, content: bytes) -> None:
        if len(content) > REDIS_STORAGE_MAX_BYTES:
            raise PdfTooLarge(f"the PDF is {len(content)} bytes; Redis storage keeps at most "
                              f"{REDIS_STORAGE_MAX_BYTES} bytes; use S3 storage for larger ones")
        self.connection.set(keys.pdf_blob(job_id), content, ex=self.ttl_s)

    def open(self, job_id: str) -> PdfStream | None:
        content = self.connection.get(keys.pdf_blob(job_id))
        return PdfStream(io.BytesIO(content)) if content is not None else None

    def delete(self, job_id: str) -> None:
        self.connection.delete(keys.pdf_blob(job_id), keys.pdf_beside(job_id))

    def purge_expired(self) -> int:
        return 0  # Redis expires the blobs itself.

    def put_beside(self, job_id: str, name: str, content: bytes) -> bool:
        kept = self.connection.register_script(_PUT_BESIDE)(
            keys=[keys.pdf_blob(job_id), keys.pdf_beside(job_id)], args=[name, content, MAX_FILES_BESIDE_PDF])
        return bool(kept)

    def open_beside(self, job_id: str, name: str) -> bytes | None:
        return self.connection.hget(keys.pdf_beside(job_id), name)


# One hash per job beside the PDF's key, given the PDF's remaining lifetime (in ms) on every write.
_PUT_BESIDE = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""


class S3Storage:
    """PDFs as objects under `s3://bucket/prefix`; works with AWS and S3-compatible stores (S3_ENDPOINT_URL).

    Credentials come from boto3's usual environment variables (AWS_ACCESS_KEY_ID, ...).
    """

    def __init__(self, client: Any, bucket: str, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.ttl_s = ttl_s

    def _key(self, job_id: str, suffix: str = "pdf") -> str:
        return f"{self.prefix}/{job_id}.{suffix}" if self.prefix else f"{job_id}.{suffix}"

    def put(self, job_id: str, content: bytes) -> None:
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.ttl_s)
        with _s3_faults():
            self.client.put_object(Bucket=self.bucket, Key=self._key(job_id), Body=content,
                                   ContentType="application/pdf", Expires=expires)

    def open(self, job_id: str) -> PdfStream | None:
        """Streams the object's body as it arrives, so a download never holds the whole PDF in memory."""
        try:
            with _s3_faults():
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(job_id))
        except StorageError as exc:
            if isinstance(exc.__cause__, self.client.exceptions.NoSuchKey):
                return None
            raise
        if (datetime.now(timezone.utc) - response["LastModified"]).total_seconds() > self.ttl_s:
            response["Body"].close()
            return None
        return PdfStream(response["Body"])

    def delete(self, job_id: str) -> None:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(job_id, ""))
        doomed = [{"Key": o["Key"]} for o in listed.get("Contents", [])] or [{"Key": self._key(job_id)}]
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed, "Quiet": True})

    def put_beside(self, job_id: str, name: str, content: bytes) -> bool:
        """S3 cannot set an object's LastModified, so the PDF's travels in the object's metadata."""
        try:
            with _s3_faults():
                pdf = self.client.head_object(Bucket=self.bucket, Key=self._key(job_id))
        except StorageError:
            return False
        modified = pdf["LastModified"]
        if (datetime.now(timezone.utc) - modified).total_seconds() > self.ttl_s:
            return False
        with _s3_faults():
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(job_id, ""))
            if listed.get("KeyCount", 0) > MAX_FILES_BESIDE_PDF:
                return False
            self.client.put_object(Bucket=self.bucket, Key=self._key(job_id, name), Body=content,
                                   Expires=modified + timedelta(seconds=self.ttl_s),
                                   Metadata={_PDF_MODIFIED: str(modified.timestamp())})
        return True

    def open_beside(self, job_id: str, name: str) -> bytes | None:
        try:
            with _s3_faults():
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(job_id, name))
        except StorageError as exc:
            if isinstance(exc.__cause__, self.client.exceptions.NoSuchKey):
                return None
            raise
        with contextlib.closing(response["Body"]) as body:
            pdf_modified = float(response.get("Metadata", {}).get(_PDF_MODIFIED, "0"))
            if time.time() - pdf_modified > self.ttl_s:
                return None
            with _s3_faults():
                return body.read()

    def purge_expired(self) -> int:
        """S3 lifecycle rules work in whole days; this enforces RESULT_TTL_S to the second."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.ttl_s)
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""):
            stale = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["LastModified"] < cutoff]
            if stale:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": stale, "Quiet": True})
                removed += len(stale)
        return removed


_PDF_MODIFIED = "pdf-modified"
"""Object metadata of a file kept beside a PDF in S3: the PDF's LastModified (epoch seconds)."""


@contextlib.contextmanager
def _s3_faults() -> Iterator[None]:
    """Any S3 client failure (network, credentials, service) surfaces as one StorageError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"object storage failed: {type(exc).__name__}") from exc


def storage_from_settings(settings: Settings, connection: Redis) -> PdfStorage:
    """`STORAGE_URL=redis` (or the REDIS_URL itself) shares the job store's server and connection."""
    url = urlsplit(settings.storage_url)
    if url.scheme == "file":
        raw = url.netloc + url.path
        root = Path(raw) if raw.startswith("/") else PROJECT_ROOT / raw
        return FileStorage(root.resolve(), settings.result_ttl_s)
    if settings.storage_url in ("redis", settings.redis_url):
        return RedisStorage(connection, settings.result_ttl_s)
    if url.scheme in ("redis", "rediss"):
        return RedisStorage(connect(replace(settings, redis_url=settings.storage_url)), settings.result_ttl_s)
    if url.scheme == "s3":
        import boto3  # Only deployments that store in S3 pay for importing it.

        client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)
        return S3Storage(client, url.netloc, url.path, settings.result_ttl_s)
    raise ValueError(f"unsupported STORAGE_URL scheme {url.scheme!r}")
