"""The built-in templates: names, descriptions and sample data read from `templates/`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    description: str
    sample_data: dict[str, Any]


@lru_cache(maxsize=8)
def load_catalog(templates_dir: Path) -> dict[str, TemplateInfo]:
    """Each `NAME.html` beside a `NAME.json` (description, sample_data) is a public template."""
    catalog: dict[str, TemplateInfo] = {}
    for html_path in sorted(templates_dir.glob("*.html")):
        sidecar = html_path.with_suffix(".json")
        if not sidecar.is_file():
            continue
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        catalog[html_path.name] = TemplateInfo(
            name=html_path.name,
            description=str(info.get("description", "")),
            sample_data=dict(info.get("sample_data", {})),
        )
    return catalog
