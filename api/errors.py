"""ApiError and the handlers that turn every failure into problem+json; nothing else renders errors."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from pydantic import ValidationError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from shared.errors import StorageError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
BACKEND_RETRY_AFTER_S = 5

_HTTP_CODES = {
    400: ("invalid_json", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


class ApiError(Exception):
    """An error with the contract's status and machine code; `extra` adds body fields."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").capitalize()
        self.headers = headers or {}
        self.extra = extra


def problem(error: ApiError) -> Response:
    body = {
        "type": f"https://pdfq.dev/problems/{error.code.replace('_', '-')}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        **error.extra,
    }
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_JSON)
    response.headers.update(error.headers)
    return response


VALIDATION_TITLE = "Validation failed"
"""The one title of every `validation_error` problem, whichever check raised it."""


def field_problem(field: str, message: str, detail: str | None = None) -> ApiError:
    """422 `validation_error` naming one bad field (a query parameter, a header, the body)."""
    return ApiError(422, "validation_error", detail or f"{field}: {message}", title=VALIDATION_TITLE,
                    errors=[{"field": field, "message": message}])


def validation_problem(exc: ValidationError, prefix: str = "") -> ApiError:
    """422 naming each bad field as a dotted path, e.g. `data.items` or `jobs[3].template`."""
    errors = []
    for item in exc.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = item["msg"].removeprefix("Value error, ")
        errors.append({"field": path or "body", "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return ApiError(422, "validation_error", detail, title=VALIDATION_TITLE, errors=errors)


def _handle_api_error(error: ApiError) -> Response:
    return problem(error)


def _handle_http(exc: HTTPException) -> Response:
    code, title = _HTTP_CODES.get(exc.code or 500, ("http_error", exc.name))
    headers = {k: v for k, v in exc.get_response().headers.items() if k in ("Allow", "Retry-After")}
    detail = exc.description if exc.code != 404 else f"no resource at {request.path}"
    return problem(ApiError(exc.code or 500, code, detail, title=title, headers=headers))


def _handle_validation(exc: ValidationError) -> Response:
    return problem(validation_problem(exc))


def _handle_redis(exc: RedisError) -> Response:
    log.warning("redis unavailable", extra={"error": type(exc).__name__, "path": request.path})
    return problem(ApiError(503, "backend_unavailable", "the job store is unreachable; retry shortly",
                            headers={"Retry-After": str(BACKEND_RETRY_AFTER_S)}))


def _handle_storage(exc: StorageError) -> Response:
    log.warning("storage unavailable", extra={"error": str(exc), "path": request.path})
    return problem(ApiError(503, "backend_unavailable", "the PDF store is unreachable; retry shortly",
                            headers={"Retry-After": str(BACKEND_RETRY_AFTER_S)}))


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.path, "method": request.method})
    return problem(ApiError(500, "internal_error", "an unexpected error occurred; it has been logged"))


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(ValidationError, _handle_validation)
    app.register_error_handler(RedisError, _handle_redis)
    app.register_error_handler(StorageError, _handle_storage)
    app.register_error_handler(Exception, _handle_unexpected)
