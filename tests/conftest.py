"""Fixtures: a real redis-server, settings, the Flask app and client, auth headers, real workers."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page
from redis import Redis

from api import create_app
from shared import keys
from shared.config import Settings
from shared.connection import connect
from shared.fair_share import FairShare
from tests import browser as real_browser
from tests.support import ROOT, Honeypot, LiveServer, RedisServer, WorkerProcess, wait_until

TENANT_KEYS = {"acme": "acme-key", "globex": "globex-key", "ops": "ops-key"}
KEPT_PREFIXES = (b"rq:worker", b"rq:scheduler", b"rq:clean_registries", keys.template_preview("").encode())
"""Keys the long-lived test workers own (their registrations, the template previews they render at start-up)."""


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_env(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment every process of the system under test gets (API in-process, workers as children)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "STORAGE_", "API_KEYS"))}
    env.update({
        "REDIS_URL": redis_server.url(0),
        "STORAGE_URL": f"file://{tmp_path_factory.mktemp('pdfs')}",
        "API_KEYS": ",".join(f"{t}:{k}" for t, k in TENANT_KEYS.items()),
        "SECRET_KEY": "test-secret",
        "WEBHOOK_SECRET": "test-webhook-secret",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
        "MAX_ACTIVE_JOBS_PER_TENANT": "1000",
    })
    return env


@pytest.fixture
def env(base_env: dict[str, str]) -> dict[str, str]:
    """A copy a test may change before building settings or starting workers."""
    return dict(base_env)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def clean(connection: Redis) -> None:
    """Remove every key except the live workers' registrations."""
    doomed = [k for k in connection.scan_iter(count=1000) if not k.startswith(KEPT_PREFIXES)]
    for start in range(0, len(doomed), 500):
        connection.delete(*doomed[start:start + 500])


@pytest.fixture
def redis(settings: Settings) -> Iterator[Redis]:
    """A client on the real server, with the database cleaned before and after the test."""
    connection = connect(settings)
    clean(connection)
    yield connection
    clean(connection)


@pytest.fixture
def app(settings: Settings, redis: Redis) -> Flask:
    app = create_app(settings)
    app.testing = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class AuthActions:
    """Authorization headers per tenant."""

    def headers(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {TENANT_KEYS[tenant]}"}


@pytest.fixture
def auth() -> AuthActions:
    return AuthActions()


@pytest.fixture(scope="session")
def workers(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorkerProcess]]:
    """Two real worker processes for the whole session, on the default database."""
    logs = tmp_path_factory.mktemp("worker-logs")
    started = [WorkerProcess(base_env, logs / f"worker-{i}.log") for i in range(2)]
    connection = Redis.from_url(base_env["REDIS_URL"])
    for worker in started:
        worker.wait_registered(connection)
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start extra workers (with their own environment) that are stopped after the test."""
    spawned: list[WorkerProcess] = []

    def spawn(env: dict[str, str], wait: bool = True, cwd: Path = ROOT) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(spawned)}.log", cwd=cwd)
        spawned.append(worker)
        if wait:
            worker.wait_registered(Redis.from_url(env["REDIS_URL"]))
        return worker

    yield spawn
    for worker in spawned:
        worker.stop(timeout=10)


class JobsClient:
    """Submit and follow jobs through the HTTP API as a client would."""

    def __init__(self, client: FlaskClient, auth: AuthActions) -> None:
        self.client = client
        self.auth = auth

    def submit(self, body: dict[str, Any], tenant: str = "acme", **headers: str) -> dict[str, Any]:
        response = self.client.post("/v1/jobs", json=body, headers={**self.auth.headers(tenant), **headers})
        assert response.status_code == 202, response.json
        return response.json

    def get(self, job_id: str, tenant: str = "acme") -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}", headers=self.auth.headers(tenant))
        assert response.status_code == 200, response.json
        return response.json

    def wait(self, job_id: str, statuses: tuple[str, ...] = ("completed", "failed", "canceled"),
             tenant: str = "acme", timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.get(job_id, tenant)
            return job if job["status"] in statuses else None

        return wait_until(reached, timeout=timeout, interval=0.05)

    def wait_laying_out(self, job_id: str, attempt: int = 1, tenant: str = "acme") -> None:
        """Wait until the job's `attempt` is laying out, so its horse has recorded the attempt: a horse renders at
        a lower CPU priority, and under load it can show `started` a while before it gets that far."""
        def laying_out() -> bool:
            job = self.get(job_id, tenant)
            step = (job["progress"] or {}).get("step")
            return job["attempts"] == attempt and job["status"] == "started" and step == "layout"

        wait_until(laying_out, timeout=60)


@pytest.fixture
def jobs(client: FlaskClient, auth: AuthActions) -> JobsClient:
    return JobsClient(client, auth)


@pytest.fixture
def wait_for_empty_queues(redis: Redis, settings: Settings) -> Callable[[], None]:
    def wait() -> None:
        wait_until(lambda: all(w.total == 0 for w in FairShare(settings).waiting(redis).values()))
        time.sleep(0.05)

    return wait


IDLE_DB = 3
"""A database no long-lived worker listens on: jobs there stay queued until a test starts one."""


@pytest.fixture
def no_workers(env: dict[str, str], redis_server: RedisServer) -> None:
    """Point this test's app (list it before `client`) at a database without workers."""
    env["REDIS_URL"] = redis_server.url(IDLE_DB)


@pytest.fixture(scope="session")
def live_api(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real gunicorn server (gevent workers) on the default database."""
    server = LiveServer(base_env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield server
    server.stop()


PRIVATE_DB = 4
"""A database only the test's own spawned workers listen on."""


@pytest.fixture
def private_db(env: dict[str, str], redis_server: RedisServer) -> dict[str, str]:
    """Point this test's app (list it before `client`) and its spawned workers at a private database."""
    env["REDIS_URL"] = redis_server.url(PRIVATE_DB)
    env["WORKER_MAINTENANCE_INTERVAL_S"] = "1"
    return env


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium for the whole session."""
    yield from real_browser.launch()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page per test (no cookies or storage shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def honeypot() -> Iterator[Honeypot]:
    pot = Honeypot()
    yield pot
    pot.stop()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-7c1f")
    return secret
