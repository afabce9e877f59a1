"""Response models: the shapes the API answers with, documented in /openapi.json next to the request models."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.engines import Engine
from shared.queues import Priority
from shared.records import JobStatus


class Progress(BaseModel):
    step: str = Field(description="queued, templating, layout, writing, einvoice, storing or done")
    percent: int


class JobError(BaseModel):
    code: str = Field(description="template_error, render_error, timeout, worker_lost, page_limit, memory_limit, "
                            "einvoice_invalid, ...")
    message: str


class ConformanceCheck(BaseModel):
    name: str = Field(description="e.g. xmp_identification, output_intent, fonts_embedded, tagged, language, title")
    passed: bool
    detail: str


class Conformance(BaseModel):
    """The service's own checks of the written file for its declared variant (not a veraPDF validation)."""

    variant: str
    passed: bool
    checks: list[ConformanceCheck]


class PartResult(BaseModel):
    title: str
    first_page: int = Field(description="1-based page of the merged PDF where the part starts")
    pages: int


class EInvoiceResult(BaseModel):
    profile: str = Field(description="Factur-X profile of the embedded factur-x.xml")
    xml_sha256: str


class EngineVersion(BaseModel):
    name: Engine
    version: str


class JobResult(BaseModel):
    bytes: int
    pages: int = Field(description="Pages in the PDF (after options.page_ranges)")
    sha256: str
    expires_at: str
    pdf_variant: str | None = Field(None, description="options.pdf_variant, when one was asked for")
    conformance: Conformance | None = None
    reused_from: str | None = Field(None, description="The tenant's earlier job whose identical render this reuses")
    parts: list[PartResult] | None = Field(None, description="A merged document's parts, in order")
    einvoice: EInvoiceResult | None = None
    engine: EngineVersion | None = Field(None, description="The engine that rendered the PDF, and its version")


class JobLinks(BaseModel):
    self: str
    pdf: str = Field(description="Download URL with a short-lived signed token")
    events: str = Field(description="Server-Sent Events URL with a short-lived signed token")
    preview: str = Field(description="PNG preview URL with a short-lived signed token; add &page=N&width=PX")


class JobResource(BaseModel):
    id: str
    status: JobStatus
    priority: Priority
    template: str
    filename: str
    metadata: dict[str, Any]
    options: dict[str, Any] | None = Field(None, description="The request's options without passwords; attachments "
                                           "by filename, mime_type, description, bytes and sha256")
    engine: Engine = Engine.WEASYPRINT
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int
    max_retries: int
    progress: Progress
    queue_position: int | None
    estimated_wait_s: float | None
    error: JobError | None
    result: JobResult | None
    links: JobLinks


class JobList(BaseModel):
    jobs: list[JobResource]
    next_cursor: str | None


class BatchLinks(BaseModel):
    self: str
    events: str = Field(description="Server-Sent Events of each job's end")


class BatchCreated(BaseModel):
    batch_id: str
    jobs: list[JobResource]
    links: BatchLinks


class BatchStatus(BaseModel):
    id: str
    total: int
    counts: dict[str, int] = Field(description="Jobs by status; `expired` counts jobs past retention")
    done: bool = Field(description="Every job has ended")
    job_ids: list[str]
    links: BatchLinks


class TemplateRef(BaseModel):
    name: str
    sha256: str


class AssetRef(BaseModel):
    url: str
    sha256: str


class FontRef(BaseModel):
    family: str
    sha256: str


class Manifest(BaseModel):
    job_id: str
    inputs_sha256: str
    template: TemplateRef
    assets: list[AssetRef]
    fonts: list[FontRef]
    engine: dict[str, str]
    options: dict[str, Any]
    pdf_sha256: str
    rendered_at: str


class TemplateEntry(BaseModel):
    name: str
    description: str
    sample_data: dict[str, Any]


class TemplateList(BaseModel):
    templates: list[TemplateEntry]


class ScheduleResource(BaseModel):
    id: str
    cron: str
    timezone: str
    job: dict[str, Any]
    next_run_at: str | None
    created_at: str


class ScheduleList(BaseModel):
    schedules: list[ScheduleResource]


class QueueCounts(BaseModel):
    queued: int
    started: int
    failed: int
    scheduled: int


class ActiveJob(BaseModel):
    id: str
    priority: Priority
    running_s: float = Field(description="Seconds since a worker took it")


class TenantStats(BaseModel):
    """The caller's own tenant only."""

    queued: int = Field(description="Jobs waiting for a worker (held by fair share or in a queue)")
    started: int
    running_limit: int | None = Field(description="MAX_RUNNING_JOBS_PER_TENANT, null when unlimited")
    rate_limit_per_minute: int | None = Field(description="RATE_LIMIT_PER_MINUTE, null when off")
    active: list[ActiveJob]


class QueueStats(BaseModel):
    queues: dict[str, QueueCounts]
    workers: dict[str, int]
    jobs: dict[str, int]
    render_ms: dict[str, float]
    throughput_per_min: float
    peak_rss_mb: float
    tenant: TenantStats


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unready"]
    checks: dict[str, Any]


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the contract's machine `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    job_status: str | None = None
