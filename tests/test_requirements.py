"""requirements.txt alone carries every package the web, worker and scheduler processes import."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

PROCESS_IMPORTS = """
import json, sys
from importlib import metadata
import gunicorn.workers.ggevent          # web: the gevent worker class in api/gunicorn_conf.py
import api.wsgi                          # web: the app, with the dashboard mounted
import worker.__main__, worker.jobs, worker.maintenance, worker.webhooks, worker.scheduler
import boto3                             # STORAGE_URL=s3://... imports it on first use
owners = metadata.packages_distributions()
print(json.dumps(sorted({d for m in list(sys.modules) for d in owners.get(m.partition('.')[0], [])})))
"""
OPTIONAL_IMPORTS = {"cryptography", "setuptools", "certifi", "lxml"}
"""Loaded only because they are present: redis-py tries cryptography, a venv's .pth loads setuptools' hook,
botocore tries certifi's CA bundle (else its own), fontTools tries lxml (needed only to subset SVG fonts)."""


def runtime_closure() -> set[str]:
    """Distributions requirements.txt installs: its pins plus, recursively, what they require."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pending = [Requirement(line) for line in (re.sub(r"#.*", "", raw).strip() for raw in lines) if line]
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    while pending:
        requirement = pending.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        for raw in metadata.distribution(name).requires or []:
            dependency = Requirement(raw)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras | {""})
            if wanted:
                pending.append(dependency)
    return names


def test_processes_import_only_runtime_requirements(base_env: dict[str, str]) -> None:
    """A deploy that installs requirements.txt only (make run, Dockerfile, Heroku) can start every process."""
    env = {**base_env, "DASHBOARD_PASSWORD": "pw"}
    output = subprocess.run([sys.executable, "-c", PROCESS_IMPORTS], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=True).stdout
    imported = {canonicalize_name(d) for d in json.loads(output.splitlines()[-1])}
    imported -= {"pdfq", *OPTIONAL_IMPORTS}
    assert "gevent" in imported and "weasyprint" in imported  # the probe saw the real processes' imports
    assert imported - runtime_closure() == set()
