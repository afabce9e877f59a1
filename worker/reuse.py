"""Result reuse and the render manifest: what a PDF was made from, and the same tenant's identical render served again."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.job import Job, JobStatus as RQStatus

from shared import keys
from shared.job_state import JobState
from shared.records import iso, utcnow
from shared.storage import PdfStorage
from worker.render import RenderedPdf
from worker.render_cache import TemplateTree

NOT_RENDER_INPUTS = frozenset({"cache"})
"""Job arguments that do not change the PDF (metadata, filename, priority, webhook_url are not arguments at all)."""


def engine_versions() -> dict[str, str]:
    return {"weasyprint": version("weasyprint"), "pydyf": version("pydyf"), "jinja2": version("jinja2"),
            "python": platform.python_version()}


def system_fonts_sha256() -> str:
    """The machine's font files (path, size, mtime), so that installing or updating a font changes every render key."""
    try:
        listing = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    return hashlib.sha256("\n".join(sorted(set(listing.splitlines()))).encode()).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass(frozen=True)
class RenderEnvironment:
    """Everything besides a job's own arguments that decides its bytes, fixed for the worker's life."""

    tree: TemplateTree
    engine: dict[str, str]
    sha256: str

    @classmethod
    def of(cls, tree: TemplateTree) -> RenderEnvironment:
        engine = engine_versions()
        return cls(tree, engine, hashlib.sha256(_canonical(
            {"templates": tree.sha256, "engine": engine, "system_fonts": system_fonts_sha256()})).hexdigest())

    def inputs_sha256(self, render_args: dict[str, Any]) -> str:
        """One hash over the job's render arguments and this environment (templates/ bytes, engine, fonts)."""
        args = {k: v for k, v in render_args.items() if k not in NOT_RENDER_INPUTS}
        return hashlib.sha256(_canonical({"args": args, "environment": self.sha256})).hexdigest()

    def template_entry(self, template: str | None, html: str | None) -> dict[str, str]:
        if template is not None:
            return {"name": template, "sha256": self.tree.files.get(f"{self.tree.root_uri}{template}", "")}
        return {"name": "inline", "sha256": hashlib.sha256((html or "").encode()).hexdigest()}


def manifest(environment: RenderEnvironment, *, job_id: str, inputs_sha256: str, template: dict[str, str],
             rendered: RenderedPdf, options: dict[str, Any] | None, rendered_at: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "inputs_sha256": inputs_sha256,
        "template": template,
        "assets": [{"url": url, "sha256": digest} for url, digest in rendered.assets],
        "fonts": [{"family": family, "sha256": digest} for family, digest in rendered.fonts],
        "engine": environment.engine,
        "options": options or {},
        "pdf_sha256": rendered.sha256,
        "rendered_at": iso(rendered_at),
    }


@dataclass(frozen=True)
class Reused:
    job_id: str
    pdf: RenderedPdf
    manifest: dict[str, Any]


def find_reusable(connection: Redis, storage: PdfStorage, *, tenant: str, inputs_sha256: str) -> Reused | None:
    """The tenant's earlier completed render of these inputs, if its PDF is still stored and intact."""
    earlier = connection.get(keys.reuse(tenant, inputs_sha256))
    if earlier is None:
        return None
    job_id = earlier.decode()
    status, raw_meta, raw_manifest = connection.hmget(Job.key_for(job_id), ["status", "meta", keys.JOB_MANIFEST_FIELD])
    if status is None or status.decode() != RQStatus.FINISHED.value or raw_meta is None or raw_manifest is None:
        return None
    earlier_state = JobState.from_meta(Job(job_id, connection=connection).serializer.loads(raw_meta))
    result = earlier_state.result or {}
    if earlier_state.tenant != tenant or not result.get("expires_at") or result["expires_at"] <= iso(utcnow()):
        return None
    stream = storage.open(job_id)
    if stream is None:  # removed after retention, or by the purge
        return None
    try:
        content = b"".join(stream)
    finally:
        stream.close()
    digest = hashlib.sha256(content).hexdigest()
    if digest != result.get("sha256"):
        return None
    recorded = json.loads(raw_manifest)
    pdf = RenderedPdf(content=content, pages=result["pages"], sha256=digest,
                      assets=[(a["url"], a["sha256"]) for a in recorded["assets"]],
                      fonts=[(f["family"], f["sha256"]) for f in recorded["fonts"]])
    return Reused(job_id, pdf, recorded)


def record(pipe: Pipeline, job: Job, manifest_: dict[str, Any], *, offer: bool, ttl_s: int) -> None:
    """Keep the manifest in the job's own hash (it goes with the job's record); `offer` makes this job the one
    later identical renders of its tenant reuse, for its retention."""
    pipe.hset(job.key, keys.JOB_MANIFEST_FIELD, _canonical(manifest_).decode())
    if offer:
        pipe.set(keys.reuse(job.meta["tenant"], manifest_["inputs_sha256"]), job.id, ex=ttl_s)
