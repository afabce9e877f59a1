"""Request models: the single definition that validates input and documents the API."""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.einvoice.request import EInvoiceRequestError, einvoice_xml
from shared.filenames import safe_filename
from shared.engines import Engine, WaitFor, engine_conflicts, field_error
from shared.options import RenderOptions
from shared.queues import Priority

MAX_METADATA_BYTES = 4096
"""Largest `metadata` object, serialised as JSON, in bytes."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays in `data` or `metadata`: documents need a handful of levels, while a few
hundred already break RQ's save of the job and every later JSON round trip."""
MAX_BATCH_JOBS = 500
MAX_PARTS = 100
"""Most parts one merged document may have."""
MAX_PART_TITLE_CHARS = 500
_ASCII_INTEGER = re.compile(r"[0-9]{1,18}")


def ascii_int(raw: str) -> int | None:
    """`raw` as an int if it is 1..18 ASCII digits, else None (str.isdigit also accepts '²', which int() refuses)."""
    return int(raw) if _ASCII_INTEGER.fullmatch(raw) else None


def json_depth(value: Any) -> int:
    """How many objects/arrays deep `value` nests (a scalar is 0), walked level by level rather than recursively."""
    depth, level = 0, [value]
    while containers := [node for node in level if isinstance(node, (dict, list))]:
        depth += 1
        level = [child for node in containers for child in (node.values() if isinstance(node, dict) else node)]
    return depth


ONE_SOURCE_SCHEMA = {"oneOf": [
    {"required": ["template"], "properties": {"template": {"type": "string"}, "html": {"type": "null"}}},
    {"required": ["html"], "properties": {"html": {"type": "string"}, "template": {"type": "null"}}},
]}
"""A part's `_one_source` in JSON Schema: exactly one of `template` and `html` is given (the other absent or null)."""
JOB_SOURCE_SCHEMA = {"oneOf": [
    {"required": ["template"], "properties": {"template": {"type": "string"}, "html": {"type": "null"},
                                              "parts": {"type": "null"}}},
    {"required": ["html"], "properties": {"html": {"type": "string"}, "template": {"type": "null"},
                                          "parts": {"type": "null"}}},
    {"required": ["parts"], "properties": {"parts": {"type": "array"}, "template": {"type": "null"},
                                           "html": {"type": "null"}}},
]}
"""A job's `_one_source` in JSON Schema: exactly one of `template`, `html` and `parts`."""
CHROMIUM_ONLY = {"properties": {"engine": {"const": "chromium"}}, "required": ["engine"]}
JOB_REQUEST_SCHEMA = {**JOB_SOURCE_SCHEMA, "dependentSchemas": {"javascript": CHROMIUM_ONLY, "wait_for": CHROMIUM_ONLY}}
"""`_engine_fits` in part: `javascript` and `wait_for` come only with `engine: chromium`."""
CRON_PATTERN = r"^\s*\S+(\s+\S+){4}\s*$"
"""Documents `_valid_cron`'s first rule (five whitespace-separated fields); croniter then checks each value."""


class RenderSource(BaseModel):
    """What one document is rendered from: a template or inline source, its data and extra CSS."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(None, description="Name from GET /v1/templates", max_length=200)
    html: str | None = Field(None, description="Inline Jinja2 source, rendered in a sandbox")
    data: dict[str, Any] = Field(default_factory=dict)
    css: str | None = None

    @field_validator("template")
    @classmethod
    def _known_template(cls, name: str | None, info: ValidationInfo) -> str | None:
        known = (info.context or {}).get("templates")
        if name is not None and known is not None and name not in known:
            raise ValueError(f"unknown template {name!r}; GET /v1/templates lists them")
        return name

    @field_validator("data", "metadata", check_fields=False)
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value) > MAX_JSON_DEPTH:
            raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels of objects and arrays")
        return value


class PartRequest(RenderSource):
    """One part of a merged document (`parts[i]`): rendered on its own, appended on a new page."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_SOURCE_SCHEMA)

    title: str | None = Field(None, max_length=MAX_PART_TITLE_CHARS,
                              description="Its outline entry; default: the part's <title>, else 'Part N'")

    @model_validator(mode="after")
    def _one_source(self) -> PartRequest:
        if (self.template is None) == (self.html is None):
            raise ValueError("exactly one of 'template' or 'html' is required")
        return self


