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
