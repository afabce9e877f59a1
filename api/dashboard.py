"""rq-dashboard at /admin/rq behind HTTP basic auth, or not mounted at all without a password."""
from __future__ import annotations

import hmac

from flask import Flask, Response, request

from api.errors import ApiError
from shared.config import Settings

DASHBOARD_PREFIX = "/admin/rq"
DASHBOARD_BLUEPRINT = "rq_dashboard"
DASHBOARD_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")


def _no_static_files(filename: str) -> Response:
    raise ApiError(404, "not_found", "this service serves no static files")


def init_app(app: Flask, settings: Settings) -> None:
    """Mount the dashboard read-mostly: job deletion and queue emptying stay off (they have no CSRF guard)."""
    if not settings.dashboard_password:
        return
    import rq_dashboard  # Imported only where mounted: it pulls in its own Flask blueprint and assets.
    from rq_dashboard.web import setup_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PREFIX)
    setup_rq_connection(app)
    if "static" not in app.view_functions:
        # Its pages link a favicon through the app's `static` endpoint, which this API does not serve.
        app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=_no_static_files)

    # An app-level hook: a before_request on rq-dashboard's module-global blueprint would be
    # registered again by every create_app() and break the second one.
    @app.before_request
    def require_dashboard_login() -> None:
        if request.blueprint != DASHBOARD_BLUEPRINT:
            return
        credentials = request.authorization
        user_ok = credentials is not None and hmac.compare_digest(
            (credentials.username or "").encode(), settings.dashboard_user.encode())
        password_ok = credentials is not None and hmac.compare_digest(
            (credentials.password or "").encode(), settings.dashboard_password.encode())
        if not (user_ok and password_ok):
            raise ApiError(401, "unauthorized", "the dashboard needs DASHBOARD_USER / DASHBOARD_PASSWORD",
                           headers={"WWW-Authenticate": 'Basic realm="pdfq dashboard"'})

    @app.after_request
    def dashboard_headers(response: Response) -> Response:
        if request.blueprint == DASHBOARD_BLUEPRINT:
            response.headers["Content-Security-Policy"] = DASHBOARD_CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response
