"""Template + data -> PDF bytes with Jinja2 and WeasyPrint; knows nothing of Redis or RQ."""
from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from tempfile import mkdtemp
from typing import Any, Callable, Iterator

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from weasyprint import CSS, HTML
from weasyprint.document import Document
from weasyprint.text.fonts import FontConfiguration

from shared.errors import PageLimitExceeded, PageRangeEmpty, RenderError, TemplateError
from shared.options import RenderOptions, pages_kept
from worker import conformance, pdf_output
from worker.encryption import encrypt
from worker.fetcher import RestrictedURLFetcher
from worker.layout_progress import layout_progress
from worker.limits import page_limit
from worker.merge import PartPages, PartSource, merge
from worker.option_styles import option_css
from worker.render_cache import RenderCaches, TemplateTree

ProgressFn = Callable[[str, int], None]
INLINE_CACHE_SIZE = 32
"""Compiled inline templates a worker keeps, keyed by tenant and the source's hash (a compiled invoice is a
few hundred KB of code, so 32 bound the worker's growth)."""
PARENT_COMPILE_MAX_CHARS = 64 * 1024
"""Longest inline source the worker's parent compiles before forking; a longer one is compiled by its horse,
under the job's timeout and memory cap (the parent has neither)."""


def _ignore_progress(step: str, percent: int) -> None:
    """Progress sink for callers that do not report progress."""


def money(value: Any) -> str:
    """`1234.5` -> `1,234.50`: how templates print amounts."""
    return f"{float(value):,.2f}"


def date_text(value: Any) -> str:
    """`2025-03-31` -> `31 March 2025`: how templates print an ISO date; any other text is printed as given."""
    try:
        moment = date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        moment = None
    return f"{moment.day} {moment:%B %Y}" if moment else str(value)


NO_OPTIONS = RenderOptions.model_validate({})


@dataclass(frozen=True)
class RenderedPdf:
    content: bytes
    pages: int
    sha256: str
    conformance: conformance.Conformance | None = None
    assets: list[tuple[str, str]] = field(default_factory=list)
    """Every asset the render loaded, as (URL, sha256 of its bytes)."""
    fonts: list[tuple[str, str]] = field(default_factory=list)
    """(family, sha256 of the font file) of each font embedded in the PDF."""
    remote_assets: bool = False
    parts: tuple[PartPages, ...] = ()
    """Where each part of a merged document starts; empty for a single document."""


class ScopedFontConfiguration(FontConfiguration):
    """Fonts registered outside a render stay for the process; a render's own @font-face fonts last one render.

    WeasyPrint skips a face whose file already exists in its folder, taking the file as proof that the
    face is registered. Registration lives in process memory, though: a forked work-horse would skip a
    face that an earlier horse wrote and lay out in a fallback font. Which faces this process really
    registered is therefore kept in memory too, which forking copies faithfully.
    """

    def __init__(self) -> None:
        super().__init__()
        self._folder = Path(mkdtemp(prefix="weasyprint-"))
        self._kept_faces: set[str] = set()
        self._rendering = False
        self._render_folder: Path | None = None

    def add_font_face(self, rule_descriptors: dict[str, Any], url_fetcher: Any) -> None:
        face = str(rule_descriptors)  # WeasyPrint keys its font files on the same string.
        if face in self._kept_faces:
            return
        if not self._rendering:
            self._kept_faces.add(face)
            super().add_font_face(rule_descriptors, url_fetcher)
            return
        if self._render_folder is None:
            # Inside the kept folder: what a horse killed mid-render leaves goes when the worker cleans that up.
            self._render_folder = Path(mkdtemp(prefix="render-", dir=self._folder))
        kept_folder, self._folder = self._folder, self._render_folder
        try:
            super().add_font_face(rule_descriptors, url_fetcher)
        finally:
            self._folder = kept_folder

    @contextlib.contextmanager
    def render_scope(self) -> Iterator[None]:
        """Faces first added inside this block are written to a folder of their own, deleted when it exits."""
        self._rendering = True
        try:
            yield
        finally:
            self._rendering = False
            if self._render_folder is not None:
                shutil.rmtree(self._render_folder, ignore_errors=True)
                self._render_folder = None