class JobRequest(RenderSource):
    """What a client asks to render (`POST /v1/jobs`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=JOB_REQUEST_SCHEMA)

    priority: Priority = Priority.NORMAL
    filename: str | None = Field(None, max_length=255)
    max_retries: int = Field(3, ge=0, le=10)
    timeout_s: int = Field(120, ge=1, le=600)
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = Field(None, max_length=2048, json_schema_extra={"format": "uri"})
    options: RenderOptions | None = Field(None, description="How the PDF is shaped: page, ranges, quality, "
                                          "variant, metadata, attachments, watermark, encryption, e-invoice")
    parts: list[PartRequest] | None = Field(None, min_length=1, max_length=MAX_PARTS,
                                            description="Instead of template/html: documents merged into one PDF")
    engine: Engine = Field(Engine.WEASYPRINT, description="weasyprint (paged media, PDF/A and PDF/UA) or chromium "
                           "(a browser, for HTML designed in one)")
    javascript: bool | None = Field(None, description="chromium only: run the page's scripts (default false)")
    wait_for: WaitFor | None = Field(None, description="chromium only: after the load event, wait for a selector "
                                     "to match or a number of milliseconds before printing")
    cache: bool = Field(True, description="false renders anew even when an identical earlier render of this tenant "
                                          "could be reused")
    skip_cache: bool = Field(False, description="true is the same as cache: false")

    @property
    def reuse_allowed(self) -> bool:
        return self.cache and not self.skip_cache

    @field_validator("filename")
    @classmethod
    def _sanitise_filename(cls, raw: str | None) -> str | None:
        return safe_filename(raw) if raw is not None else None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(metadata, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return metadata

    @field_validator("webhook_url")
    @classmethod
    def _public_webhook(cls, url: str | None, info: ValidationInfo) -> str | None:
        check = (info.context or {}).get("check_webhook_url")
        if url is not None and check is not None:
            check(url)
        return url

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if sum(source is not None for source in (self.template, self.html, self.parts)) != 1:
            raise ValueError("exactly one of 'template', 'html' or 'parts' is required")
        if self.parts is not None and (self.data or self.css is not None):
            raise ValueError("with 'parts', data and css go in each part")
        if self.parts is not None and self.options is not None and self.options.einvoice is not None:
            raise ValueError("options.einvoice makes one invoice; it cannot be combined with 'parts'")
        return self

    @model_validator(mode="after")
    def _einvoice_buildable(self) -> JobRequest:
        """An e-invoice whose XML cannot be built or passes no XSD is refused at submit, naming the field."""
        if self.options is not None and self.options.einvoice is not None:
            try:
                einvoice_xml(self.options.einvoice, template=self.template, data=self.data)
            except EInvoiceRequestError as exc:
                raise exc.as_validation_error(type(self).__name__) from None
        return self

    @model_validator(mode="after")
    def _engine_fits(self) -> JobRequest:
        conflicts = engine_conflicts(self.engine, javascript=self.javascript, wait_for=self.wait_for,
                                     options=self.options, merged=self.parts is not None)
        if conflicts:
            field, reason, value = conflicts[0]
            raise field_error(field, reason, value)
        return self


class BatchRequest(BaseModel):
    """Several job requests validated all-or-nothing (`POST /v1/jobs/batch`)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRequest] = Field(min_length=1, max_length=MAX_BATCH_JOBS)


class ScheduleRequest(BaseModel):
    """A recurring job (`POST /v1/schedules`): a cron expression in a timezone, and the job to create."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(description="Five-field cron expression, e.g. '0 9 * * 1'", max_length=100,
                      json_schema_extra={"pattern": CRON_PATTERN})
    timezone: str = Field("UTC", description="IANA timezone the cron expression is read in", max_length=64)
    job: JobRequest

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        from croniter import croniter

        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ValueError("not a valid five-field cron expression")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {name!r}") from None
        return name
