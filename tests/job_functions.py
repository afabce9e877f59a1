"""Test-only RQ job functions, importable by real worker processes (PYTHONPATH holds the project root)."""
from __future__ import annotations

import time


def pause(seconds: float) -> str:
    """Keep a worker busy without using the CPU."""
    time.sleep(seconds)
    return "rested"
