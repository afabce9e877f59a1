"""Template + data -> PDF bytes with Jinja2 and WeasyPrint; knows nothing of Redis or RQ."""
from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration

from shared.errors import PageLimitExceeded, RenderError, TemplateError
from worker.fetcher import RestrictedURLFetcher
from worker.limits import page_limit

ProgressFn = Callable[[str, int], None]
INLINE_CACHE_SIZE = 256
"""Compiled inline templates kept per worker process, keyed by the source's hash."""


def _ignore_progress(step: str, percent: int) -> None:
    """Progress sink for callers that do not report progress."""


def money(value: Any) -> str:
    """`1234.5` -> `1,234.50`, the one formatting filter templates may rely on."""
    return f"{float(value):,.2f}"


@dataclass(frozen=True)
class RenderedPdf:
    content: bytes
    pages: int
    sha256: str


def _environment(cls: type[jinja2.Environment], **options: Any) -> jinja2.Environment:
    env = cls(autoescape=True, undefined=jinja2.StrictUndefined, **options)
    env.filters["money"] = money
    return env


class Renderer:
    """Holds what is costly to build (fonts, compiled templates) so each job only renders.

    `interrupts` are exceptions the caller raises into a render (a job timeout) that must
    pass through untouched rather than be reported as a layout failure.
    """

    def __init__(self, templates_dir: Path, *, allowed_asset_hosts: frozenset[str] = frozenset(),
                 max_pages: int = 500, interrupts: tuple[type[BaseException], ...] = ()) -> None:
        self.interrupts = interrupts
        self.base_url = templates_dir.resolve().as_uri() + "/"
        self.max_pages = max_pages
        self.fetcher = RestrictedURLFetcher(templates_dir, allowed_asset_hosts)
        self.font_config = FontConfiguration()
        self._named = _environment(jinja2.Environment, loader=jinja2.FileSystemLoader(templates_dir),
                                   auto_reload=False)
        self._inline = _environment(SandboxedEnvironment)
        self._inline_cache: OrderedDict[str, jinja2.Template] = OrderedDict()

    def _inline_template(self, source: str) -> jinja2.Template:
        digest = hashlib.sha256(source.encode()).hexdigest()
        template = self._inline_cache.pop(digest, None) or self._inline.from_string(source)
        self._inline_cache[digest] = template
        if len(self._inline_cache) > INLINE_CACHE_SIZE:
            self._inline_cache.popitem(last=False)
        return template

    def render_html(self, *, template: str | None, html: str | None, data: dict[str, Any]) -> str:
        """Run Jinja2; any template or data fault is a permanent TemplateError."""
        try:
            compiled = self._inline_template(html) if html is not None else self._named.get_template(template or "")
            return compiled.render({**data, "data": data})
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"unknown template {exc.name!r}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"missing field: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"sandbox violation: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(f"template failed on the data: {exc}") from None

    def render(self, *, template: str | None, html: str | None, data: dict[str, Any],
               css: str | None = None, progress: ProgressFn = _ignore_progress) -> RenderedPdf:
        progress("templating", 10)
        source = self.render_html(template=template, html=html, data=data)
        progress("layout", 30)
        try:
            stylesheets = [CSS(string=css, base_url=self.base_url, url_fetcher=self.fetcher,
                               font_config=self.font_config)] if css else []
            with page_limit(self.max_pages):
                document = HTML(string=source, base_url=self.base_url, url_fetcher=self.fetcher).render(
                    stylesheets=stylesheets, font_config=self.font_config)
        except (PageLimitExceeded, MemoryError, *self.interrupts):
            raise
        except Exception as exc:  # WeasyPrint raises many types; all mean this document cannot be laid out.
            raise RenderError(f"layout failed: {exc}") from None
        progress("writing", 70)
        buffer = io.BytesIO()
        document.write_pdf(buffer)
        content = buffer.getvalue()
        return RenderedPdf(content=content, pages=len(document.pages), sha256=hashlib.sha256(content).hexdigest())
