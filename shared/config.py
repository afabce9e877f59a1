"""Settings: every environment variable the service reads, parsed once, with named defaults."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from shared.errors import ConfigError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STORAGE_URL = "file://./data/pdfs"
DEFAULT_RESULT_TTL_S = 86_400
"""How long, in seconds, a finished job's PDF and record are kept."""
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest accepted request body, in bytes."""
DEFAULT_MAX_ACTIVE_JOBS_PER_TENANT = 100
"""Queued + started jobs one tenant may hold before `429 tenant_limit`."""
DEFAULT_MAX_QUEUED_JOBS = 10_000
"""Jobs all queues together may hold before `503 queue_full`."""
DEFAULT_LINK_TTL_S = 3600
"""Lifetime, in seconds, of the signed tokens in `links.pdf` / `links.events`."""
DEFAULT_MAX_PAGES = 500
"""A document longer than this many pages fails instead of exhausting the worker."""
DEFAULT_WORKER_SHUTDOWN_GRACE_S = 25
"""On SIGTERM a worker lets its job run this many seconds, then returns it to the queue (Heroku kills at 30)."""
DEFAULT_WORKER_MAINTENANCE_INTERVAL_S = 15
"""How often, in seconds, workers re-queue abandoned jobs and purge expired PDFs (RQ's default is 600)."""
DEFAULT_WORKER_MEMORY_LIMIT_MB = 2048
"""Address-space cap of one render process (work-horse), in MiB; past it the job fails `memory_limit`."""
DEFAULT_SCHEDULER_INTERVAL_S = 5
"""Seconds between scheduler passes; tenants' cron runs fire within this delay of their minute."""
DEFAULT_SSE_KEEPALIVE_S = 15
"""Seconds between keep-alive comments on a quiet event stream (Heroku's router cuts at 55 s idle)."""
DEFAULT_BROWSER_MAX_JOBS = 100
"""Chromium-engine prints one browser serves before a fresh one replaces it (long-lived Chromium grows)."""
DEFAULT_BROWSER_MEMORY_LIMIT_MB = 1024
"""Memory (PSS, all its processes) past which a worker's browser is replaced before its next print, in MiB."""
DEFAULT_TENANT_WEIGHT = 1
"""Weight of a tenant TENANT_WEIGHTS does not name: its share of workers among tenants with waiting jobs."""
DEFAULT_MAX_RUNNING_JOBS_PER_TENANT = 0
"""Jobs of one tenant that may render at once; 0 means no limit."""
DEFAULT_RATE_LIMIT_PER_MINUTE = 0
"""Jobs one tenant may submit per minute (a batch counts each job); 0 means off."""
DEV_TENANT = "dev"
DEV_KEY = "dev-key"
DEV_SECRET_KEY = "dev-secret-key-not-for-production"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _queues(raw: str) -> tuple[str, ...]:
    """WORKER_QUEUES=urgent,high gives a dedicated pool; the order is always urgent, high, normal, low."""
    order = ("urgent", "high", "normal", "low")
    wanted = {q.strip() for q in raw.split(",") if q.strip()} or set(order)
    if not wanted <= set(order):
        raise ConfigError(f"WORKER_QUEUES may name only {', '.join(order)}")
    return tuple(q for q in order if q in wanted)


def parse_tenant_weights(raw: str) -> dict[str, int]:
    """Turn `acme:3,globex:1` into {tenant: weight}; weights are whole numbers of at least 1."""
    weights: dict[str, int] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        tenant, sep, weight = pair.partition(":")
        if not sep or not tenant.strip() or not weight.strip().isdigit() or int(weight) < 1:
            raise ConfigError("TENANT_WEIGHTS must look like 'acme:3,globex:1' (whole weights >= 1)")
        weights[tenant.strip()] = int(weight)
    return weights


def parse_api_keys(raw: str) -> dict[str, str]:
    """Turn `tenant1:key1,tenant2:key2` into {key: tenant}; a tenant may hold several keys."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not tenant.strip() or not key.strip():
            raise ConfigError("API_KEYS must look like 'tenant1:key1,tenant2:key2'")
        keys[key.strip()] = tenant.strip()
    return keys


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    redis_ssl_cert_reqs: str | None = None
    api_keys: dict[str, str] = field(default_factory=dict)
    storage_url: str = DEFAULT_STORAGE_URL
    s3_endpoint_url: str | None = None
    result_ttl_s: int = DEFAULT_RESULT_TTL_S
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_active_jobs_per_tenant: int = DEFAULT_MAX_ACTIVE_JOBS_PER_TENANT
    max_queued_jobs: int = DEFAULT_MAX_QUEUED_JOBS
    allow_private_webhooks: bool = False
    allowed_asset_hosts: frozenset[str] = frozenset()
    link_ttl_s: int = DEFAULT_LINK_TTL_S
    secret_key: str = DEV_SECRET_KEY
    webhook_secret: str = ""
    dashboard_user: str = "admin"
    dashboard_password: str = ""
    app_env: str = "development"
    max_pages: int = DEFAULT_MAX_PAGES
    worker_shutdown_grace_s: int = DEFAULT_WORKER_SHUTDOWN_GRACE_S
    worker_maintenance_interval_s: int = DEFAULT_WORKER_MAINTENANCE_INTERVAL_S
    worker_memory_limit_mb: int = DEFAULT_WORKER_MEMORY_LIMIT_MB
    scheduler_interval_s: int = DEFAULT_SCHEDULER_INTERVAL_S
    sse_keepalive_s: int = DEFAULT_SSE_KEEPALIVE_S
    worker_queues: tuple[str, ...] = ("urgent", "high", "normal", "low")
    fair_share: bool = True
    tenant_weights: dict[str, int] = field(default_factory=dict)
    max_running_jobs_per_tenant: int = DEFAULT_MAX_RUNNING_JOBS_PER_TENANT
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    templates_dir: Path = PROJECT_ROOT / "templates"
    chromium_path: str | None = None
    """The browser of the Chromium engine (CHROMIUM_PATH, else `chromium` on PATH); None: that engine is off."""
    browser_max_jobs: int = DEFAULT_BROWSER_MAX_JOBS
    browser_memory_limit_mb: int = DEFAULT_BROWSER_MEMORY_LIMIT_MB

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    def for_api(self) -> Settings:
        """The API needs keys: production refuses to serve without them or with the dev key."""
        if self.production and not self.api_keys:
            raise ConfigError("APP_ENV=production needs API_KEYS")
        if self.production and DEV_KEY in self.api_keys:
            raise ConfigError("APP_ENV=production refuses the development key 'dev-key'")
        if self.api_keys:
            return self
        log.warning("API_KEYS is unset: serving the single development key for tenant 'dev'")
        return replace(self, api_keys={DEV_KEY: DEV_TENANT})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; in production refuse the insecure development fallbacks."""
        env = os.environ if env is None else env
        production = env.get("APP_ENV", "").strip() == "production"
        raw_keys = env.get("API_KEYS", "").strip()
        api_keys = parse_api_keys(raw_keys) if raw_keys else {}
        secret_key = env.get("SECRET_KEY", "").strip()
        if not secret_key:
            if production:
                raise ConfigError("APP_ENV=production needs SECRET_KEY")
            secret_key = DEV_SECRET_KEY
        webhook_secret = env.get("WEBHOOK_SECRET", "")
        if production and not webhook_secret:
            raise ConfigError("APP_ENV=production needs WEBHOOK_SECRET (webhook signatures with an empty key are forgeable)")
        hosts = frozenset(h.strip().lower() for h in env.get("ALLOWED_ASSET_HOSTS", "").split(",") if h.strip())
        return cls(
            redis_url=env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL,
            redis_ssl_cert_reqs=env.get("REDIS_SSL_CERT_REQS", "").strip() or None,
            api_keys=api_keys,
            storage_url=env.get("STORAGE_URL", "").strip() or DEFAULT_STORAGE_URL,
            s3_endpoint_url=env.get("S3_ENDPOINT_URL", "").strip() or None,
            result_ttl_s=_int(env, "RESULT_TTL_S", DEFAULT_RESULT_TTL_S),
            max_payload_bytes=_int(env, "MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES),
            max_active_jobs_per_tenant=_int(env, "MAX_ACTIVE_JOBS_PER_TENANT", DEFAULT_MAX_ACTIVE_JOBS_PER_TENANT),
            max_queued_jobs=_int(env, "MAX_QUEUED_JOBS", DEFAULT_MAX_QUEUED_JOBS),
            allow_private_webhooks=_flag(env, "ALLOW_PRIVATE_WEBHOOKS"),
            allowed_asset_hosts=hosts,
            link_ttl_s=_int(env, "LINK_TTL_S", DEFAULT_LINK_TTL_S),
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            dashboard_user=env.get("DASHBOARD_USER", "").strip() or "admin",
            dashboard_password=env.get("DASHBOARD_PASSWORD", ""),
            app_env=env.get("APP_ENV", "").strip() or "development",
            max_pages=_int(env, "MAX_PAGES", DEFAULT_MAX_PAGES),
            worker_shutdown_grace_s=_int(env, "WORKER_SHUTDOWN_GRACE_S", DEFAULT_WORKER_SHUTDOWN_GRACE_S),
            worker_maintenance_interval_s=_int(env, "WORKER_MAINTENANCE_INTERVAL_S",
                                               DEFAULT_WORKER_MAINTENANCE_INTERVAL_S),
            worker_memory_limit_mb=_int(env, "WORKER_MEMORY_LIMIT_MB", DEFAULT_WORKER_MEMORY_LIMIT_MB),
            scheduler_interval_s=_int(env, "SCHEDULER_INTERVAL_S", DEFAULT_SCHEDULER_INTERVAL_S),
            sse_keepalive_s=_int(env, "SSE_KEEPALIVE_S", DEFAULT_SSE_KEEPALIVE_S),
            worker_queues=_queues(env.get("WORKER_QUEUES", "")),
            chromium_path=env.get("CHROMIUM_PATH", "").strip() or shutil.which("chromium"),
            browser_max_jobs=_int(env, "BROWSER_MAX_JOBS", DEFAULT_BROWSER_MAX_JOBS),
            browser_memory_limit_mb=_int(env, "BROWSER_MEMORY_LIMIT_MB", DEFAULT_BROWSER_MEMORY_LIMIT_MB),
            fair_share=env.get("FAIR_SHARE", "").strip().lower() not in {"0", "false", "no", "off"},
            tenant_weights=parse_tenant_weights(env.get("TENANT_WEIGHTS", "")),
            max_running_jobs_per_tenant=_int(env, "MAX_RUNNING_JOBS_PER_TENANT", DEFAULT_MAX_RUNNING_JOBS_PER_TENANT),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", DEFAULT_RATE_LIMIT_PER_MINUTE),
        )
