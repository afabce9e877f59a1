"""The one place a Redis client is built from settings."""
from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.config import Settings

SOCKET_TIMEOUT_S = 10
"""Longest a single Redis command may block before the caller sees an error, in seconds."""
HEALTH_CHECK_INTERVAL_S = 15
"""Idle connections are pinged after this many seconds so a restarted Redis is noticed."""


def connect(settings: Settings) -> Redis:
    """Build a client that reconnects by itself after a Redis restart (a few quick retries)."""
    options: dict[str, object] = {
        "socket_connect_timeout": 5,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if settings.redis_url.startswith("rediss://") and settings.redis_ssl_cert_reqs:
        # Heroku Data for Redis presents a self-signed certificate; opt in via REDIS_SSL_CERT_REQS=none.
        options["ssl_cert_reqs"] = None if settings.redis_ssl_cert_reqs == "none" else settings.redis_ssl_cert_reqs
    return Redis.from_url(settings.redis_url, **options)
