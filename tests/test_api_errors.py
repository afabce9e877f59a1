"""Every error the API gives is problem+json with the contract's status and code."""
from __future__ import annotations

import json

import pytest
from flask import Flask

from api.errors import PROBLEM_JSON
from shared.schema import MAX_JSON_DEPTH

pytestmark = pytest.mark.usefixtures("no_workers")


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == PROBLEM_JSON
    body = response.json
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status and body["code"] == code
    return body


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_missing_or_unknown_key_is_unauthorized(client, headers: dict[str, str]) -> None:
    """No key, a wrong key or another scheme answers 401 unauthorized."""
    assert_problem(client.get("/v1/jobs", headers=headers), 401, "unauthorized")
    assert_problem(client.post("/v1/jobs", json={"html": "x"}, headers=headers), 401, "unauthorized")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\"text\"", b"\xff\xfe"])
def test_body_that_is_not_a_json_object(client, auth, body: bytes) -> None:
    """Malformed JSON or a non-object body answers 400 invalid_json."""
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth.headers())
    assert_problem(response, 400, "invalid_json")


def test_wrong_media_type(client, auth) -> None:
    """A POST that is not application/json answers 415."""
    response = client.post("/v1/jobs", data="html=x", content_type="application/x-www-form-urlencoded",
                           headers=auth.headers())
    assert_problem(response, 415, "unsupported_media_type")


def test_payload_too_large(client, auth, settings) -> None:
    """A body over MAX_PAYLOAD_BYTES answers 413."""
    body = json.dumps({"html": "x" * (settings.max_payload_bytes + 10)})
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth.headers())
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize(("body", "field"), [
    ({"template": "nope.html"}, "template"),
    ({}, "body"),
    ({"html": "x", "template": "invoice.html"}, "body"),
    ({"html": "x", "priority": "asap"}, "priority"),
    ({"html": "x", "max_retries": 11}, "max_retries"),
    ({"html": "x", "timeout_s": 0}, "timeout_s"),
    ({"html": "x", "timeout_s": 601}, "timeout_s"),
    ({"html": "x", "data": [1]}, "data"),
    ({"html": "x", "metadata": {"blob": "y" * 5000}}, "metadata"),
    ({"html": "x", "webhook_url": "http://127.0.0.1:9/hook"}, "webhook_url"),
    ({"html": "x", "webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ({"html": "x", "unexpected": 1}, "unexpected"),
])
def test_validation_errors_name_the_field(client, auth, body: dict, field: str) -> None:
    """Schema violations answer 422 validation_error with the offending field named."""
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth.headers()), 422, "validation_error")
    assert field in [e["field"] for e in problem["errors"]]


def test_batch_error_names_the_item_and_enqueues_nothing(client, auth, redis) -> None:
    """One bad item in a batch rejects the whole batch, naming jobs[i].field."""
    body = {"jobs": [{"html": "<p>ok</p>"}, {"html": "<p>ok</p>"}, {"template": "missing.html"}]}
    problem = assert_problem(client.post("/v1/jobs/batch", json=body, headers=auth.headers()), 422,
                             "validation_error")
    assert problem["errors"][0]["field"] == "jobs[2].template"
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def test_unknown_job_and_route(client, auth) -> None:
    """Unknown ids and unknown paths answer 404 not_found as problem+json."""
    assert_problem(client.get("/v1/jobs/does-not-exist", headers=auth.headers()), 404, "not_found")
    assert_problem(client.get("/v1/jobs/../../etc/passwd", headers=auth.headers()), 404, "not_found")
    assert_problem(client.get("/nowhere"), 404, "not_found")


def test_method_not_allowed_keeps_allow_header(client, auth) -> None:
    """A known route with the wrong method answers 405 with Allow."""
    response = client.put("/v1/jobs", json={}, headers=auth.headers())
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "status=done", "cursor=nope"])
def test_bad_list_parameters(client, auth, query: str) -> None:
    """Out-of-range list parameters answer 422."""
    assert_problem(client.get(f"/v1/jobs?{query}", headers=auth.headers()), 422, "validation_error")


def test_unexpected_exception_is_problem_json_not_html(app: Flask, auth) -> None:
    """A bug in a view still answers problem+json 500 with no stack trace."""
    app.testing = False

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "secret internals" not in json.dumps(body) and "Traceback" not in response.text


