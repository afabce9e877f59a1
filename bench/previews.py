"""`python -m bench.previews`: CPU and wall time per page preview, PDFium (pypdfium2) against poppler's pdftoppm.

Each built-in template is rendered once with its sample data (warm, as a worker does), then every page is
rasterised ROUNDS times by each rasteriser; the figures are medians per page, next to the template's own
render time (what an eager preview in the worker would add to each job).
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from typing import Callable

from shared.config import PROJECT_ROOT
from shared.previews import DEFAULT_PREVIEW_WIDTH_PX, render_png
from shared.template_catalog import load_catalog
from worker.render import Renderer

ROUNDS = 7
WIDTHS_PX = (DEFAULT_PREVIEW_WIDTH_PX, 1200)


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process and its children) of one call."""
    wall, own, children = time.perf_counter(), cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
    work()
    cpu = cpu_s(resource.RUSAGE_SELF) - own + cpu_s(resource.RUSAGE_CHILDREN) - children
    return (time.perf_counter() - wall) * 1000, cpu * 1000


def pdftoppm(pdf: bytes, page: int, width_px: int) -> bytes:
    return subprocess.run(["pdftoppm", "-png", "-f", str(page), "-l", str(page), "-scale-to-x", str(width_px),
                           "-scale-to-y", "-1", "-singlefile", "-"], input=pdf, capture_output=True, check=True).stdout


def median_of(work: Callable[[], object]) -> dict[str, float]:
    runs = [timed(work) for _ in range(ROUNDS)]
    return {"wall_ms": round(statistics.median(r[0] for r in runs), 1),
            "cpu_ms": round(statistics.median(r[1] for r in runs), 1)}


def main() -> None:
    templates = PROJECT_ROOT / "templates"
    renderer = Renderer(templates)
    report = []
    for info in load_catalog(templates).values():
        renderer.render(template=info.name, html=None, data=info.sample_data)  # warm, as warm_up does
        rendered = renderer.render(template=info.name, html=None, data=info.sample_data)
        render = median_of(lambda: renderer.render(template=info.name, html=None, data=info.sample_data))
        for width in WIDTHS_PX:
            pdfium = [median_of(lambda p=p: render_png(rendered.content, p, width)) for p in range(1, rendered.pages + 1)]
            poppler = [median_of(lambda p=p: pdftoppm(rendered.content, p, width)) for p in range(1, rendered.pages + 1)]
            report.append({
                "template": info.name, "pages": rendered.pages, "width_px": width, "render": render,
                "pdfium_per_page": {k: round(statistics.mean(x[k] for x in pdfium), 1) for k in pdfium[0]},
                "pdftoppm_per_page": {k: round(statistics.mean(x[k] for x in poppler), 1) for k in poppler[0]},
                "png_bytes": {"pdfium": len(render_png(rendered.content, 1, width)),
                              "pdftoppm": len(pdftoppm(rendered.content, 1, width))},
            })
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
