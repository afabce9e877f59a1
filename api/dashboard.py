"""rq-dashboard at /admin/rq behind HTTP basic auth, or not mounted at all without a password."""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, request, send_from_directory
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from api.context import EXTENSION
from api.errors import ApiError
from shared import job_secrets
from shared.config import Settings
from shared.job_state import JobState
from shared.records import RERUNNABLE_STATUSES, status_of
from shared.requeue import is_render_job, rerun_once

DASHBOARD_PREFIX = "/admin/rq"
DASHBOARD_BLUEPRINT = "rq_dashboard"
REQUEUE_JOB_ENDPOINT = f"{DASHBOARD_BLUEPRINT}.requeue_job_view"
REQUEUE_ALL_ENDPOINT = f"{DASHBOARD_BLUEPRINT}.requeue_all"
DASHBOARD_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
DASHBOARD_PAGE_CSP = DASHBOARD_CSP.replace("script-src 'self' 'unsafe-inline'",
                                           "script-src 'self' 'unsafe-inline' 'unsafe-eval'")
"""rq-dashboard's HTML pages build their tables with underscore's `_.template` (a Function constructor):
without 'unsafe-eval' every table stays "Loading...". Its JSON and assets keep the stricter policy."""


def _dashboard_favicon(filename: str) -> Response:
    """Its pages link a favicon through the app's `static` endpoint: serve rq-dashboard's own, nothing else."""
    if filename != "favicon.ico":
        raise ApiError(404, "not_found", "this service serves no static files")
    import rq_dashboard

    return send_from_directory(Path(rq_dashboard.__file__).parent / "static", "favicon.ico",
                               mimetype="image/vnd.microsoft.icon")


def _rerunnable(job_id: str, connection: Redis) -> Job:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        raise ApiError(404, "not_found", f"no job {job_id!r}") from None
    if is_render_job(job) and status_of(job) not in RERUNNABLE_STATUSES:
        raise ApiError(409, "not_retryable", f"only failed or canceled jobs can be requeued; "
                                             f"this one is {status_of(job).value}")
    if is_render_job(job) and job_secrets.lost_on_end(JobState.from_job(job)):
        raise ApiError(409, "not_retryable", "an encrypted job's passwords are deleted when it ends; submit it again")
    return job


def _requeue(job_id: str, connection: Redis) -> None:
    """Our render jobs get the reset of POST /v1/jobs/{id}/retry; other jobs RQ's plain requeue."""
    job = _rerunnable(job_id, connection)
    if is_render_job(job):
        rerun_once(connection, current_app.extensions[EXTENSION].settings, job_id,
                   admit=lambda: _rerunnable(job_id, connection))
    else:
        job.requeue()


def _requeue_failed(queue_name: str, connection: Redis) -> int:
    """Every job of the queue's failed registry that still has a record; how many were requeued."""
    job_ids = FailedJobRegistry(queue_name, connection=connection).get_job_ids(cleanup=False)
    jobs = [job for job in Job.fetch_many(job_ids, connection=connection)
            if job is not None and not (is_render_job(job) and job_secrets.lost_on_end(JobState.from_job(job)))]
    for job in jobs:
        _requeue(job.id, connection)
    return len(jobs)


def _cross_site() -> bool:
    """A browser holding the dashboard's basic-auth login would send it along with a forged POST from any
    site; browsers say where a request comes from (Sec-Fetch-Site, Origin), so refuse other origins."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") != request.host_url.rstrip("/")


def _answer_requeue(connection: Redis) -> tuple[dict[str, Any], dict[str, str]] | None:
    """rq-dashboard's requeue actions, answered here (same JSON as its views) so our job records stay true."""
    no_store = {"Cache-Control": "no-store"}
    if request.endpoint == REQUEUE_JOB_ENDPOINT:
        _requeue(request.view_args["job_id"], connection)  # type: ignore[index]
        return {"status": "OK"}, no_store
    if request.endpoint == REQUEUE_ALL_ENDPOINT:
        if request.method != "POST":  # its route takes GET too: a link or <img> on any page could fire it
            raise ApiError(405, "method_not_allowed", "requeue all takes POST only", headers={"Allow": "POST"})
        count = _requeue_failed(request.view_args["queue_name"], connection)  # type: ignore[index]
        return {"status": "OK", "count": count}, no_store
    return None


def _use_app_connection(app: Flask, connection: Redis, redis_url: str) -> None:
    """Give rq-dashboard the app's own client (TLS options such as REDIS_SSL_CERT_REQS, retries).

    It would build its own from RQ_DASHBOARD_REDIS_URL, at setup and again on every request to a
    numbered instance (its push_rq_connection hook), so that hook is dropped from this app.
    """
    from rq_dashboard.web import push_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = (redis_url,)  # now only listed (password masked) on its pages
    app.redis_conn = connection  # type: ignore[attr-defined]  # where rq-dashboard's views look for it
    app.before_request_funcs[DASHBOARD_BLUEPRINT].remove(push_rq_connection)


def init_app(app: Flask, settings: Settings) -> None:
    """Mount the dashboard read-mostly: job deletion and queue emptying stay off (they have no CSRF guard)."""
    if not settings.dashboard_password:
        return
    import rq_dashboard  # Imported only where mounted: it pulls in its own Flask blueprint and assets.

    connection = app.extensions[EXTENSION].connection
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PREFIX)
    _use_app_connection(app, connection, settings.redis_url)
    if "static" not in app.view_functions:
        # Its pages link a favicon through the app's `static` endpoint, which this API does not serve.
        app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=_dashboard_favicon)

    # An app-level hook: a before_request on rq-dashboard's module-global blueprint would be
    # registered again by every create_app() and break the second one.
    @app.before_request
    def require_dashboard_login() -> tuple[dict[str, Any], dict[str, str]] | None:
        if request.blueprint != DASHBOARD_BLUEPRINT:
            return None
        credentials = request.authorization
        user_ok = credentials is not None and hmac.compare_digest(
            (credentials.username or "").encode(), settings.dashboard_user.encode())
        password_ok = credentials is not None and hmac.compare_digest(
            (credentials.password or "").encode(), settings.dashboard_password.encode())
        if not (user_ok and password_ok):
            raise ApiError(401, "unauthorized", "the dashboard needs DASHBOARD_USER / DASHBOARD_PASSWORD",
                           headers={"WWW-Authenticate": 'Basic realm="pdfq dashboard"'})
        if (request.view_args or {}).get("instance_number", 0) != 0:
            raise ApiError(404, "not_found", "the dashboard shows one Redis, instance 0")
        if request.method == "POST" and _cross_site():
            raise ApiError(403, "forbidden", "dashboard actions must come from the dashboard's own pages")
        return _answer_requeue(connection)

    @app.after_request
    def dashboard_headers(response: Response) -> Response:
        if request.blueprint == DASHBOARD_BLUEPRINT:
            page = response.mimetype == "text/html"
            response.headers["Content-Security-Policy"] = DASHBOARD_PAGE_CSP if page else DASHBOARD_CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response
