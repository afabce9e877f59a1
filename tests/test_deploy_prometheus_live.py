"""A real Prometheus (Debian's) scrapes a real gunicorn API: KEDA's queries return the single sample
KEDA needs, with the oldest job's wait, and the alert rules load and go pending on a real outage.

This stands in for the cluster's Prometheus, which KEDA and prometheus-adapter query.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from tests.support import ROOT, LiveServer, RedisServer, free_port, wait_until
from tests.test_deploy_kubernetes import find, render

SCRAPE_S = 1
"""Scrape and rule evaluation interval of the test's Prometheus, in seconds."""
QUIET_DB = 7
"""A database with no worker and no scheduler: jobs wait, and both are missing."""


class Prometheus:
    """`prometheus` on a free loopback port, scraping one target, with pdfq's alert rules."""

    def __init__(self, target: str, directory: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus (Debian package) is installed by scripts/bootstrap.sh"
        config = directory / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
            "rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
            "scrape_configs": [{"job_name": "pdfq", "static_configs": [{"targets": [target]}]}],
        }))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(directory / "prometheus.log", "ab")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=30, interval=0.1)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("prometheus exited")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.RequestException:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alerts(self) -> dict[str, str]:
        body = requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def quiet_api(base_env: dict[str, str], redis_server: RedisServer, tmp_path: Path) -> Iterator[LiveServer]:
    from redis import Redis

    env = {**base_env, "REDIS_URL": redis_server.url(QUIET_DB)}
    Redis.from_url(env["REDIS_URL"]).flushdb()
    server = LiveServer(env, tmp_path / "gunicorn.log")
    yield server
    server.stop()


@pytest.fixture
def prometheus(quiet_api: LiveServer, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(f"127.0.0.1:{quiet_api.port}", tmp_path)
    yield server
    server.stop()


def test_keda_queries_and_alerts_work_in_a_real_prometheus(quiet_api: LiveServer, prometheus: Prometheus,
                                                         base_env: dict[str, str]) -> None:
    """With a job waiting and no worker or scheduler, each KEDA trigger query returns exactly one sample (the
    normal queue's age growing, the others 0), and PdfqNoLiveWorker and PdfqSchedulerSilent go pending."""
    key = base_env["API_KEYS"].split(",")[0].split(":")[1]
    submitted = time.time()
    job = requests.post(f"{quiet_api.url}/v1/jobs", json={"html": "<p>waiting</p>", "priority": "normal"},
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert job.status_code == 202, job.text
    triggers = find(render("overlays/production"), "ScaledObject", "pdfq-worker")["spec"]["triggers"]
    queries = {t["metadata"]["query"].split('queue="')[1].split('"')[0]: t["metadata"]["query"] for t in triggers}

    def normal_age() -> float | None:
        result = prometheus.query(queries["normal"])
        return float(result[0]["value"][1]) if result and float(result[0]["value"][1]) >= 2 * SCRAPE_S else None

    age = wait_until(normal_age, timeout=60, interval=0.5)
    assert age <= time.time() - submitted + SCRAPE_S
    for queue, query in queries.items():
        result = prometheus.query(query)
        assert len(result) == 1 and result[0]["metric"] == {}, f"{queue}: KEDA needs a single element"
        if queue != "normal":
            assert float(result[0]["value"][1]) == 0.0
    wait_until(lambda: {"PdfqNoLiveWorker", "PdfqSchedulerSilent"} <= set(prometheus.alerts()), timeout=60,
               interval=0.5)
    states = prometheus.alerts()
    assert states["PdfqNoLiveWorker"] == states["PdfqSchedulerSilent"] == "pending", "their `for` has not passed"
    assert "PdfqRedisUnreachable" not in states and "PdfqMetricsMissing" not in states
