"""Which engine renders a job, and the Chromium-only request fields (`javascript`, `wait_for`)."""
from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
