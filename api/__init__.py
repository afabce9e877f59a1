"""The Flask app factory: wiring only (settings, Redis, storage, blueprints, error handlers)."""
from __future__ import annotations

import logging

from flask import Flask, Response
from redis import Redis
from redis.exceptions import RedisError

from api import (batches, catalog, dashboard, errors, events, jobs, manifest, metrics, openapi, ops, previews,
                 rate_limit, schedules, web)
from api.context import EXTENSION, ApiContext
from api.job_feed import JobChangeFeed
from shared.config import Settings
from shared.connection import connect
from shared.fair_share import FairShare
from shared.storage import storage_from_settings
from shared.template_catalog import load_catalog

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = (settings or Settings.from_env()).for_api()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    connection = connect(settings)
    fair = FairShare(settings)
    app.extensions[EXTENSION] = ApiContext(
        settings=settings,
        connection=connection,
        storage=storage_from_settings(settings, connection),
        templates=load_catalog(settings.templates_dir),
        job_feed=JobChangeFeed(connection),
        fair=fair,
    )
    errors.init_app(app)
    for blueprint in (jobs.bp, events.bp, manifest.bp, batches.bp, catalog.bp, previews.bp, ops.bp, metrics.bp,
                      schedules.bp, openapi.bp, web.bp):
        app.register_blueprint(blueprint)
    dashboard.init_app(app, settings)
    rate_limit.init_app(app)
    app.after_request(_security_headers)
    _publish_policy(fair, connection)
    return app


def _publish_policy(fair: FairShare, connection: Redis) -> None:
    """An API may start while Redis is away; scripts then apply each caller's own policy until a process publishes."""
    try:
        fair.publish(connection)
    except RedisError:
        log.warning("fair-share policy not published: redis unreachable")


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype in ("application/json", errors.PROBLEM_JSON):
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    return response
