"""GET /v1/jobs/<id>/manifest: what a completed job's PDF was made from."""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g

from api.auth import require_tenant
from api.context import ctx
from api.errors import ApiError
from api.lookup import find_job
from shared import keys
from shared.records import JobStatus, status_of

bp = Blueprint("manifest", __name__)


@bp.get("/v1/jobs/<job_id>/manifest")
@require_tenant
def job_manifest(job_id: str) -> Any:
    job = find_job(job_id, g.tenant)
    status = status_of(job)
    if status != JobStatus.COMPLETED:
        raise ApiError(409, "not_ready", f"the job is {status.value}, not completed", job_status=status.value)
    raw = ctx().connection.hget(job.key, keys.JOB_MANIFEST_FIELD)
    if raw is None:  # completed before manifests were kept
        raise ApiError(404, "not_found", f"no manifest was recorded for job {job_id!r}")
    return json.loads(raw)
