"""A real headless Chromium (Debian's package) driven by playwright, for every page a person sees."""
from __future__ import annotations

import shutil
from typing import Iterator

from playwright.sync_api import Browser, sync_playwright

CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Root needs --no-sandbox; without the background-networking flags Chromium dials out at start-up."""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed; run `make test`, which installs it")
    return path


def launch() -> Iterator[Browser]:
    """One browser for a whole test session; each test opens its own context."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()
