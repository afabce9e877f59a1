"""A render job's own state, kept in RQ's `job.meta`: the one typed model every process reads and writes."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from redis.client import Pipeline
from rq.job import Job

QUEUED_PROGRESS = {"step": "queued", "percent": 0}


@dataclass
class JobState:
    """What the API, the workers and the webhooks agree on about one render job.

    Unknown keys found in a record (written by a newer release) are kept in `extra` and written back.
    """

    tenant: str
    template: str
    filename: str
    priority: str
    max_retries: int
    timeout_s: int
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    options: dict[str, Any] | None = None
    """The request's options as the job resource echoes them (shared/options.py RenderOptions.echo)."""
    engine: str = "weasyprint"
    attempts: int = 0
    progress: dict[str, Any] = field(default_factory=lambda: dict(QUEUED_PROGRESS))
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    canceled: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    render_ms: float | None = None
    store_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> JobState:
        known = _field_names(cls)
        values = {k: v for k, v in meta.items() if k in known}
        values.setdefault("tenant", "")
        values.setdefault("template", "")
        values.setdefault("filename", "")
        values.setdefault("priority", "normal")
        values.setdefault("max_retries", 0)
        values.setdefault("timeout_s", 0)
        if values.get("progress") is None:
            values["progress"] = dict(QUEUED_PROGRESS)
        return cls(**values, extra={k: v for k, v in meta.items() if k not in known})

    @classmethod
    def from_job(cls, job: Job, *, refresh: bool = False) -> JobState:
        """The job's state as this copy holds it, or as Redis holds it now with `refresh`."""
        return cls.from_meta(job.get_meta(refresh=True) if refresh else job.meta)

    def to_meta(self) -> dict[str, Any]:
        meta = asdict(self)
        meta.update(meta.pop("extra"))
        return meta

    def apply(self, job: Job) -> None:
        """Put this state on the job object (RQ re-saves `job.meta` itself later, so it must stay current)."""
        job.meta = self.to_meta()

    def save(self, job: Job, pipe: Pipeline | None = None) -> None:
        """Apply and write the job's meta, inside the caller's transaction when given one."""
        self.apply(job)
        if pipe is None:
            job.save_meta()
        else:
            pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))

    def reset_for_rerun(self) -> None:
        """Back to a just-submitted job's state (attempts 0, no error or result), for a rerun."""
        self.attempts = 0
        self.error = self.result = None
        self.canceled = False
        self.started_at = self.finished_at = None
        self.progress = dict(QUEUED_PROGRESS)


@functools.lru_cache(maxsize=None)
def _field_names(cls: type[JobState]) -> frozenset[str]:
    """The model's field names but `extra`, computed once: `dataclasses.fields` is most of from_meta's cost."""
    return frozenset(f.name for f in fields(cls)) - {"extra"}


def is_render_state(job: Job) -> bool:
    """The job carries our state (a tenant's render), not a webhook delivery's or a system job's."""
    return "tenant" in job.meta


def cron_string(job: Job) -> str | None:
    """rq-scheduler's own field on a periodic job's meta (not our state)."""
    return job.meta.get("cron_string")
