"""The pods' filesystem and privileges, reproduced without a cluster: gunicorn and a worker run on a
read-only root with only a fresh tmpfs on /tmp (the manifests' `emptyDir`), without any capability and
with no-new-privileges (`capabilities: drop: [ALL]`, `allowPrivilegeEscalation: false`), with the kind
overlay's configuration, and still accept, render, store and serve a PDF.

Each process gets its own mount namespace (`unshare --mount`) where `/` is re-mounted read-only; the
rest of the machine is untouched. The user id stays 0 (without capabilities): this machine's Python lives
under /root, which another user cannot read, so the image's user 10001 is not reproduced here.
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests
from pypdf import PdfReader

from tests.support import ROOT, free_port, wait_until
from tests.test_deploy_kubernetes import config_name, container, find, render

SANDBOX = ("mount --bind / / && mount -o remount,bind,ro / && mount -t tmpfs -o size=512m,mode=1777 tmpfs /tmp"
           " && exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- \"$@\"")


def pod_env(base_env: dict[str, str], deployment: str) -> dict[str, str]:
    """What the kind overlay gives the container (ConfigMap, then its own env), on the test's Redis."""
    docs = render("overlays/kind")
    env = dict(find(docs, "ConfigMap", config_name(docs))["data"])
    env.update({e["name"]: e["value"] for e in container(find(docs, "Deployment", deployment)).get("env", [])})
    env.update({k: base_env[k] for k in ("API_KEYS", "SECRET_KEY", "WEBHOOK_SECRET")})  # the Secret's part
    env.update(REDIS_URL=base_env["REDIS_URL"].rsplit("/", 1)[0] + "/6", PYTHONPATH=str(ROOT),
               PYTHONDONTWRITEBYTECODE="1", PATH=os.environ["PATH"], HOME="/app")
    assert env["STORAGE_URL"] == "redis" and env["XDG_CACHE_HOME"].startswith("/tmp/")
    return env


def sandboxed(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    for tool in ("unshare", "setpriv", "mount"):
        assert shutil.which(tool), f"{tool} (util-linux) is needed"
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             SANDBOX, "sandbox", *command],
                            cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def readonly_pods(base_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The API and one worker, each in its read-only sandbox; yields the API's URL."""
    from redis import Redis

    api_env = pod_env(base_env, "pdfq-api")
    Redis.from_url(api_env["REDIS_URL"]).flushdb()
    port = free_port()
    api_env["PORT"] = str(port)
    api = sandboxed([sys.executable, "-m", "gunicorn", "--config", "api/gunicorn_conf.py", "api.wsgi:app"],
                    api_env, tmp_path / "api.log")
    worker = sandboxed([sys.executable, "-m", "worker"], pod_env(base_env, "pdfq-worker"), tmp_path / "worker.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        for process, name in ((api, "api"), (worker, "worker")):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}")
        try:
            return requests.get(f"{url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, timeout=60, interval=0.2)
        yield url
    finally:
        stop(worker)
        stop(api)


def test_api_and_worker_serve_a_pdf_on_a_read_only_root(readonly_pods: str, base_env: dict[str, str]) -> None:
    """/healthz and /readyz answer, and a submitted invoice is rendered, stored in Redis and downloaded,
    by processes that can write nothing but /tmp."""
    url = readonly_pods
    headers = {"Authorization": f"Bearer {base_env['API_KEYS'].split(',')[0].split(':')[1]}"}
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    templates = requests.get(f"{url}/v1/templates", headers=headers, timeout=5).json()["templates"]
    invoice = next(t for t in templates if t["name"] == "invoice.html")
    job = requests.post(f"{url}/v1/jobs", json={"template": "invoice.html", "data": invoice["sample_data"]},
                        headers=headers, timeout=10)
    assert job.status_code == 202, job.text

    def finished() -> dict | None:
        body = requests.get(f"{url}/v1/jobs/{job.json()['id']}", headers=headers, timeout=5).json()
        return body if body["status"] in ("completed", "failed") else None

    final = wait_until(finished, timeout=60, interval=0.2)
    assert final["status"] == "completed", final
    pdf = requests.get(f"{url}/v1/jobs/{final['id']}/pdf", headers=headers, timeout=10)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf.content))
    assert len(reader.pages) == final["result"]["pages"] >= 1
    assert "Invoice" in reader.pages[0].extract_text() or "INVOICE" in reader.pages[0].extract_text().upper()


def test_the_sandbox_really_is_read_only(tmp_path: Path) -> None:
    """The sandbox the test above uses refuses writes outside /tmp and holds no capability at all."""
    probe = sandboxed(["sh", "-c", f"touch {ROOT}/written-by-sandbox; echo rc=$?; touch /tmp/ok && echo tmp=$?;"
                       " grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"], {"PATH": os.environ["PATH"]},
                      tmp_path / "probe.log")
    probe.wait(timeout=30)
    output = (tmp_path / "probe.log").read_text()
    assert "Read-only file system" in output and "tmp=0" in output
    status = dict(line.split(":\t") for line in output.splitlines() if line.startswith(("Cap", "NoNew")))
    assert status == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1"}
    assert not (ROOT / "written-by-sandbox").exists()
