"""`python -m bench.options`: render time and file size of each render option on the invoice, and of each
`quality` level on a photo-heavy document (median of several renders in one warm process)."""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from typing import Any

from bench.photos import photo_album_html
from shared.config import PROJECT_ROOT
from shared.options import RenderOptions
from shared.template_catalog import load_catalog
from worker.render import Renderer

CSV = base64.b64encode(b"sku,description,qty,unit_price\n" + b"A-1,Item,3,12.50\n" * 200).decode()
INVOICE_OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "page": {"page": {"size": "Letter", "orientation": "landscape", "margins_mm": 15}},
    "page_ranges": {"page_ranges": "1"},
    "quality=draft": {"quality": "draft"},
    "pdf/a-3b": {"pdf_variant": "pdf/a-3b"},
    "pdf/ua-1": {"pdf_variant": "pdf/ua-1"},
    "document": {"document": {"title": "Invoice INV-001", "author": "Acme Ltd", "keywords": ["invoice"], "lang": "en"}},
    "attachments (3.6 KB csv)": {"attachments": [{"filename": "lines.csv", "content_base64": CSV, "mime_type": "text/csv"}]},
    "watermark": {"watermark": {"text": "DRAFT"}},
    "encryption": {"encryption": {"owner_password": "owner", "user_password": "user", "permissions": ["print"]}},
}


def measure(renderer: Renderer, rounds: int, configs: dict[str, dict[str, Any]],
            **source: Any) -> dict[str, tuple[float, int]]:
    """{name: (median CPU ms, bytes)} of rendering `source` with each config's options.

    CPU time of this process, not wall time: the machine is shared, and other processes' load would swamp the
    differences. The configs are interleaved round by round, so that drift (thermal, caches) hits each alike.
    """
    parsed = {name: RenderOptions.model_validate(options) for name, options in configs.items()}
    for options in parsed.values():
        renderer.render(options=options, **source)  # warm: fonts, images, compiled template
    times: dict[str, list[float]] = {name: [] for name in parsed}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name, options in parsed.items():
            started = time.process_time()
            sizes[name] = len(renderer.render(options=options, **source).content)
            times[name].append((time.process_time() - started) * 1000)
    return {name: (statistics.median(times[name]), sizes[name]) for name in parsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    renderer = Renderer(PROJECT_ROOT / "templates")
    invoice: dict[str, Any] = {"template": "invoice.html", "html": None,
               "data": load_catalog(PROJECT_ROOT / "templates")["invoice.html"].sample_data}
    measured = measure(renderer, args.rounds, INVOICE_OPTIONS, **invoice)
    base_ms, base_bytes = measured["none"]
    rows = [{"option": name, "cpu_ms": round(ms, 1), "bytes": size, "extra_cpu_ms": round(ms - base_ms, 1),
             "extra_bytes": size - base_bytes} for name, (ms, size) in measured.items()]
    album: dict[str, Any] = {"template": None, "html": photo_album_html(), "data": {}}
    levels = {level: {"quality": level} for level in ("high", "medium", "low", "draft")}
    quality = [{"quality": level, "cpu_ms": round(ms, 1), "bytes": size}
               for level, (ms, size) in measure(renderer, max(3, args.rounds // 3), levels, **album).items()]
    print(json.dumps({"invoice": rows, "photo_album": quality}, indent=2))


if __name__ == "__main__":
    main()
