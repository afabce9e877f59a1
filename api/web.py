"""GET /: the web page for people (plain HTML, CSS and one ES module from api/static/), under a strict CSP."""
from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/web")

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""No inline script or style, nothing from another origin; blob: images are the template previews the page
fetches with the API key (an <img> cannot send an Authorization header)."""


@bp.get("/")
def index() -> Response:
    return bp.send_static_file("index.html")


@bp.after_request
def page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag) on each load, so a deploy shows at once
    return response
