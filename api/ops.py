"""Liveness and readiness probes for platforms and load balancers."""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from redis.exceptions import RedisError

from api.context import ctx
from shared.workers import live_count

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Ready when Redis answers and at least one worker has a live registration (a killed one's lapses)."""
    checks: dict[str, Any] = {}
    try:
        ctx().connection.ping()
        checks["redis"] = "ok"
        workers = live_count(ctx().connection)
        checks["workers"] = workers if workers else "no worker registered"
    except RedisError as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["workers"] = "unknown"
    ready = checks["redis"] == "ok" and isinstance(checks["workers"], int)
    return {"status": "ok" if ready else "unready", "checks": checks}, 200 if ready else 503
