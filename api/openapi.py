"""GET /openapi.json: OpenAPI 3.1 built from the pydantic models that validate requests and shape responses."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.jobs import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from shared import resources as r
from shared.previews import DEFAULT_PREVIEW_WIDTH_PX, MAX_PREVIEW_WIDTH_PX, MIN_PREVIEW_WIDTH_PX
from shared.records import JobStatus
from shared.schema import BatchRequest, JobRequest, ScheduleRequest

bp = Blueprint("openapi", __name__)


def _ref_name(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


UNDOCUMENTED_ENDPOINTS = {"static", "openapi.openapi", "web.index", "web.static"}
"""Routes that are not part of the API: static files, this document itself, the web page and the dashboard."""
ID_PATTERN = "^[A-Za-z0-9_-]+$"
PATH_PATTERNS = {"name": "^[A-Za-z0-9_.-]+$"}
"""Path parameters that are not ids: template names end in `.html`."""
COMMON_ERRORS = {401: "Missing or unknown key", 503: "Redis unreachable (backend_unavailable)"}


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: dict[int, tuple[str, type[BaseModel] | None]]
    body: type[BaseModel] | None = None
    auth: bool = True
    media: dict[int, str] = field(default_factory=dict)
    query: tuple[str, ...] = ()


QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "status": {"type": "string", "enum": [s.value for s in JobStatus]},
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": DEFAULT_LIST_LIMIT},
    "cursor": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "token": {"type": "string"},
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "width": {"type": "integer", "minimum": MIN_PREVIEW_WIDTH_PX, "maximum": MAX_PREVIEW_WIDTH_PX,
              "default": DEFAULT_PREVIEW_WIDTH_PX},
}
"""What each query parameter accepts, as the views check it."""
BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "application/pdf": {"type": "string", "contentMediaType": "application/pdf"},
    "text/event-stream": {  # one event of the stream
        "type": "object", "required": ["event", "data", "id"],
        "description": "Events `status` (on each change) and a final `done`, each with an `id` naming the job "
                       "state and `data` holding the Job resource as JSON; send `Last-Event-ID` to resume.",
        "properties": {"event": {"enum": ["status", "done"]}, "id": {"type": "string", "minLength": 1},
                       "data": {"type": "string", "contentMediaType": "application/json",
                                "contentSchema": _ref_name("JobResource")}}},
    "text/plain": {"type": "string"},
    "image/png": {"type": "string", "contentMediaType": "image/png"},
}
"""Schemas of the responses that are not JSON documents."""
JOB_LINKS = {name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
             for name, operation in (("GetJob", "jobs_get_job"), ("CancelJob", "jobs_cancel_job"),
                                     ("RetryJob", "jobs_retry_job"), ("DownloadPdf", "jobs_download_pdf"),
                                     ("JobEvents", "events_job_events"), ("JobPreview", "previews_job_preview"))}
SCHEDULE_LINKS = {name: {"operationId": operation, "parameters": {"schedule_id": "$response.body#/id"}}
                  for name, operation in (("GetSchedule", "schedules_get_schedule"),
                                          ("DeleteSchedule", "schedules_delete_schedule"))}
BATCH_LINKS = {"GetFirstJob": {"operationId": "jobs_get_job", "parameters": {"job_id": "$response.body#/jobs/0/id"}}}
LINKS: dict[tuple[str, int], dict[str, Any]] = {
    ("jobs.create_job", 202): JOB_LINKS, ("jobs.retry_job", 202): JOB_LINKS, ("jobs.create_batch", 202): BATCH_LINKS,
    ("schedules.create_schedule", 201): SCHEDULE_LINKS}
"""OpenAPI links from a created resource to the operations on it, which stateful clients (and fuzzers) follow."""

JOB_ERRORS = {404: ("Unknown job, or another tenant's", r.Problem)}
BODY_ERRORS = {400: ("Body is not a JSON object", r.Problem), 413: ("Body too large", r.Problem),
               415: ("Not application/json", r.Problem), 422: ("Validation failed", r.Problem)}
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("jobs.create_job", "POST"): Operation("Submit a render job", {
        202: ("Accepted", r.JobResource), **BODY_ERRORS, 429: ("Tenant limit or rate limit (rate_limited)", r.Problem),
        503: ("Queue full or backend unavailable", r.Problem)}, body=JobRequest),
    ("jobs.create_batch", "POST"): Operation("Submit 1..500 jobs at once", {
        202: ("Accepted", r.BatchCreated), **BODY_ERRORS, 429: ("Tenant limit or rate limit (rate_limited)", r.Problem)}, body=BatchRequest),
    ("jobs.list_jobs", "GET"): Operation("The tenant's jobs, newest first", {
        200: ("Jobs", r.JobList), 422: ("Bad parameters", r.Problem)}, query=("status", "limit", "cursor")),
    ("jobs.get_job", "GET"): Operation("A job", {200: ("The job", r.JobResource), **JOB_ERRORS}),
    ("jobs.cancel_job", "DELETE"): Operation("Cancel a queued or running job", {
        200: ("Canceled", r.JobResource), **JOB_ERRORS, 409: ("Already finished", r.Problem)}),
    ("jobs.retry_job", "POST"): Operation("Re-run a failed or canceled job", {
        202: ("Queued again", r.JobResource), **JOB_ERRORS, 409: ("Not retryable", r.Problem)}),
    ("jobs.download_pdf", "GET"): Operation("Download the PDF (Bearer key or ?token=)", {
        200: ("The PDF", None), **JOB_ERRORS, 409: ("Not ready", r.Problem), 410: ("Expired", r.Problem)},
        media={200: "application/pdf"}, query=("token",)),
    ("events.job_events", "GET"): Operation("Server-Sent Events: status changes, then done", {
        200: ("text/event-stream of `status` events and a final `done`", None), **JOB_ERRORS},
        media={200: "text/event-stream"}, query=("token",)),
    ("manifest.job_manifest", "GET"): Operation("What a completed job's PDF was made from", {
        200: ("The render manifest", r.Manifest), **JOB_ERRORS, 409: ("Not completed", r.Problem)}),
    ("batches.get_batch", "GET"): Operation("A batch's jobs counted by status", {
        200: ("Counts", r.BatchStatus), 404: ("Unknown batch, or another tenant's", r.Problem)}),
    ("batches.batch_events", "GET"): Operation("Server-Sent Events: each job's end, then done", {
        200: ("text/event-stream of `job` events and a final `done` with the counts", None),
        404: ("Unknown batch, or another tenant's", r.Problem)}, media={200: "text/event-stream"}),
    ("catalog.list_templates", "GET"): Operation("Built-in templates with sample data", {
        200: ("Templates", r.TemplateList)}),
    ("previews.job_preview", "GET"): Operation("PNG of one page of the PDF (Bearer key or ?token=)", {
        200: ("The page as PNG", None), **JOB_ERRORS, 409: ("Not ready", r.Problem),
        410: ("Expired", r.Problem), 422: ("Bad page or width (page past the end)", r.Problem)},
        media={200: "image/png"}, query=("page", "width", "token")),
    ("previews.template_preview_png", "GET"): Operation("PNG of page 1 of a template with its sample data", {
        200: ("The page as PNG", None), 404: ("Unknown template", r.Problem),
        503: ("No worker has rendered it yet", r.Problem)}, media={200: "image/png"}),
    ("schedules.create_schedule", "POST"): Operation("Create a recurring job", {
        201: ("Created", r.ScheduleResource), **BODY_ERRORS}, body=ScheduleRequest),
    ("schedules.list_schedules", "GET"): Operation("The tenant's schedules", {200: ("Schedules", r.ScheduleList)}),
    ("schedules.get_schedule", "GET"): Operation("A schedule", {
        200: ("The schedule", r.ScheduleResource), 404: ("Unknown schedule", r.Problem)}),
    ("schedules.delete_schedule", "DELETE"): Operation("Delete a schedule", {
        204: ("Deleted", None), 404: ("Unknown schedule", r.Problem)}),
    ("metrics.queue_stats", "GET"): Operation("Fleet-wide queue statistics", {200: ("Statistics", r.QueueStats)}),
    ("metrics.metrics", "GET"): Operation("Prometheus metrics (text format 0.0.4)", {200: ("Metrics", None)},
                                          auth=False, media={200: "text/plain"}),
    ("ops.healthz", "GET"): Operation("Liveness", {200: ("Serving", r.Health)}, auth=False),
    ("ops.readyz", "GET"): Operation("Readiness: Redis answers and a worker is registered", {
        200: ("Ready", r.Readiness), 503: ("Not ready, with the failing check", r.Readiness)}, auth=False),
}


def _schemas() -> dict[str, Any]:
    models = [(m, "validation") for m in (JobRequest, BatchRequest, ScheduleRequest)]
    models += [(m, "serialization") for m in (r.JobResource, r.JobList, r.BatchCreated, r.TemplateList,
                                               r.ScheduleResource, r.ScheduleList, r.QueueStats, r.Health,
                                               r.Readiness, r.Problem, r.Manifest, r.BatchStatus)]
    _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return definitions["$defs"]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return _ref_name(model.__name__)


def _operation(endpoint: str, op: Operation, path_params: list[str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, model) in {**{s: (d, r.Problem) for s, d in COMMON_ERRORS.items() if op.auth},
                                         **op.responses}.items():
        media = op.media.get(status, "application/problem+json" if model is r.Problem else "application/json")
        responses[str(status)] = {"description": description}
        if status != 204:
            responses[str(status)]["content"] = {media: {"schema": _ref(model) if model else BODY_SCHEMAS[media]}}
        if (endpoint, status) in LINKS:
            responses[str(status)]["links"] = LINKS[(endpoint, status)]
    parameters = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": PATH_PATTERNS.get(p, ID_PATTERN)}} for p in path_params]
    parameters += [{"name": q, "in": "query", "required": False, "schema": QUERY_PARAMETERS[q]} for q in op.query]
    spec: dict[str, Any] = {"operationId": endpoint.replace(".", "_"), "summary": op.summary,
                            "responses": responses, "parameters": parameters}
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    spec["security"] = [{"bearer": []}] if op.auth else []
    return spec


@lru_cache(maxsize=4)
def build_document(routes: tuple[tuple[str, str, tuple[str, ...]], ...]) -> dict[str, Any]:
    """Every (rule, endpoint, methods) must have an Operation: an undocumented route is an error, not a gap."""
    paths: dict[str, dict[str, Any]] = {}
    for rule, endpoint, methods in routes:
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)
        path_params = re.findall(r"{([^}]+)}", path)
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = _operation(endpoint, OPERATIONS[(endpoint, method)],
                                                                    path_params)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pdfq", "version": "1.0.0",
                 "description": "Asynchronous HTML-to-PDF rendering. Errors are application/problem+json."},
        "paths": paths,
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def api_routes() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    routes = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS or rule.endpoint.startswith("rq_dashboard."):
            continue
        methods = tuple(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        routes.append((rule.rule, rule.endpoint, methods))
    return tuple(sorted(routes))


@bp.get("/openapi.json")
def openapi() -> Any:
    return build_document(api_routes())
