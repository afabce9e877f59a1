"""Per-process state a worker builds once (before forking) and every job reuses."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from redis import Redis
from rq.timeouts import JobTimeoutException

from shared.config import Settings
from shared.connection import connect
from shared.storage import PdfStorage, storage_from_settings
from worker.browser_service import BrowserService
from worker.chromium_render import ChromiumRenderer
from worker.render import Renderer
from worker.reuse import RenderEnvironment


@dataclass(frozen=True)
class WorkerRuntime:
    settings: Settings
    connection: Redis
    renderer: Renderer
    storage: PdfStorage
    environment: RenderEnvironment
    chromium: ChromiumRenderer | None
    """The Chromium engine, when a browser is installed; its service starts with the worker (worker/__main__.py)."""


@lru_cache(maxsize=1)
def get_runtime() -> WorkerRuntime:
    settings = Settings.from_env()
    connection = connect(settings)
    renderer = Renderer(settings.templates_dir, allowed_asset_hosts=settings.allowed_asset_hosts,
                        max_pages=settings.max_pages, interrupts=(JobTimeoutException,))
    chromium = None
    if settings.chromium_path:
        browser = BrowserService(settings.chromium_path, settings.templates_dir, settings.allowed_asset_hosts,
                                 max_jobs=settings.browser_max_jobs, memory_limit_mb=settings.browser_memory_limit_mb)
        chromium = ChromiumRenderer(renderer, browser)
    return WorkerRuntime(settings, connection, renderer, storage_from_settings(settings, connection),
                         RenderEnvironment.of(renderer.caches.tree), chromium)
