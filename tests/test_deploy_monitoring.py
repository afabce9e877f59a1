"""Alert rules pass promtool's checks and unit tests, every alert has a test and a runbook line, and the
alerts, dashboard and autoscalers use only metrics that /metrics really exports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from shared import metrics
from tests.test_deploy_config import ROOT
from tests.test_deploy_kubernetes import render, scaling_targets

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "pdfq.json"
ALERT_AGE_FACTOR = 2
"""PdfqQueueAgeOverTarget fires at this multiple of the autoscaler's per-queue age target."""
PROMQL_WORDS = {"max", "min", "sum", "by", "rate", "time", "absent", "on", "or", "and", "count", "histogram_quantile",
                "le", "without", "instance", "queue", "code", "outcome", "priority"}


def promtool() -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool comes with Debian's prometheus package (scripts/bootstrap.sh)"
    return binary


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_alert_rules_pass_promtool_check() -> None:
    """promtool check rules accepts alerts.yml (syntax, PromQL, templates)."""
    result = subprocess.run([promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    """promtool test rules: every scenario in alerts.test.yml fires or stays quiet as expected."""
    result = subprocess.run([promtool(), "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a scenario where it fires and one where it must not."""
    cases = [case for test in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == set(alerts()) and quiet == set(alerts())


def test_issue_areas_each_have_an_alert() -> None:
    """Alerts cover no live worker, queue age, failures by code (template apart from capacity), Redis,
    webhooks and the scheduler, each with a severity, a summary and a runbook line in the README."""
    assert {"PdfqNoLiveWorker", "PdfqQueueAgeOverTarget", "PdfqCapacityFailures", "PdfqTemplateErrors",
            "PdfqRedisUnreachable", "PdfqWebhooksFailing", "PdfqSchedulerSilent"} <= set(alerts())
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("#### Alerts"):]
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"] == f"README.md#alerts ({name})"
        row = next((line for line in table.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row and len(row.split("|")) >= 5, f"{name} has a row (severity, fires when, runbook) in the README"


def test_queue_age_alert_sits_at_twice_the_scaling_targets() -> None:
    """PdfqQueueAgeOverTarget's per-queue thresholds are twice the autoscaler's targets."""
    expr = alerts()["PdfqQueueAgeOverTarget"]["expr"]
    thresholds = {q: float(v) for q, v in re.findall(r'queue="(\w+)"\}\) > (\d+)', expr)}
    targets = scaling_targets(render("overlays/production"))
    assert thresholds == {q: t * ALERT_AGE_FACTOR for q, t in targets.items()}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses: promtool checks them as the expressions of recording rules."""
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())]}]}))
    result = subprocess.run([promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_throughput_queues_render_times_failures_and_workers() -> None:
    """One panel each for throughput, queue depth and age per priority, render percentiles, failures by code
    and workers, laid out without overlaps, all on the datasource variable."""
    board = dashboard()
    by_expr = {target["expr"]: panel for panel in board["panels"] for target in panel["targets"]}
    wanted = ["rate(pdf_jobs_completed_total", "max by (queue) (pdf_queue_depth)",
              "max by (queue) (pdf_queue_oldest_age_seconds)", "histogram_quantile(0.95",
              "max by (code) (rate(pdf_jobs_failed_by_code_total", "max(pdf_workers)"]
    for fragment in wanted:
        assert any(fragment in expr for expr in by_expr), fragment
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        area = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not cells & area, panel["title"]
        cells |= area
        assert panel["datasource"]["uid"] == "${datasource}"
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers that are not functions, keywords or labels)."""
    expr = re.sub(r'"[^"]*"', "", re.sub(r"\{[^}]*\}", "", expr))
    expr = re.sub(r"\[[^]]*\]", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - PROMQL_WORDS
    return {n for n in names if not n.startswith("pdfq:") and not re.fullmatch(r"\d+[smh]?", n)}


def exported(client, redis: Redis) -> set[str]:
    """Sample names of a real /metrics scrape, after each kind of event has happened once."""
    with redis.pipeline() as pipe:
        metrics.record_failed(pipe, priority="normal", tenant="acme", code="timeout")
        pipe.execute()
    metrics.record_scheduler_pass(redis)
    response = client.get("/metrics")
    assert response.status_code == 200
    return {s.name for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_alerts_dashboard_and_autoscalers_use_only_exported_metrics(client, redis: Redis) -> None:
    """Every metric the alerts, the dashboard, KEDA's queries and the HPA name is in a real /metrics scrape."""
    names = exported(client, redis)
    used: dict[str, set[str]] = {"alerts": set(), "dashboard": set(), "keda": set(), "hpa": set()}
    for rule in rules():
        used["alerts"] |= metric_names(rule["expr"])
    for expr in dashboard_exprs():
        used["dashboard"] |= metric_names(expr)
    for trigger in next(d for d in render("overlays/production") if d["kind"] == "ScaledObject")["spec"]["triggers"]:
        used["keda"] |= metric_names(trigger["metadata"]["query"])
    hpa = next(d for d in render("overlays/production-hpa") if d["kind"] == "HorizontalPodAutoscaler")
    used["hpa"] = {m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    for source, found in used.items():
        assert found and found <= names, f"{source}: {found - names}"
    assert "pdf_queue_oldest_age_seconds" in used["keda"] & used["hpa"] & used["alerts"] & used["dashboard"]


@pytest.mark.parametrize("expr,expected", [
    ('max by (queue) (pdf_queue_oldest_age_seconds{queue="urgent"}) > 30', {"pdf_queue_oldest_age_seconds"}),
    ("histogram_quantile(0.5, max by (le) (rate(pdf_render_seconds_bucket[5m])))", {"pdf_render_seconds_bucket"}),
    ("time() - max(pdf_scheduler_last_pass_timestamp_seconds)", {"pdf_scheduler_last_pass_timestamp_seconds"}),
])
def test_metric_name_extraction(expr: str, expected: set[str]) -> None:
    """The name extraction above finds exactly the metrics of an expression (so the check is not vacuous)."""
    assert metric_names(expr) == expected
