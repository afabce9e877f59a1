"""`python -m bench.documents`: pages per second of each built-in document kind, in one warm process.

The book (many pages, footnotes, contents filled in by a second layout pass) against the one-page invoice, and the
cost of making that invoice a Factur-X e-invoice (PDF/A-3b, XML built, XSD-checked and embedded).
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

from shared.config import PROJECT_ROOT
from shared.template_catalog import load_catalog
from shared.options import RenderOptions
from worker.einvoice_pdf import embed_einvoice
from worker.render import RenderedPdf, Renderer

TEMPLATES = PROJECT_ROOT / "templates"
ROUNDS = 5


def measure(render: Callable[[], RenderedPdf]) -> dict[str, float]:
    """Median wall and CPU seconds of ROUNDS renders after a warm-up, and pages per CPU second."""
    render()
    walls, cpus, pages = [], [], 0
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        pages = render().pages
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    cpu_s = statistics.median(cpus)
    return {"pages": pages, "wall_s": round(statistics.median(walls), 3), "cpu_s": round(cpu_s, 3),
            "pages_per_cpu_s": round(pages / cpu_s, 2)}


def main() -> None:
    renderer = Renderer(TEMPLATES)
    catalog = load_catalog(TEMPLATES)
    invoice: dict[str, Any] = catalog["invoice.html"].sample_data

    options = RenderOptions.model_validate({"einvoice": {"profile": "en16931"}})

    def einvoice() -> RenderedPdf:
        pdf = renderer.render(template="invoice.html", html=None, data=invoice, options=options)
        assert options.einvoice is not None
        return embed_einvoice(pdf, options.einvoice, template="invoice.html", data=invoice).pdf

    results = {name: measure(lambda name=name: renderer.render(template=name, html=None,
                                                                 data=catalog[name].sample_data))
               for name in ("invoice.html", "book.html")}
    results["invoice.html + einvoice en16931"] = measure(einvoice)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
