"""GET /v1/templates: the built-in templates with a sample `data` object for each."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.auth import require_tenant
from api.context import ctx

bp = Blueprint("catalog", __name__)


@bp.get("/v1/templates")
@require_tenant
def list_templates() -> Any:
    return {"templates": [
        {"name": info.name, "description": info.description, "sample_data": info.sample_data}
        for info in ctx().templates.values()
    ]}
