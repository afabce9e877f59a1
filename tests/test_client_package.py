"""The Python client as a distribution: only httpx beside the standard library, `mypy --strict` clean, and its
README's ten-line example writing a real PDF against the running service."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.conftest import TENANT_KEYS
from tests.support import ROOT, LiveServer

CLIENT = ROOT / "clients" / "python"
PACKAGE = CLIENT / "src" / "pdfq"


def test_distribution_needs_only_httpx() -> None:
    """The client declares httpx as its one dependency, installs the `pdfq` command, and imports nothing else."""
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert [re.split(r"[~=<>!]", d)[0] for d in project["dependencies"]] == ["httpx"]
    assert project["scripts"] == {"pdfq": "pdfq.cli:main"}
    assert (PACKAGE / "py.typed").is_file()
    imported: set[str] = set()
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.partition(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"httpx", "pdfq"}


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """`mypy --strict` finds nothing in the client package."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "src/pdfq"],
                            cwd=CLIENT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.usefixtures("workers", "redis")
def test_readme_example_writes_a_pdf(live_api: LiveServer, tmp_path: Path) -> None:
    """The README's ten-line example, run as written, writes a one-page invoice PDF."""
    readme = (CLIENT / "README.md").read_text()
    example = re.search(r"## Ten lines.*?```python\n(.*?)```", readme, re.S)
    assert example is not None
    assert len(example.group(1).strip().splitlines()) <= 10
    env = {**os.environ, "PDFQ_URL": live_api.url, "PDFQ_API_KEY": TENANT_KEYS["acme"],
           "PYTHONPATH": str(CLIENT / "src")}
    result = subprocess.run([sys.executable, "-c", example.group(1)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    reader = PdfReader(tmp_path / "INV-0001.pdf")
    assert len(reader.pages) == 1 and "INV-0001" in reader.pages[0].extract_text()
    assert result.stdout.startswith("INV-0001.pdf: 1 page(s), ")