def test_redis_down_is_backend_unavailable(env, auth) -> None:
    """With Redis unreachable the API answers 503 backend_unavailable with Retry-After."""
    from api import create_app
    from shared.config import Settings
    from tests.support import free_port

    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    client = create_app(Settings.from_env(env)).test_client()
    response = client.post("/v1/jobs", json={"html": "x"}, headers=auth.headers())
    assert_problem(response, 503, "backend_unavailable")
    assert response.headers["Retry-After"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["status"] == "unready"
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_needs_a_worker(client) -> None:
    """/readyz is 503 naming the missing worker when none is registered."""
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"redis": "ok", "workers": "no worker registered"}


NOT_ASCII_DIGITS = [pytest.param("\u00b2", id="superscript-two"), pytest.param("\u0661\u0662", id="arabic-indic"),
                    pytest.param("9" * 5000, id="5000-digits")]
"""Strings str.isdigit() accepts that int() refuses or should not see: '²', Arabic-Indic digits, a huge number."""


@pytest.mark.parametrize("raw", NOT_ASCII_DIGITS)
def test_limit_must_be_ascii_digits(client, auth, raw: str) -> None:
    """A list limit that is not plain ASCII digits answers 422 naming limit, never 500."""
    problem = assert_problem(client.get("/v1/jobs", query_string={"limit": raw}, headers=auth.headers()), 422,
                             "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["limit"]


@pytest.mark.parametrize("route", ["pdf", "events"])
@pytest.mark.parametrize("raw", NOT_ASCII_DIGITS)
def test_token_expiry_must_be_ascii_digits(client, route: str, raw: str) -> None:
    """A link token whose expiry is not plain ASCII digits answers 401 unauthorized, never 500."""
    response = client.get(f"/v1/jobs/{'0' * 32}/{route}", query_string={"token": f"{raw}.x"})
    assert_problem(response, 401, "unauthorized")


def nested(depth: int) -> dict:
    """A JSON object `depth` containers deep: {"a": {"a": ... {}}}."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("field", ["data", "metadata"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 600])
def test_deeply_nested_field_is_a_validation_error(client, auth, field: str, depth: int) -> None:
    """data or metadata nested deeper than MAX_JSON_DEPTH answers 422 naming the field."""
    response = client.post("/v1/jobs", json={"html": "x", field: nested(depth)}, headers=auth.headers())
    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize("field", ["data", "metadata"])
def test_nesting_at_the_limit_is_accepted(client, auth, field: str) -> None:
    """data or metadata exactly MAX_JSON_DEPTH deep is accepted and echoed back intact."""
    response = client.post("/v1/jobs", json={"html": "x", field: nested(MAX_JSON_DEPTH)}, headers=auth.headers())
    assert response.status_code == 202, response.json
    if field == "metadata":
        assert response.json["metadata"] == nested(MAX_JSON_DEPTH)


def test_deep_nesting_in_a_batch_item_names_its_index(client, auth) -> None:
    """A batch item with over-deep data answers 422 naming jobs[i].data."""
    body = {"jobs": [{"html": "x"}, {"html": "x", "data": nested(600)}]}
    problem = assert_problem(client.post("/v1/jobs/batch", json=body, headers=auth.headers()), 422,
                             "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["jobs[1].data"]


def test_nesting_too_deep_to_parse_is_invalid_json(client, auth) -> None:
    """A body nested past what the JSON parser can recurse into answers 400 invalid_json."""
    body = '{"html": "x", "data": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth.headers())
    assert_problem(response, 400, "invalid_json")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_invalid_json(client, auth, constant: str) -> None:
    """NaN and the infinities are not JSON, so a body holding one answers 400 invalid_json."""
    body = '{"html": "x", "metadata": {"ratio": ' + constant + "}}"
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth.headers())
    assert_problem(response, 400, "invalid_json")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_batch_route_with_another_method_is_405(client, auth, method: str) -> None:
    """GET or DELETE on /v1/jobs/batch is 405 method_not_allowed allowing POST, not a missing job called 'batch'."""
    response = getattr(client, method)("/v1/jobs/batch", headers=auth.headers())
    assert response.status_code == 405 and response.mimetype == "application/problem+json"
    assert response.json["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_every_validation_problem_has_one_title(client, auth) -> None:
    """A bad query parameter and a bad body are both `validation_error` problems under the same title."""
    bad_limit = client.get("/v1/jobs?limit=0", headers=auth.headers())
    bad_body = client.post("/v1/jobs", json={"html": "<p>x</p>", "priority": "soon"}, headers=auth.headers())
    assert bad_limit.status_code == bad_body.status_code == 422
    assert bad_limit.json["errors"][0]["field"] == "limit"
    assert bad_limit.json["title"] == bad_body.json["title"] == "Validation failed"
