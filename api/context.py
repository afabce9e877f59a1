"""What the API's views share, built once per app and kept in `app.extensions`."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from api.job_feed import JobChangeFeed
from shared.config import Settings
from shared.fair_share import FairShare
from shared.storage import PdfStorage
from shared.template_catalog import TemplateInfo

EXTENSION = "pdfq"


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    connection: Redis
    storage: PdfStorage
    templates: dict[str, TemplateInfo]
    job_feed: JobChangeFeed
    fair: FairShare


def ctx() -> ApiContext:
    return current_app.extensions[EXTENSION]
