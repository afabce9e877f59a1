"""POST /v1/jobs/batch: all-or-nothing, then ordinary jobs that complete."""
from __future__ import annotations

import pytest

from tests.conftest import AuthActions, JobsClient


@pytest.mark.usefixtures("workers")
def test_batch_of_twenty_completes_in_priority_queues(jobs: JobsClient, client, auth: AuthActions) -> None:
    """A batch answers 202 with one job resource per item, in order, and every job completes."""
    body = {"jobs": [{"html": "<p>{{ n }}</p>", "data": {"n": i}, "priority": "high" if i % 2 else "low"}
                     for i in range(20)]}
    response = client.post("/v1/jobs/batch", json=body, headers=auth.headers())
    assert response.status_code == 202
    created = response.json["jobs"]
    assert [j["priority"] for j in created] == ["low", "high"] * 10
    assert len({j["id"] for j in created}) == 20
    assert all(jobs.wait(j["id"])["status"] == "completed" for j in created)


@pytest.mark.parametrize(("count", "status"), [(0, 422), (501, 422)])
def test_batch_size_bounds(no_workers: None, client, auth: AuthActions, count: int, status: int) -> None:
    """Batches hold 1..500 jobs; outside that nothing is enqueued."""
    response = client.post("/v1/jobs/batch", json={"jobs": [{"html": "x"}] * count}, headers=auth.headers())
    assert response.status_code == status and response.json["code"] == "validation_error"
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def test_batch_respects_tenant_limit(no_workers: None, env: dict[str, str], redis, auth: AuthActions) -> None:
    """A batch that would pass MAX_ACTIVE_JOBS_PER_TENANT is refused whole with 429."""
    from api import create_app
    from shared.config import Settings

    env["MAX_ACTIVE_JOBS_PER_TENANT"] = "5"
    client = create_app(Settings.from_env(env)).test_client()
    response = client.post("/v1/jobs/batch", json={"jobs": [{"html": "x"}] * 6}, headers=auth.headers())
    assert response.status_code == 429 and response.json["code"] == "tenant_limit"
    assert client.post("/v1/jobs/batch", json={"jobs": [{"html": "x"}] * 5}, headers=auth.headers()).status_code == 202


@pytest.mark.usefixtures("workers")
def test_batch_counts_by_status_until_done(jobs: JobsClient, client, auth: AuthActions) -> None:
    """A batch answers a batch_id; GET /v1/batches/{id} counts its jobs by status and says when all have ended."""
    body = {"jobs": [{"html": "<p>{{ n }}</p>", "data": {"n": i}} for i in range(6)]
            + [{"html": "{{ missing }}", "max_retries": 0}]}
    response = client.post("/v1/jobs/batch", json=body, headers=auth.headers())
    assert response.status_code == 202
    batch_id, created = response.json["batch_id"], response.json["jobs"]
    assert response.json["links"]["self"] == f"/v1/batches/{batch_id}"
    for job in created:
        jobs.wait(job["id"])
    batch = client.get(f"/v1/batches/{batch_id}", headers=auth.headers()).json
    assert batch["total"] == 7 and batch["done"] is True
    assert batch["counts"]["completed"] == 6 and batch["counts"]["failed"] == 1
    assert sum(batch["counts"].values()) == 7
    assert batch["job_ids"] == [j["id"] for j in created]


def test_batch_counts_while_queued_and_tenant_isolation(no_workers: None, client, auth: AuthActions) -> None:
    """Queued jobs count as queued; another tenant's batch id answers 404 like an unknown one."""
    response = client.post("/v1/jobs/batch", json={"jobs": [{"html": "x"}] * 3}, headers=auth.headers())
    batch_id = response.json["batch_id"]
    batch = client.get(f"/v1/batches/{batch_id}", headers=auth.headers()).json
    assert batch["counts"]["queued"] == 3 and batch["done"] is False
    for path in (f"/v1/batches/{batch_id}", f"/v1/batches/{batch_id}/events", "/v1/batches/nope"):
        other = client.get(path, headers=auth.headers("globex" if "nope" not in path else "acme"))
        assert other.status_code == 404 and other.json["code"] == "not_found"
