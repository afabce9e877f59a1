"""The ceiling: the invoice rendered straight by WeasyPrint in one process per core, no queue at all."""
from __future__ import annotations

import json
import multiprocessing
import time
from typing import Any

import jinja2

from shared.config import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"


def invoice_data() -> dict[str, Any]:
    return json.loads((TEMPLATES / "invoice.json").read_text())["sample_data"]


def _plain_worker(count: int) -> float:
    """Jinja2 + WeasyPrint with nothing of ours: warm once, then render `count` invoices."""
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from worker.render import money

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["money"] = money
    template, data, fonts = env.get_template("invoice.html"), invoice_data(), FontConfiguration()

    def render() -> bytes:
        html = template.render({**data, "data": data})
        return HTML(string=html, base_url=TEMPLATES.as_uri() + "/").write_pdf(font_config=fonts)

    render()
    started = time.perf_counter()
    for _ in range(count):
        render()
    return time.perf_counter() - started


def _renderer_worker(count: int) -> float:
    """The worker's own Renderer (restricted fetcher, page limit), same warm-up."""
    from worker.render import Renderer

    renderer, data = Renderer(TEMPLATES), invoice_data()
    renderer.render(template="invoice.html", html=None, data=data)
    started = time.perf_counter()
    for _ in range(count):
        renderer.render(template="invoice.html", html=None, data=data)
    return time.perf_counter() - started


def docs_per_second(processes: int, per_process: int, plain: bool = True) -> float:
    """All processes render at once; docs/s over the slowest process's time."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        times = pool.map(_plain_worker if plain else _renderer_worker, [per_process] * processes)
    return processes * per_process / max(times)
