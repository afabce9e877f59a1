"""Which engine renders a job, and the Chromium-only request fields (`javascript`, `wait_for`)."""
from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.options import Quality, RenderOptions

MAX_WAIT_FOR_MS = 10_000
"""Longest fixed wait after the load event a job may ask for, in milliseconds."""


class Engine(str, Enum):
    WEASYPRINT = "weasyprint"
    CHROMIUM = "chromium"


class WaitFor(BaseModel):
    """What the Chromium engine waits for after the page's load event before it prints."""

    model_config = ConfigDict(extra="forbid")

    selector: str | None = Field(None, min_length=1, max_length=500, description="A CSS selector that must match")
    ms: int | None = Field(None, ge=0, le=MAX_WAIT_FOR_MS, description="A fixed wait, in milliseconds")

    @model_validator(mode="after")
    def _one_kind(self) -> WaitFor:
        if (self.selector is None) == (self.ms is None):
            raise ValueError("give exactly one of 'selector' or 'ms'")
        return self


def field_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error placed at `loc` (e.g. options.pdf_variant), for rules that span several fields."""
    detail = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    return ValidationError.from_exception_data("JobRequest", [detail])


def engine_conflicts(engine: Engine, *, javascript: bool | None, wait_for: WaitFor | None,
                     options: RenderOptions | None, merged: bool = False) -> list[tuple[tuple[str, ...], str, Any]]:
    """What the request asks of an engine that it cannot honour, as (field, reason, value)."""
    if engine == Engine.WEASYPRINT:
        return [((name,), "only the chromium engine runs scripts or waits for them", value)
                for name, value in (("javascript", javascript), ("wait_for", wait_for)) if value is not None]
    conflicts: list[tuple[tuple[str, ...], str, Any]] = []
    if merged:
        conflicts.append((("parts",), "merged documents are rendered by the weasyprint engine", "chromium"))
    if options is not None and options.einvoice is not None:
        conflicts.append((("options", "einvoice"), "an e-invoice is a PDF/A-3; use engine 'weasyprint'",
                          options.einvoice.profile))
    if options is not None and options.pdf_variant is not None:
        conflicts.append((("options", "pdf_variant"), "the chromium engine cannot write PDF/A or PDF/UA; "
                          "use engine 'weasyprint'", options.pdf_variant.value))
    if options is not None and options.quality != Quality.HIGH:
        conflicts.append((("options", "quality"), "the chromium engine keeps images as given (quality 'high' only)",
                          options.quality.value))
    return conflicts
