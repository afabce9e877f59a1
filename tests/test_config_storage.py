"""Settings from the environment, and the two PDF storage backends."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.config import DEV_KEY, Settings, parse_api_keys
from shared.errors import ConfigError, PdfTooLarge
from shared.storage import (
    CHUNK_BYTES,
    REDIS_STORAGE_MAX_BYTES,
    FileStorage,
    PdfStream,
    RedisStorage,
    storage_from_settings,
)


def test_api_keys_map_keys_to_tenants() -> None:
    """A tenant may hold several keys."""
    assert parse_api_keys("a:k1, a:k2,b:k3") == {"k1": "a", "k2": "a", "k3": "b"}
    with pytest.raises(ConfigError):
        parse_api_keys("no-colon")


def test_development_falls_back_to_dev_key(caplog: pytest.LogCaptureFixture) -> None:
    """Without API_KEYS outside production the API serves the dev key for tenant dev, with a warning."""
    settings = Settings.from_env({}).for_api()
    assert settings.api_keys == {DEV_KEY: "dev"}
    assert "API_KEYS is unset" in caplog.text


@pytest.mark.parametrize("env", [
    {"APP_ENV": "production", "SECRET_KEY": "s", "WEBHOOK_SECRET": "w"},
    {"APP_ENV": "production", "API_KEYS": f"t:{DEV_KEY}", "SECRET_KEY": "s", "WEBHOOK_SECRET": "w"},
    {"APP_ENV": "production", "API_KEYS": "t:k", "WEBHOOK_SECRET": "w"},
    {"APP_ENV": "production", "API_KEYS": "t:k", "SECRET_KEY": "s"},
    {"RESULT_TTL_S": "soon"},
])
def test_api_refuses_unsafe_or_malformed_settings(env: dict[str, str]) -> None:
    """The API refuses production without keys, secrets or webhook key, or with the dev key; bad numbers are errors."""
    with pytest.raises(ConfigError):
        Settings.from_env(env).for_api()


def test_workers_need_no_api_keys_in_production() -> None:
    """Workers and the scheduler start in production without API_KEYS (only the API uses them)."""
    settings = Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "s", "WEBHOOK_SECRET": "w"})
    assert settings.production and settings.api_keys == {}


def read(pdf: PdfStream | None) -> bytes:
    """All chunks of a stored PDF, closing it as a WSGI server would."""
    assert pdf is not None
    try:
        return b"".join(pdf)
    finally:
        pdf.close()


def test_file_storage_round_trip_and_retention(tmp_path: Path) -> None:
    """Files are written atomically, read back, and treated as gone after retention."""
    storage = FileStorage(tmp_path, ttl_s=60)
    storage.put("abc123", b"%PDF-1.7 data")
    assert read(storage.open("abc123")) == b"%PDF-1.7 data"
    path = tmp_path / "ab" / "abc123.pdf"
    old = time.time() - 120
    os.utime(path, (old, old))
    assert storage.open("abc123") is None
    assert storage.purge_expired() == 1 and not path.exists()


def test_redis_storage_expires_with_result_ttl(redis, settings) -> None:
    """PDF bytes in Redis carry the retention TTL."""
    storage = RedisStorage(redis, ttl_s=30)
    storage.put("job1", b"%PDF")
    assert read(storage.open("job1")) == b"%PDF"
    assert 0 < redis.ttl("pdfq:pdf:job1") <= 30
    storage.delete("job1")
    assert storage.open("job1") is None


def test_file_storage_streams_in_chunks(tmp_path: Path) -> None:
    """A stored PDF is read back in CHUNK_BYTES pieces, never as one whole buffer."""
    storage = FileStorage(tmp_path, ttl_s=60)
    content = os.urandom(3 * CHUNK_BYTES + 5)
    storage.put("big1", content)
    pdf = storage.open("big1")
    chunks = list(pdf)
    pdf.close()
    assert b"".join(chunks) == content and [len(c) for c in chunks] == [CHUNK_BYTES] * 3 + [5]


def test_concurrent_purges_neither_crash_nor_double_count(tmp_path: Path) -> None:
    """Workers purging the same directory at once never crash on a vanished file and remove each file once."""
    storage = FileStorage(tmp_path, ttl_s=60)
    old = time.time() - 120
    for round_ in range(3):
        for i in range(1500):
            storage.put(f"{i % 97:02d}job{round_}-{i}", b"%PDF")
        for path in tmp_path.glob("*/*"):
            os.utime(path, (old, old))
        with ThreadPoolExecutor(max_workers=4) as pool:
            removed = list(pool.map(lambda _: storage.purge_expired(), range(4)))
        assert sum(removed) == 1500 and list(tmp_path.glob("*/*")) == []


def test_redis_storage_refuses_pdfs_over_its_cap(redis) -> None:
    """A PDF over REDIS_STORAGE_MAX_BYTES fails permanently as pdf_too_large and nothing is stored."""
    storage = RedisStorage(redis, ttl_s=30)
    storage.put("fits", b"x" * REDIS_STORAGE_MAX_BYTES)
    with pytest.raises(PdfTooLarge) as refused:
        storage.put("huge", b"x" * (REDIS_STORAGE_MAX_BYTES + 1))
    assert refused.value.permanent and refused.value.code == "pdf_too_large"
    assert str(REDIS_STORAGE_MAX_BYTES) in str(refused.value)
    assert storage.open("huge") is None and redis.strlen("pdfq:pdf:fits") == REDIS_STORAGE_MAX_BYTES


def test_storage_chosen_by_url(redis, settings, tmp_path: Path) -> None:
    """STORAGE_URL picks the backend."""
    from dataclasses import replace

    assert isinstance(storage_from_settings(replace(settings, storage_url=f"file://{tmp_path}"), redis), FileStorage)
    assert isinstance(storage_from_settings(replace(settings, storage_url=settings.redis_url), redis), RedisStorage)
    shorthand = storage_from_settings(replace(settings, storage_url="redis"), redis)
    assert isinstance(shorthand, RedisStorage) and shorthand.connection is redis
    with pytest.raises(ValueError):
        storage_from_settings(replace(settings, storage_url="ftp://x"), redis)


def test_worker_queues_keep_priority_order() -> None:
    """WORKER_QUEUES selects a dedicated pool but never changes the drain order; unknown names are refused."""
    assert Settings.from_env({"WORKER_QUEUES": "high, urgent"}).worker_queues == ("urgent", "high")
    assert Settings.from_env({}).worker_queues == ("urgent", "high", "normal", "low")
    with pytest.raises(ConfigError):
        Settings.from_env({"WORKER_QUEUES": "urgent,default"})
