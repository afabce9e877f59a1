"""The worker's render caches: same bytes as an uncached render, fresh after a changed asset, never grown by jobs."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from worker.render import Renderer
from worker.reuse import RenderEnvironment

SAMPLE = json.loads((PROJECT_ROOT / "templates" / "invoice.json").read_text())["sample_data"]
A4_WIDTH_PT, A5_WIDTH_PT = 595, 420


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of templates/ that a test may change."""
    return Path(shutil.copytree(PROJECT_ROOT / "templates", tmp_path / "templates"))


def warmed(templates: Path) -> Renderer:
    """A renderer as a worker holds it after start-up: caches filled from the built-in templates."""
    renderer = Renderer(templates)
    renderer.render(template="invoice.html", html=None, data=SAMPLE, warm=True)
    return renderer


def page_width(content: bytes) -> int:
    return round(float(PdfReader(io.BytesIO(content)).pages[0].mediabox.width))


def test_cached_render_gives_the_same_bytes_as_an_uncached_one(templates: Path) -> None:
    """Pre-parsed stylesheets and kept images change nothing in the PDF."""
    cached = warmed(templates).render(template="invoice.html", html=None, data=SAMPLE)
    fresh = Renderer(templates)
    fresh.caches._files.clear()  # nothing pre-parsed: every sheet and image is read as WeasyPrint would
    uncached = fresh.render(template="invoice.html", html=None, data=SAMPLE)
    assert cached.sha256 == uncached.sha256
    assert set(uncached.assets) <= set(cached.assets)  # the cached sheet also lists the fonts its parse fetched


def test_changed_stylesheet_is_parsed_afresh_at_start_up(templates: Path) -> None:
    """A changed base.css changes the tree hash, every render key, and the next worker's PDFs."""
    before = warmed(templates)
    assert page_width(before.render(template="invoice.html", html=None, data=SAMPLE).content) == A4_WIDTH_PT
    with (templates / "assets" / "base.css").open("a") as css:
        css.write("\n@page { size: A5 }\n")
    after = warmed(templates)
    rendered = after.render(template="invoice.html", html=None, data=SAMPLE)
    assert page_width(rendered.content) == A5_WIDTH_PT
    assert after.caches.tree.sha256 != before.caches.tree.sha256
    args = {"template": "invoice.html", "html": None, "data": SAMPLE, "css": None}
    assert (RenderEnvironment.of(after.caches.tree).inputs_sha256(args)
            != RenderEnvironment.of(before.caches.tree).inputs_sha256(args))
    base_css = dict(rendered.assets)[(templates / "assets" / "base.css").resolve().as_uri()]
    assert base_css == after.caches.tree.files[(templates / "assets" / "base.css").resolve().as_uri()]


def test_changed_image_is_decoded_afresh_at_start_up(templates: Path) -> None:
    """A changed logo gives other PDF bytes from the next worker on."""
    before = warmed(templates).render(template="invoice.html", html=None, data=SAMPLE)
    logo = templates / "assets" / "logo.svg"
    logo.write_text(logo.read_text().replace("<svg", "<svg opacity=\"0.5\"", 1))
    after = warmed(templates).render(template="invoice.html", html=None, data=SAMPLE)
    assert after.sha256 != before.sha256
    assert dict(after.assets)[logo.resolve().as_uri()] != dict(before.assets)[logo.resolve().as_uri()]


def test_jobs_add_nothing_to_the_caches(templates: Path) -> None:
    """A job's own <style> blocks and data: images are used for its render only, never kept for the next job."""
    renderer = warmed(templates)
    kept = (len(renderer.caches._files), len(renderer.caches._inline), len(renderer.caches._images))
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    for n in range(3):
        renderer.render(template=None, html=f"<style>p {{ margin: {n}mm }}</style><p>x</p><img src='{pixel}'>",
                        data={})
    assert (len(renderer.caches._files), len(renderer.caches._inline), len(renderer.caches._images)) == kept


INLINE = "<p>Invoice {{ number }}</p>"


def _compiles_nothing(source: str) -> None:
    raise AssertionError("compiled again")


def test_inline_template_compiled_before_the_fork_is_reused_for_its_tenant_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker's parent compiles (keep_inline) serves that tenant's horses; another tenant compiles its own,
    so no tenant's render time tells whether another sent the same source."""
    renderer = Renderer(PROJECT_ROOT / "templates")
    renderer.keep_inline("acme", INLINE)
    compiled = renderer._inline
    monkeypatch.setattr(compiled, "from_string", _compiles_nothing)
    assert renderer.render_html(template=None, html=INLINE, data={"number": 7}, owner="acme") == "<p>Invoice 7</p>"
    with pytest.raises(AssertionError, match="compiled again"):
        renderer.render_html(template=None, html=INLINE, data={"number": 7}, owner="globex")


def test_parent_leaves_long_and_broken_templates_to_the_horse(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source past PARENT_COMPILE_MAX_CHARS is not compiled by the parent (no timeout there); one that does not
    compile raises nothing there, and its horse reports it as a template error."""
    from shared.errors import TemplateError
    from worker import render

    renderer = Renderer(PROJECT_ROOT / "templates")
    renderer.keep_inline("acme", "{% for x in %}")
    with pytest.raises(TemplateError, match="syntax error"):
        renderer.render_html(template=None, html="{% for x in %}", data={}, owner="acme")
    monkeypatch.setattr(render, "PARENT_COMPILE_MAX_CHARS", 100)
    renderer.keep_inline("acme", INLINE + " " * 100)
    assert len(renderer._inline_cache) == 0


def test_inline_template_cache_is_bounded() -> None:
    from worker.render import INLINE_CACHE_SIZE

    renderer = Renderer(PROJECT_ROOT / "templates")
    for number in range(INLINE_CACHE_SIZE + 5):
        renderer.keep_inline("acme", f"<p>{number}</p>")
    assert len(renderer._inline_cache) == INLINE_CACHE_SIZE


def test_compiling_in_the_parent_evaluates_nothing() -> None:
    """Jinja2 folds constant expressions while compiling; the parent must not build a template's huge constant
    (the horse does, under its memory cap)."""
    import resource

    renderer = Renderer(PROJECT_ROOT / "templates")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    renderer.keep_inline("acme", "{% set s = 'x' * (300 * 1024 * 1024) %}{{ s|length }}")
    assert len(renderer._inline_cache) == 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: far below 300 MiB
