"""Both engines side by side, in one run: the service with `engine: weasyprint` and `engine: chromium` against a warm
playwright loop printing the same HTML, per document; and the Chromium engine's browser service on its own."""
from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.workloads import chromium_run
from shared.config import PROJECT_ROOT
from shared.template_catalog import load_catalog
from tests.support import children_of

if TYPE_CHECKING:
    from bench.__main__ import Bench

DOCUMENTS = ("invoice.html", "report.html", "book.html")
"""The one-page invoice, a four-page report with charts, and the long book (where the catalog has it)."""
TEMPLATES = PROJECT_ROOT / "templates"


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    found, stack = [pid], [pid]
    while stack:
        for child in children_of(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


class MemorySampler:
    """Peak memory (PSS, so shared pages count once) of the workers with their horses, browser services and
    browsers, sampled every 0.2 s while a run goes on."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            total = sum(_pss_mb(p) for root in self.pids for p in _tree(root))
            self.peak_mb = max(self.peak_mb, total)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _bytes_per_doc(bench: Bench, count: int) -> float:
    jobs = bench.session.get(f"{bench.api.url}/v1/jobs", params={"limit": count}, timeout=30).json()["jobs"]
    sizes = [j["result"]["bytes"] for j in jobs if j["result"]]
    return round(statistics.mean(sizes)) if sizes else 0.0


def side_by_side(bench: Bench, cores: int, per_document: int) -> dict[str, Any]:
    """Per document: docs/s, bytes/doc and peak memory of each engine through the service, and the warm loop."""
    from worker.render import Renderer

    catalog = load_catalog(TEMPLATES)
    renderer = Renderer(TEMPLATES)
    results: dict[str, Any] = {}
    for name in (n for n in DOCUMENTS if n in catalog):
        sample = catalog[name].sample_data
        count = per_document if name == "invoice.html" else max(cores * 2, per_document // 4)
        row: dict[str, Any] = {"jobs": count}
        for engine in ("weasyprint", "chromium"):
            print(f"engines: {name} with {engine} through the service ({count} jobs) ...", flush=True)
            bodies = [{"template": name, "data": sample, "engine": engine, "cache": False} for _ in range(count)]
            with MemorySampler([w.pid for w in bench.workers]) as memory:
                run = bench.polled(bodies)
            row[engine] = {"docs_per_s": run["docs_per_s"], "failed": run["failed"],
                           "bytes_per_doc": _bytes_per_doc(bench, count), "peak_pss_mb": round(memory.peak_mb)}
        html = renderer.render_html(template=name, html=None, data=sample)
        print(f"engines: {name} in a warm playwright loop on {cores} pages ...", flush=True)
        per_page = max(2, count // cores)
        row["playwright_loop_docs_per_s"] = round(chromium_run(cores, per_page, lambda _: html), 2)
        print(f"engines: {name} in a playwright loop with a fresh context per document ...", flush=True)
        row["playwright_fresh_context_docs_per_s"] = round(
            chromium_run(cores, per_page, lambda _: html, fresh_context=True), 2)
        row["chromium_vs_loop"] = round(row["chromium"]["docs_per_s"] / row["playwright_loop_docs_per_s"], 3)
        row["chromium_vs_fresh_context_loop"] = round(
            row["chromium"]["docs_per_s"] / row["playwright_fresh_context_docs_per_s"], 3)
        row["chromium_vs_weasyprint"] = round(row["chromium"]["docs_per_s"] / row["weasyprint"]["docs_per_s"], 3)
        results[name] = row
    return results


def browser_service(prints: int) -> dict[str, Any]:
    """The browser service alone over `prints` invoices: time to open a job's context and page (done for the
    next job after each print) and how long a job waited for it, and the browser's memory every 50 prints
    (restarts every BROWSER_MAX_JOBS prints keep it bounded)."""
    import json

    from shared.config import DEFAULT_BROWSER_MAX_JOBS, Settings
    from worker.browser_service import BrowserService, PrintRequest
    from worker.render import Renderer

    settings = Settings.from_env()
    assert settings.chromium_path, "the engines bench needs chromium"
    sample = json.loads((TEMPLATES / "invoice.json").read_text())["sample_data"]
    html = Renderer(TEMPLATES).render_html(template="invoice.html", html=None, data=sample)
    service = BrowserService(settings.chromium_path, TEMPLATES, frozenset())
    service.start()
    try:
        waits, opens, memory, started = [], [], [], time.perf_counter()
        for number in range(1, prints + 1):
            result = service.print(PrintRequest(html=html, pdf={"format": "A4", "prefer_css_page_size": True}))
            waits.append(result.open_ms)
            opens.append(result.context_open_ms)
            if number % 50 == 0:
                memory.append(round(service.stats()["memory_mb"]))
        elapsed = time.perf_counter() - started
        return {"prints": prints, "restart_every": DEFAULT_BROWSER_MAX_JOBS,
                "open_ms_median": round(statistics.median(opens), 1),
                "open_ms_p95": round(sorted(opens)[int(len(opens) * 0.95) - 1], 1),
                "job_wait_for_context_ms_median": round(statistics.median(waits), 2),
                "memory_mb_every_50": memory, "memory_mb_max": max(memory) if memory else None,
                "prints_per_s_one_page": round(prints / elapsed, 2)}
    finally:
        service.stop()
