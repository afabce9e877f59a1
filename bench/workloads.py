"""What a user would run instead of the service: a naive Jinja2 + WeasyPrint loop, and headless Chromium printing."""
from __future__ import annotations

import asyncio
import functools
import copy
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jinja2

from bench.ceiling import TEMPLATES, RenderRun, invoice_data, plain_invoice_template

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def varied_invoice(number: int) -> dict[str, Any]:
    """The sample invoice with its own number, customer reference and quantities: no two documents alike."""
    data = copy.deepcopy(invoice_data())
    data["invoice_number"] = f"INV-B-{number:06d}"
    data["po_number"] = f"PO-{90000 + number}"
    for offset, item in enumerate(data["items"]):
        item["quantity"] = 1 + (number + offset) % 7
    return data


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    return plain_invoice_template()


def _naive_worker(args: tuple[int, int]) -> tuple[float, float]:
    """A user's own loop: the template loaded once, then per document `HTML(string=...).write_pdf()`, nothing shared."""
    from weasyprint import HTML

    first, count = args
    template = _template()

    def render(number: int) -> bytes:
        data = varied_invoice(number)
        return HTML(string=template.render({**data, "data": data}), base_url=TEMPLATES.as_uri() + "/").write_pdf()

    render(first)  # imports and the first layout, as any long-running loop has paid before
    started, cpu_started = time.perf_counter(), time.process_time()
    for number in range(first + 1, first + 1 + count):
        render(number)
    return time.perf_counter() - started, time.process_time() - cpu_started


def naive_run(processes: int, per_process: int) -> RenderRun:
    """The naive loop in one process per core, all at once; docs/s over the slowest process's time."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        runs = pool.map(_naive_worker, [(i * 100_000, per_process) for i in range(processes)])
    docs = processes * per_process
    return RenderRun(docs / max(wall for wall, _ in runs), sum(cpu for _, cpu in runs) / docs * 1000)


def invoice_document(number: int) -> str:
    """The invoice's HTML for document `number` (its own data), as the naive loop renders it."""
    data = varied_invoice(number)
    return _template().render({**data, "data": data})


async def _chromium_pages(pages: int, per_page: int, workdir: Path, document: Callable[[int], str],
                          fresh_context: bool) -> float:
    """One warm browser with `pages` pages printing at once; wall seconds for all documents after a warm-up each.

    With `fresh_context`, each document gets a context and page of its own (no cookies, storage or cache
    from the one before), the isolation the service gives every job; otherwise a page prints one document
    after another, its caches warm."""
    from playwright.async_api import async_playwright

    base = f'<base href="{TEMPLATES.as_uri()}/">'

    async def print_one(page: Any, number: int) -> bytes:
        path = workdir / f"doc-{number}.html"
        path.write_text(document(number).replace("<head>", f"<head>{base}", 1))
        if fresh_context:
            context = await page.context.browser.new_context(java_script_enabled=False)
            page = await context.new_page()
        try:
            await page.goto(path.as_uri(), wait_until="load")
            return await page.pdf(prefer_css_page_size=True, print_background=True)
        finally:
            if fresh_context:
                await page.context.close()

    async def loop(page: Any, first: int) -> None:
        for number in range(first, first + per_page):
            await print_one(page, number)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            tabs = [await browser.new_page() for _ in range(pages)]
            await asyncio.gather(*(print_one(tab, 900_000 + i) for i, tab in enumerate(tabs)))
            started = time.perf_counter()
            await asyncio.gather(*(loop(tab, i * 100_000) for i, tab in enumerate(tabs)))
            return time.perf_counter() - started
        finally:
            await browser.close()


def chromium_run(pages: int, per_page: int, document: Callable[[int], str] = invoice_document, *,
                 fresh_context: bool = False) -> float:
    """Docs/s of a warm headless Chromium (Debian's, through playwright) printing `document`s, `pages` at once."""
    with tempfile.TemporaryDirectory(prefix="pdfq-chromium-") as workdir:
        wall = asyncio.run(_chromium_pages(pages, per_page, Path(workdir), document, fresh_context))
    return pages * per_page / wall
