"""`python -m bench.profile_render [--uncached] [N]`: where one invoice render's time goes, with or without the caches.

Renders N invoices (different data each) with the worker's Renderer after the worker's warm-up, and prints the
share of render time in each phase (from cProfile). Run it under `py-spy record` for a flame graph.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from typing import Any

from bench.ceiling import TEMPLATES, invoice_data
from bench.workloads import varied_invoice

def _phases() -> dict[str, Any]:
    """Phase name -> the function whose cumulative time is that phase."""
    import weasyprint.css
    import weasyprint.document
    import weasyprint.formatting_structure.build
    import weasyprint.images
    import weasyprint.layout

    from worker.render import Renderer

    return {
        "Jinja2 templating": Renderer.render_html,
        "stylesheets: fetch and parse (<link>, <style>)": weasyprint.css.find_stylesheets,
        "cascade: match selectors, compute styles": weasyprint.css.StyleFor.__init__,
        "images: fetch and decode": weasyprint.images.get_image_from_uri,
        "box tree": weasyprint.formatting_structure.build.build_formatting_structure,
        "layout": weasyprint.layout.layout_document,
        "write PDF (draw, fonts, compress)": weasyprint.document.Document.write_pdf,
    }


def _key(function: Any) -> tuple[str, int, str]:
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def phases(stats: pstats.Stats, total: float) -> dict[str, float]:
    """Each phase's share of the total, in percent."""
    table = stats.stats  # type: ignore[attr-defined]
    return {name: round(table.get(_key(function), (0, 0, 0, 0.0))[3] / total * 100, 1)
            for name, function in _phases().items()}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_render")
    parser.add_argument("count", nargs="?", type=int, default=20)
    parser.add_argument("--uncached", action="store_true", help="drop the pre-parsed stylesheets and kept images")
    args = parser.parse_args()
    from worker.render import Renderer

    renderer = Renderer(TEMPLATES)
    renderer.render(template="invoice.html", html=None, data=invoice_data(), warm=True)  # the worker's warm-up
    if args.uncached:
        renderer.caches._files.clear()
        renderer.caches._inline.clear()
        renderer.caches._images.clear()
    documents = [varied_invoice(n) for n in range(args.count)]
    profiler = cProfile.Profile()
    started = time.process_time()
    profiler.enable()
    for data in documents:
        renderer.render(template="invoice.html", html=None, data=data)
    profiler.disable()
    cpu_ms = (time.process_time() - started) / args.count * 1000
    stats = pstats.Stats(profiler)
    total = stats.stats[_key(Renderer.render)][3]  # type: ignore[attr-defined]
    print(f"{'uncached' if args.uncached else 'cached'}: {cpu_ms:.0f} ms CPU per render (under cProfile)")
    for name, share in phases(stats, total).items():
        print(f"  {share:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
