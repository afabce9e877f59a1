"""Fonts: the bundled Inter in every built-in PDF, a tenant's @font-face font on every job, no font files left."""
from __future__ import annotations

import base64
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.template_catalog import load_catalog
from tests.conftest import JobsClient
from tests.support import WorkerProcess
from worker.render import Renderer

TEMPLATES = PROJECT_ROOT / "templates"
TENANT_FAMILY = "PdfqTenantFace"
TENANT_FONT_URI = "data:font/otf;base64," + base64.b64encode((TEMPLATES / "assets/fonts/Inter-Bold.otf").read_bytes()).decode()
TENANT_FONT_HTML = (f"<style>@font-face {{ font-family: {TENANT_FAMILY}; src: url({TENANT_FONT_URI}) }}"
                    f" p {{ font-family: {TENANT_FAMILY} }}</style><p>Tenant font</p>")
"""A document whose text can only be set in its own @font-face font (WeasyPrint names it after the family)."""


def font_names(content: bytes) -> set[str]:
    """The fonts a PDF's pages use, without the subset prefix (`ABCDEF+Inter-Bold` -> `Inter-Bold`)."""
    reader = PdfReader(io.BytesIO(content))
    return {str(font.get_object()["/BaseFont"]).split("+")[-1]
            for page in reader.pages for font in page["/Resources"].get("/Font", {}).values()}


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if path.is_file()}


def render_in_forked_child(renderer: Renderer, html: str) -> set[str]:
    """Render in a child forked from this warm process, as a worker's work-horse does; the PDF's font names."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (runs in the child)
        try:
            names = font_names(renderer.render(template=None, html=html, data={}).content)
            os.write(write_end, json.dumps(sorted(names)).encode())
        finally:
            os._exit(0)  # Skips the parent's cleanup (fixtures, atexit), as RQ's horse does.
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    return set(json.loads(payload or b"[]"))


@pytest.fixture
def font_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory that WeasyPrint's and our font folders are created in, to count what is left."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def warm_renderer(font_tmp: Path) -> Renderer:
    """A renderer that has rendered the invoice once, as a worker does before its first fork."""
    renderer = Renderer(TEMPLATES)
    renderer.render(template="invoice.html", html=None, data=load_catalog(TEMPLATES)["invoice.html"].sample_data)
    return renderer


@pytest.mark.parametrize("name", sorted(load_catalog(TEMPLATES)))
def test_built_in_templates_embed_the_bundled_inter_font(name: str) -> None:
    """Every font of a built-in template's PDF is the bundled Inter, not a system fallback."""
    renderer = Renderer(TEMPLATES)
    names = font_names(renderer.render(template=name, html=None, data=load_catalog(TEMPLATES)[name].sample_data).content)
    assert names and all(font.startswith("Inter") for font in names), names


def test_every_forked_render_embeds_its_font_face(warm_renderer: Renderer, font_tmp: Path) -> None:
    """Sequential renders forked from one warm renderer each get their @font-face font and leave no file behind."""
    kept = files_under(font_tmp)
    for _ in range(3):
        assert any(font.startswith(TENANT_FAMILY) for font in render_in_forked_child(warm_renderer, TENANT_FONT_HTML))
    assert files_under(font_tmp) == kept


def test_in_process_renders_embed_their_font_face_and_clean_up(warm_renderer: Renderer, font_tmp: Path) -> None:
    """Renders in one process also get their @font-face font every time, and delete its file afterwards."""
    kept = files_under(font_tmp)
    for _ in range(2):
        pdf = warm_renderer.render(template=None, html=TENANT_FONT_HTML, data={})
        assert any(font.startswith(TENANT_FAMILY) for font in font_names(pdf.content))
        assert files_under(font_tmp) == kept


def test_worker_embeds_a_tenant_font_on_every_job(private_db: dict[str, str], jobs: JobsClient, client: Any,
                                                  spawn_worker: Callable[..., WorkerProcess], tmp_path: Path) -> None:
    """End to end: one real worker renders three jobs with the same @font-face font; each PDF embeds it."""
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    spawn_worker({**private_db, "TMPDIR": str(worker_tmp)})
    kept = files_under(worker_tmp)
    for _ in range(3):
        done = jobs.wait(jobs.submit({"html": TENANT_FONT_HTML})["id"])
        assert done["status"] == "completed", done
        assert any(font.startswith(TENANT_FAMILY) for font in font_names(client.get(done["links"]["pdf"]).data))
    assert files_under(worker_tmp) == kept
