"""PNG previews: a job's pages (rasterised on first request, then kept beside its PDF) and the templates' page 1."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from functools import lru_cache
from typing import Any, Callable, TypeVar

from flask import Blueprint, Response, g, request
from redis.exceptions import RedisError

from api.auth import require_tenant, require_tenant_or_token
from api.context import ctx
from api.errors import ApiError
from api.lookup import completed_job
from shared.errors import StorageError
from shared.job_state import JobState
from shared.previews import (DEFAULT_PREVIEW_WIDTH_PX, MAX_PREVIEW_WIDTH_PX, MIN_PREVIEW_WIDTH_PX, job_preview_name,
                             render_png, template_preview)
from shared.schema import ascii_int

bp = Blueprint("previews", __name__)
log = logging.getLogger(__name__)

T = TypeVar("T")
PREVIEW_CACHE_CONTROL = "private, max-age=300"
TEMPLATE_PREVIEW_RETRY_AFTER_S = 10
"""A template's preview appears once a worker has started; that is how long a client waits before asking again."""


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    value = default if raw is None else ascii_int(raw)
    if value is None or not low <= value <= high:
        raise ApiError(422, "validation_error", f"{name} must be an integer {low}..{high}",
                       errors=[{"field": name, "message": f"must be an integer {low}..{high}"}])
    return value


@lru_cache(maxsize=1)
def _render_thread() -> Any:
    from gevent.threadpool import ThreadPool

    return ThreadPool(1)


def _off_the_loop(work: Callable[[], T]) -> T:
    """Under gunicorn's gevent workers, rasterise in one real thread: PDFium runs without the GIL (ctypes),
    so the process's event loop keeps serving other requests and event streams meanwhile."""
    if "gevent.monkey" in sys.modules:
        from gevent.monkey import is_module_patched

        if is_module_patched("threading"):
            return _render_thread().apply(work)
    return work()


def not_modified(etag: str) -> Response | None:
    """304 when the client already holds this PNG (If-None-Match), decided before any store is read."""
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": PREVIEW_CACHE_CONTROL})
    return None


def png_response(content: bytes, etag: str) -> Response:
    return Response(content, mimetype="image/png", headers={
        "ETag": f'"{etag}"', "Cache-Control": PREVIEW_CACHE_CONTROL, "Content-Length": str(len(content))})


@bp.get("/v1/jobs/<job_id>/preview.png")
@require_tenant_or_token("preview")
def job_preview(job_id: str) -> Any:
    page = _query_int("page", 1, 1, ctx().settings.max_pages)
    width = _query_int("width", DEFAULT_PREVIEW_WIDTH_PX, MIN_PREVIEW_WIDTH_PX, MAX_PREVIEW_WIDTH_PX)
    job = completed_job(job_id, g.tenant)
    result = JobState.from_job(job).result
    assert result is not None, "a completed job has its result"
    if page > result["pages"]:
        raise ApiError(422, "validation_error", f"page {page} is past the end: the PDF has {result['pages']} page(s)",
                       errors=[{"field": "page", "message": f"must be 1..{result['pages']}"}])
    etag = f"{result['sha256'][:32]}-p{page}-w{width}"
    if (unchanged := not_modified(etag)) is not None:
        return unchanged
    storage = ctx().storage
    name = job_preview_name(page, width)
    png = storage.open_beside(job.id, name)
    if png is None:
        pdf = storage.open(job.id)
        if pdf is None:
            raise ApiError(410, "expired", "the PDF was removed after its retention period")
        with contextlib.closing(pdf):
            content = b"".join(pdf)
        png = _off_the_loop(lambda: render_png(content, page, width))
        _keep(job.id, name, png)
    return png_response(png, etag)


def _keep(job_id: str, name: str, png: bytes) -> None:
    """Keeping the preview saves the next request's render; a store that fails now must not fail this one."""
    try:
        ctx().storage.put_beside(job_id, name, png)
    except (RedisError, StorageError, OSError) as exc:
        log.warning("preview not kept", extra={"job_id": job_id, "error": type(exc).__name__})


@bp.get("/v1/templates/<name>/preview.png")
@require_tenant
def template_preview_png(name: str) -> Any:
    if name not in ctx().templates:
        raise ApiError(404, "not_found", f"no template {name!r}; GET /v1/templates lists them")
    png = template_preview(ctx().connection, name)
    if png is None:
        raise ApiError(503, "preview_unavailable", "no worker has rendered this template's preview yet",
                       headers={"Retry-After": str(TEMPLATE_PREVIEW_RETRY_AFTER_S)})
    etag = hashlib.sha256(png).hexdigest()[:32]
    unchanged = not_modified(etag)
    return unchanged if unchanged is not None else png_response(png, etag)
