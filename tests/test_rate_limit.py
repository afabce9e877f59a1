"""RATE_LIMIT_PER_MINUTE: 429 rate_limited at the right count, RateLimit-* headers, and the allowance refilling."""
from __future__ import annotations

import pytest

from tests.conftest import AuthActions
from tests.support import wait_until

FAST = {"html": "<p>x</p>"}
LIMIT = 30
"""Jobs per minute in these tests: one more job is allowed every 2 s."""


@pytest.fixture
def limited(env: dict[str, str]) -> None:
    """List before `client`: the app reads the limit from its settings."""
    env["RATE_LIMIT_PER_MINUTE"] = str(LIMIT)


@pytest.mark.usefixtures("limited", "no_workers")
def test_rate_limit_refuses_past_the_limit_and_refills(client, auth: AuthActions) -> None:
    """30 jobs pass (a batch counting each), the 31st is 429 with Retry-After, and one passes again ~2 s later."""
    remaining = []
    for _ in range(10):
        response = client.post("/v1/jobs", json=FAST, headers=auth.headers())
        assert response.status_code == 202
        assert response.headers["RateLimit-Limit"] == str(LIMIT)
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == list(range(LIMIT - 1, LIMIT - 11, -1))
    response = client.post("/v1/jobs/batch", json={"jobs": [FAST] * 20}, headers=auth.headers())
    assert response.status_code == 202 and response.headers["RateLimit-Remaining"] == "0"
    assert 55 <= int(response.headers["RateLimit-Reset"]) <= 60
    refused = client.post("/v1/jobs", json=FAST, headers=auth.headers())
    assert refused.status_code == 429 and refused.json["code"] == "rate_limited"
    assert refused.mimetype == "application/problem+json"
    assert refused.headers["Retry-After"] in ("1", "2") and refused.headers["RateLimit-Remaining"] == "0"
    assert client.post("/v1/jobs", json=FAST, headers=auth.headers("globex")).status_code == 202, "per tenant"
    listed = client.get("/v1/jobs?limit=200", headers=auth.headers()).json["jobs"]
    assert len(listed) == LIMIT, "a refused submission creates no job"

    def passes() -> bool:
        return client.post("/v1/jobs", json=FAST, headers=auth.headers()).status_code == 202

    wait_until(passes, timeout=5, interval=0.25)
    again = client.post("/v1/jobs", json=FAST, headers=auth.headers())
    assert again.status_code == 429 and again.headers["Retry-After"] in ("1", "2")


@pytest.mark.usefixtures("limited", "no_workers")
def test_batch_counts_each_job_and_refusals_carry_headers(client, auth: AuthActions) -> None:
    """A batch larger than what is left is refused whole; a batch over the limit itself can never pass."""
    assert client.post("/v1/jobs/batch", json={"jobs": [FAST] * 25}, headers=auth.headers()).status_code == 202
    refused = client.post("/v1/jobs/batch", json={"jobs": [FAST] * 6}, headers=auth.headers())
    assert refused.status_code == 429 and refused.json["code"] == "rate_limited"
    assert refused.headers["RateLimit-Remaining"] == "5" and int(refused.headers["Retry-After"]) == 2
    too_big = client.post("/v1/jobs/batch", json={"jobs": [FAST] * (LIMIT + 1)}, headers=auth.headers("globex"))
    assert too_big.status_code == 429 and str(LIMIT) in too_big.json["detail"]
    invalid = client.post("/v1/jobs", json={"html": "<p>x</p>", "priority": "soon"}, headers=auth.headers())
    assert invalid.status_code == 422 and invalid.headers["RateLimit-Remaining"] == "5", "an invalid body costs nothing"


@pytest.mark.usefixtures("no_workers")
def test_without_a_limit_no_ratelimit_headers(client, auth: AuthActions) -> None:
    """RATE_LIMIT_PER_MINUTE unset: submissions carry no RateLimit-* headers and are never rate_limited."""
    response = client.post("/v1/jobs/batch", json={"jobs": [FAST] * 100}, headers=auth.headers())
    assert response.status_code == 202 and "RateLimit-Limit" not in response.headers
