"""The Chromium engine: the job's HTML printed by the worker's warm browser; options the browser cannot apply
while printing (page selection, metadata, attachments, encryption) applied to its PDF afterwards."""
from __future__ import annotations

import hashlib
import re
from typing import Any

from shared.engines import WaitFor
from shared.errors import RenderError, RenderTimeout
from shared.options import RenderOptions
from worker import pdf_edit
from worker.browser_service import BrowserService, PrintRequest
from worker.encryption import encrypt
from worker.option_styles import option_css
from worker.render import NO_OPTIONS, ProgressFn, RenderedPdf, Renderer, _ignore_progress

DEFAULT_PAPER = "A4"
"""Paper when neither the template's @page nor `options.page` names one (WeasyPrint's default too; Chromium's
own would be Letter)."""
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def with_stylesheet(html: str, css: str) -> str:
    """The document with `css` as its last stylesheet (after the template's own, so equal rules give way)."""
    style = f"<style>{css}</style>"
    match = _HEAD_END.search(html)
    return f"{html[:match.start()]}{style}{html[match.start():]}" if match else style + html


class ChromiumRenderer:
    """Jinja2 through the WeasyPrint renderer's environments (same sandbox, same filters), then the browser."""

    def __init__(self, templating: Renderer, browser: BrowserService) -> None:
        self.templating = templating
        self.browser = browser

    def render(self, *, template: str | None, html: str | None, data: dict[str, Any], css: str | None = None,
               options: RenderOptions = NO_OPTIONS, javascript: bool = False, wait_for: WaitFor | None = None,
               timeout_s: float = 120, progress: ProgressFn = _ignore_progress, owner: str = "") -> RenderedPdf:
        progress("templating", 10)
        source = self.templating.render_html(template=template, html=html, data=data, owner=owner)
        stylesheet = "\n".join(text for text in (css, option_css(options)) if text)
        if stylesheet:
            source = with_stylesheet(source, stylesheet)
        progress("loading", 30)
        result = self.browser.print(
            PrintRequest(html=source, javascript=javascript, timeout_s=timeout_s,
                         wait_for_selector=wait_for.selector if wait_for else None,
                         wait_for_ms=wait_for.ms if wait_for else None,
                         pdf={"format": DEFAULT_PAPER, "prefer_css_page_size": True, "tagged": True, "outline": True}),
            on_loaded=lambda: progress("printing", 60))
        if result.error_code == "timeout":
            raise RenderTimeout(result.error_message)
        if result.error_code is not None or result.pdf is None:
            raise RenderError(result.error_message or "the browser printed nothing")
        content, pages = pdf_edit.apply(result.pdf, options)
        if options.encryption is not None:
            content = encrypt(content, options.encryption)
        return RenderedPdf(content=content, pages=pages, sha256=hashlib.sha256(content).hexdigest(), conformance=None,
                           assets=list(result.loaded), remote_assets=any(url.startswith("https:") for url, _ in result.loaded))
