"""/v1/schedules: a tenant's recurring jobs (create, list, read, delete)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, url_for
from pydantic import ValidationError

from api.admission import json_body
from api.auth import require_tenant
from api.context import ctx
from api.errors import ApiError, field_problem, validation_problem
from api.jobs import validation_context
from shared import schedules
from shared.schema import ScheduleRequest

bp = Blueprint("schedules", __name__, url_prefix="/v1/schedules")

MAX_SCHEDULES_PER_TENANT = 100
"""Schedules one tenant may hold; each fires jobs forever, so creating more is refused (422)."""


def _find(schedule_id: str) -> schedules.Schedule:
    schedule = schedules.load(ctx().connection, schedule_id) if schedule_id.isalnum() else None
    if schedule is None or schedule.tenant != g.tenant:
        raise ApiError(404, "not_found", f"no schedule {schedule_id!r}")
    return schedule


@bp.post("")
@require_tenant
def create_schedule() -> Any:
    request = ScheduleRequest.model_validate(json_body(), context=validation_context())
    if request.job.options is not None and request.job.options.encryption is not None:
        # A schedule lives until deleted: its passwords would be a secret in a long-lived Redis key.
        raise ApiError(422, "validation_error", "schedules cannot encrypt: their passwords would have to be kept "
                       "for as long as the schedule lives", errors=[{"field": "job.options.encryption",
                                                                    "message": "not allowed in a schedule"}])
    if schedules.count_for(ctx().connection, g.tenant) >= MAX_SCHEDULES_PER_TENANT:
        raise field_problem("body", f"limit of {MAX_SCHEDULES_PER_TENANT} schedules reached",
                            f"a tenant may hold at most {MAX_SCHEDULES_PER_TENANT} schedules; delete one first")
    try:
        schedule, next_run = schedules.create(ctx().connection, g.tenant, request)
    except ValidationError as exc:  # the job as each run will create it (with metadata.schedule_id)
        raise validation_problem(exc, prefix="job") from None
    location = url_for("schedules.get_schedule", schedule_id=schedule.id)
    return schedule.to_resource(next_run), 201, {"Location": location}


@bp.get("")
@require_tenant
def list_schedules() -> Any:
    return {"schedules": [s.to_resource(n) for s, n in schedules.for_tenant(ctx().connection, g.tenant)]}


@bp.get("/<schedule_id>")
@require_tenant
def get_schedule(schedule_id: str) -> Any:
    schedule = _find(schedule_id)
    return schedule.to_resource(schedules.next_run_of(ctx().connection, schedule.id))


@bp.delete("/<schedule_id>")
@require_tenant
def delete_schedule(schedule_id: str) -> Response:
    schedules.delete(ctx().connection, _find(schedule_id))
    return Response(status=204)
