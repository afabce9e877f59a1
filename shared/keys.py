"""Every Redis key this project writes (RQ's own keys stay RQ's)."""
from __future__ import annotations

PREFIX = "pdfq:"


def tenant_jobs(tenant: str) -> str:
    """Sorted set of a tenant's job ids, scored by creation time (ms)."""
    return f"{PREFIX}tenant:{tenant}:jobs"


def idempotency(tenant: str, key_hash: str) -> str:
    return f"{PREFIX}idem:{tenant}:{key_hash}"


def job_events(job_id: str) -> str:
    """Pub/sub channel announcing a change of one job's status or progress."""
    return f"{PREFIX}events:{job_id}"


def pdf_blob(job_id: str) -> str:
    return f"{PREFIX}pdf:{job_id}"


def pdf_beside(job_id: str) -> str:
    """Hash of the files kept beside a job's PDF in Redis storage (its previews), expiring with the PDF."""
    return f"{PREFIX}pdf:{job_id}:beside"


def template_preview(name: str) -> str:
    """PNG of page 1 of a built-in template with its sample data, written by each worker at start-up."""
    return f"{PREFIX}template-preview:{name}"


JOB_MANIFEST_FIELD = f"{PREFIX}manifest"
"""Field of an RQ job's hash holding its render manifest (JSON): written with its final state, gone with it."""


def reuse(tenant: str, inputs_sha256: str) -> str:
    """Id of the tenant's completed job whose render inputs hash to `inputs_sha256` (result reuse)."""
    return f"{PREFIX}reuse:{tenant}:{inputs_sha256}"


def batch(batch_id: str) -> str:
    """Hash of one batch: its tenant and its job ids (JSON list), kept for the jobs' retention."""
    return f"{PREFIX}batch:{batch_id}"


def active_jobs(tenant: str) -> str:
    """Set of a tenant's queued/started job ids, for the admission limit."""
    return f"{PREFIX}tenant:{tenant}:active"


def stats(name: str) -> str:
    return f"{PREFIX}stats:{name}"


PEAK_RSS_MB = stats("peak_rss_mb")
"""Sorted set of worker names scored by their horses' peak memory, in MB."""


def daily_stats(day: str) -> str:
    """Hash of one UTC day's (YYYY-MM-DD) counts by outcome and priority, tenant or error code."""
    return stats(f"day:{day}")


def daily_render_ms(day: str) -> str:
    """List of one UTC day's render times, in ms."""
    return daily_stats(day) + ":render_ms"


def rq_queue(name: str) -> str:
    """RQ's list of a queue's waiting job ids (RQ writes it; the position and wait estimate read its length)."""
    return f"rq:queue:{name}"


def schedule(schedule_id: str) -> str:
    return f"{PREFIX}schedule:{schedule_id}"


def tenant_schedules(tenant: str) -> str:
    return f"{PREFIX}tenant:{tenant}:schedules"


SCHEDULES_DUE = f"{PREFIX}schedules:due"
"""Sorted set of schedule ids scored by their next run time (epoch seconds)."""

LATEST_OPS_REPORT = f"{PREFIX}ops:latest_report"
"""Job id of the newest daily operations report (tenant `ops`)."""

SCHEDULER_LAST_PASS = f"{PREFIX}scheduler:last_pass"
"""Epoch seconds of the newest scheduler pass (by whichever scheduler holds the lock)."""


def job_secrets(job_id: str) -> str:
    """A render job's encryption passwords, deleted when the job ends (TTL as a backstop)."""
    return f"{PREFIX}secrets:{job_id}"


JOB_TENANT_FIELD = "pdfq_tenant"
"""Field added to RQ's own `rq:job:<id>` hash of a render job, naming its tenant, so Lua scripts can read it
(RQ's `meta` is pickled); it lives and expires with the job's record."""


def fair_held(priority: str, tenant: str) -> str:
    """List of a tenant's jobs of one priority held back from its RQ queue, oldest first (fair share)."""
    return f"{PREFIX}fair:{priority}:held:{tenant}"


def fair_released(priority: str, tenant: str) -> str:
    """Sorted set of a tenant's jobs released into an RQ queue and not yet taken, scored by release time (s)."""
    return f"{PREFIX}fair:{priority}:released:{tenant}"


def tenant_running(tenant: str) -> str:
    """Sorted set of a tenant's jobs a worker has taken and not yet finished, scored by start time (s)."""
    return f"{PREFIX}fair:running:{tenant}"


FAIR_POLICY = f"{PREFIX}fair:policy"
"""The fleet's fair-share policy (slots per tenant, running cap) as the last API or worker started wrote it."""

FAIR_TENANTS = f"{PREFIX}fair:tenants"
"""Set of tenants with held, released or running jobs: what the maintenance pass looks at."""


def rate_limit(tenant: str) -> str:
    """A tenant's submission rate state: the theoretical arrival time of its next job (GCRA), epoch seconds."""
    return f"{PREFIX}rate:{tenant}"
