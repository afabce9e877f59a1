"""/openapi.json: a valid OpenAPI 3.1 document of every route, and a property-based run finds no 5xx."""
from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.openapi import UNDOCUMENTED_ENDPOINTS
from shared import keys
from tests.conftest import TENANT_KEYS

NO_WORKER_503_PATHS = ("/readyz", "/v1/templates/{name}/preview.png")
"""Routes whose documented 503 means "no worker has started", as on the fuzzed app's worker-less database."""


def test_document_is_valid_openapi_31(client) -> None:
    """The document validates against the OpenAPI 3.1 specification."""
    document = client.get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented(app: Flask, client) -> None:
    """Each route the app serves (except the dashboard, the web page and this document) has an operation per method."""
    paths = client.get("/openapi.json").json["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS or rule.endpoint.startswith("rq_dashboard."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {path}"
    assert {"/v1/jobs", "/v1/jobs/{job_id}/pdf", "/v1/schedules", "/metrics"} <= set(paths)


def test_request_schema_comes_from_the_validating_model(client) -> None:
    """The JobRequest schema carries the model's own limits, so docs and validation cannot drift."""
    job = client.get("/openapi.json").json["components"]["schemas"]["JobRequest"]
    assert job["properties"]["max_retries"]["maximum"] == 10
    assert job["properties"]["timeout_s"]["maximum"] == 600
    assert job["additionalProperties"] is False


@pytest.fixture
def api_schema(no_workers: None, app: Flask) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_no_5xx_and_documented_shapes(case: schemathesis.Case) -> None:
    """Generated requests (valid and invalid) never get a 5xx, and responses match the documented schemas."""
    headers = {"Authorization": f"Bearer {TENANT_KEYS['acme']}"}
    if case.path in NO_WORKER_503_PATHS:
        case.call_and_validate(headers=headers, checks=[response_schema_conformance])
        return
    case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])


@pytest.mark.timeout(300)  # 50 derandomized examples of 4 steps: about 70 s alone, more beside other test processes
def test_stateful_fuzzing_creates_jobs_and_follows_links(api_schema: schemathesis.BaseSchema, redis: Redis) -> None:
    """From the document alone, schemathesis' stateful phase creates jobs and follows the links to them, no 5xx."""
    calls: list[tuple[str, int]] = []

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {TENANT_KEYS['acme']}"}}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            calls.append((f"{case.method} {case.path}", response.status_code))

        def validate_response(self, response: Any, case: schemathesis.Case, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            checks = [response_schema_conformance]
            if case.path not in NO_WORKER_503_PATHS:
                checks.append(not_a_server_error)
            case.validate_response(response, checks=checks)

    Workflow.run(settings=settings(max_examples=50, stateful_step_count=4, deadline=None, derandomize=True,
                                   suppress_health_check=list(HealthCheck)))
    assert redis.zcard(keys.tenant_jobs("acme")) > 0, "no valid job was generated from the document"
    assert ("POST /v1/jobs", 202) in calls
    followed = {call for call in calls if call[0].startswith(("GET /v1/jobs/{job_id}", "DELETE /v1/jobs/{job_id}"))}
    assert any(status in (200, 409) for _, status in followed), f"no link to a created job was followed: {followed}"