def template_environment(cls: type[jinja2.Environment], **options: Any) -> jinja2.Environment:
    """A Jinja2 environment with the filters every template may use (the bench's plain loops build theirs here)."""
    env = cls(autoescape=True, undefined=jinja2.StrictUndefined, **options)
    env.filters["money"] = money
    env.filters["date_text"] = date_text
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
        self.font_config = ScopedFontConfiguration()
        self.caches = RenderCaches(TemplateTree.scan(templates_dir))
        self._keep_bundled_stylesheets(templates_dir)
        self._named = template_environment(jinja2.Environment, loader=jinja2.FileSystemLoader(templates_dir),
                                   auto_reload=False)
        # No constant folding: it would evaluate a template's constant expressions ('x' * 10**9) while compiling,
        # which the worker's parent does (keep_inline) without the horse's memory cap and timeout.
        self._inline = template_environment(SandboxedEnvironment, optimized=False)
        self._inline_cache: OrderedDict[str, jinja2.Template] = OrderedDict()

    def _keep_bundled_stylesheets(self, templates_dir: Path) -> None:
        """Parse templates/' stylesheets and register their fonts once: every render (and forked horse) finds them ready."""
        for stylesheet in sorted(templates_dir.rglob("*.css")):
            self.caches.preparse(stylesheet, url_fetcher=self.fetcher, font_config=self.font_config,
                                 _check_mime_type=True)

    def _inline_template(self, source: str, owner: str) -> jinja2.Template:
        key = (owner, hashlib.sha256(source.encode()).hexdigest())
        template = self._inline_cache.pop(key, None) or self._inline.from_string(source)
        self._inline_cache[key] = template
        if len(self._inline_cache) > INLINE_CACHE_SIZE:
            self._inline_cache.popitem(last=False)
        return template

    def keep_inline(self, owner: str, source: str) -> None:
        """Compile a job's inline template in the worker's parent, before it forks the job's horse: the horse
        inherits it, and so does every later job of `owner` with the same source (compiling the invoice costs
        ~45 ms, a sixth of its render). Scoped by tenant, so no tenant's timing tells what another sent.
        A source that does not compile is left to the horse, which reports it."""
        if len(source) > PARENT_COMPILE_MAX_CHARS:
            return
        try:
            self._inline_template(source, owner)
        except (jinja2.TemplateError, RecursionError, MemoryError):
            pass

    def render_html(self, *, template: str | None, html: str | None, data: dict[str, Any], owner: str = "") -> str:
        """Run Jinja2; any template or data fault is a permanent TemplateError. `owner` scopes the inline
        template cache (the job's tenant)."""
        try:
            compiled = (self._inline_template(html, owner) if html is not None
                        else self._named.get_template(template or ""))
            return compiled.render({**data, "data": data})
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"unknown template {exc.name!r}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"missing field: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"sandbox violation: {exc}") from None
        except RecursionError:  # A macro calling itself fails the same way on every attempt.
            raise TemplateError("the template's recursion is too deep (a macro calling itself?)") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(f"template failed on the data: {exc}") from None

    def render(self, *, template: str | None, html: str | None, data: dict[str, Any],
               css: str | None = None, options: RenderOptions = NO_OPTIONS,
               progress: ProgressFn = _ignore_progress, warm: bool = False, owner: str = "") -> RenderedPdf:
        """`warm` (start-up only) keeps what this render parses and decodes for every later render."""
        progress("templating", 10)
        source = self.render_html(template=template, html=html, data=data, owner=owner)
        progress("layout", 30)
        writer_options = pdf_output.weasyprint_options(options)
        # The document's own fonts must outlive writing the PDF.
        with self.font_config.render_scope(), self.caches.render(warm=warm) as (log, images):
            with layout_progress(progress, 30, 70):
                document = self._layout(source, css, options, writer_options, images)
            content, pages, fonts = self._write(document, options, writer_options, progress)
        return self._finish(content, pages, fonts, options, log)

    def render_parts(self, parts: list[PartSource], *, options: RenderOptions = NO_OPTIONS,
                     progress: ProgressFn = _ignore_progress, owner: str = "") -> RenderedPdf:
        """Render each part with the same fonts and join them into one PDF; `options` and the page limit apply to
        the whole. A part's fault names it (`parts[2]: missing field ...`), so the client knows which to fix."""
        writer_options = pdf_output.weasyprint_options(options)
        laid_out: list[tuple[PartSource, Document]] = []
        budget = self.max_pages
        with self.font_config.render_scope(), self.caches.render(warm=False) as (log, images):
            for index, part in enumerate(parts):
                start, end = (10 + 60 * share // len(parts) for share in (index, index + 1))
                progress("layout", start)
                try:
                    source = self.render_html(template=part.template, html=part.html, data=part.data, owner=owner)
                    with layout_progress(progress, start, end):
                        document = self._layout(source, part.css, options, writer_options, images, max_pages=budget)
                except (TemplateError, RenderError) as exc:
                    raise type(exc)(f"parts[{index}]: {exc}") from None
                budget -= len(document.pages)
                laid_out.append((part, document))
            merged, placed = merge(laid_out)
            content, pages, fonts = self._write(merged, options, writer_options, progress)
        return self._finish(content, pages, fonts, options, log, placed)

    def _write(self, document: Document, options: RenderOptions, writer_options: dict[str, Any],
               progress: ProgressFn) -> tuple[bytes, int, list[tuple[str, str]]]:
        """Keep the pages asked for and write the PDF with its options: its bytes, pages and embedded fonts."""
        document = self._select_pages(document, options)
        if options.document is not None:
            pdf_output.apply_document_info(document, options.document)
        progress("writing", 70)
        attachments = [pdf_output.embedded_file(spec, self.fetcher) for spec in options.attachments]
        content = document.write_pdf(finisher=pdf_output.finisher(options), attachments=attachments or None,
                                     **writer_options)
        fonts = sorted({(font.family, hashlib.sha256(font.file_content).hexdigest())
                        for font in document.fonts.values()})
        return content, len(document.pages), fonts

    def _finish(self, content: bytes, pages: int, fonts: list[tuple[str, str]], options: RenderOptions, log: Any,
                parts: tuple[PartPages, ...] = ()) -> RenderedPdf:
        """Encrypt and check the declared variant of the written file."""
        if options.encryption is not None:
            content = encrypt(content, options.encryption)
        checked = None
        if options.pdf_variant is not None:
            password = options.encryption.owner_password if options.encryption else ""
            checked = conformance.check(content, options.pdf_variant, password=password)
        return RenderedPdf(content=content, pages=pages, sha256=hashlib.sha256(content).hexdigest(),
                           conformance=checked, assets=log.assets, fonts=fonts, remote_assets=log.remote, parts=parts)

    @staticmethod
    def _select_pages(document: Document, options: RenderOptions) -> Document:
        selection = options.page_selection()
        if selection is None:
            return document
        kept = pages_kept(selection, len(document.pages))
        if not kept:
            raise PageRangeEmpty(f"page_ranges {options.page_ranges!r} keeps none of the {len(document.pages)} pages")
        return document.copy([document.pages[i] for i in kept]) if len(kept) < len(document.pages) else document

    def _layout(self, source: str, css: str | None, options: RenderOptions, writer_options: dict[str, Any],
                images: dict[str, Any], max_pages: int | None = None) -> Document:
        try:
            sheets = [text for text in (css, option_css(options)) if text]
            stylesheets = [CSS(string=text, base_url=self.base_url, url_fetcher=self.fetcher,
                               font_config=self.font_config) for text in sheets]
            with page_limit(self.max_pages if max_pages is None else max_pages):
                return HTML(string=source, base_url=self.base_url, url_fetcher=self.fetcher).render(
                    stylesheets=stylesheets, font_config=self.font_config, cache=images, **writer_options)
        except (PageLimitExceeded, MemoryError, *self.interrupts):
            raise
        except Exception as exc:  # WeasyPrint raises many types; all mean this document cannot be laid out.
            raise RenderError(f"layout failed: {exc}") from None
