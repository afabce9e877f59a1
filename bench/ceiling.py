"""The ceiling: the invoice rendered straight by WeasyPrint in one process per core, no queue at all."""
from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Callable

import jinja2

from shared.config import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"


def invoice_data() -> dict[str, Any]:
    return json.loads((TEMPLATES / "invoice.json").read_text())["sample_data"]


@dataclass(frozen=True)
class RenderRun:
    docs_per_s: float
    cpu_ms_per_doc: float
    """CPU time (user + system) per document: unlike wall time, barely moved by other load on the machine."""


def _timed(render: Callable[[], Any], count: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `count` renders after one warm-up render."""
    render()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(count):
        render()
    return time.perf_counter() - started, time.process_time() - cpu_started


def plain_invoice_template() -> jinja2.Template:
    """The invoice in a plain Jinja2 environment (no sandbox, no caches), with the filters it uses."""
    from worker.render import template_environment

    return template_environment(jinja2.Environment, loader=jinja2.FileSystemLoader(TEMPLATES)).get_template(
        "invoice.html")


def _plain_worker(count: int) -> tuple[float, float]:
    """Jinja2 + WeasyPrint with nothing of ours: warm once, then render `count` invoices."""
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    template, data, fonts = plain_invoice_template(), invoice_data(), FontConfiguration()

    def render() -> bytes:
        html = template.render({**data, "data": data})
        return HTML(string=html, base_url=TEMPLATES.as_uri() + "/").write_pdf(font_config=fonts)

    return _timed(render, count)


def _renderer_worker(count: int) -> tuple[float, float]:
    """The worker's own Renderer (restricted fetcher, page limit), same warm-up."""
    from worker.render import Renderer

    renderer, data = Renderer(TEMPLATES), invoice_data()
    return _timed(lambda: renderer.render(template="invoice.html", html=None, data=data), count)


def render_run(processes: int, per_process: int, plain: bool = True) -> RenderRun:
    """All processes render at once; docs/s over the slowest process's time."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        runs = pool.map(_plain_worker if plain else _renderer_worker, [per_process] * processes)
    docs = processes * per_process
    return RenderRun(docs / max(wall for wall, _ in runs), sum(cpu for _, cpu in runs) / docs * 1000)
