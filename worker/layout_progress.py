"""Progress during layout: the share of a document's text WeasyPrint has paged, reported at a bounded rate."""
from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import weasyprint.layout
from weasyprint.formatting_structure.boxes import TextBox

import worker.limits  # noqa: F401  (its page hook must be in place first: this one wraps it)

LAYOUT_REPORT_INTERVAL_S = 0.5
"""Least time between two progress writes during layout, in seconds: a 300-page book moves without a Redis
write per page."""

_observer: ContextVar[Callable[[float], None] | None] = ContextVar("layout_observer", default=None)
_inner_make_all_pages = weasyprint.layout.make_all_pages


def _text_length(html: Any) -> int:
    """Characters of text in the document's body: the yardstick that paged text is measured against."""
    root = html.etree_element
    body = root.find("body")
    return sum(len(text) for text in (body if body is not None else root).itertext())


def _observed_make_all_pages(context: Any, root_box: Any, html: Any, pages: list[Any]) -> Iterator[Any]:
    observe = _observer.get()
    if observe is None:
        yield from _inner_make_all_pages(context, root_box, html, pages)
        return
    total, done = max(1, _text_length(html)), 0
    for page in _inner_make_all_pages(context, root_box, html, pages):
        done += sum(len(box.text) for box in page.descendants() if isinstance(box, TextBox))
        observe(min(done / total, 1.0))
        yield page


# WeasyPrint lays out all pages inside one call; the pages it yields are the only sign of how far it has got.
weasyprint.layout.make_all_pages = _observed_make_all_pages


@contextlib.contextmanager
def layout_progress(report: Callable[[str, int], None], start: int, end: int,
                    interval_s: float = LAYOUT_REPORT_INTERVAL_S) -> Iterator[None]:
    """Within the block, report step `layout` moving from `start` to `end` percent as pages are laid out.

    A repagination pass (page counters, target-counter) starts measuring again; the percent never goes back.
    """
    state = {"percent": start, "at": time.monotonic()}

    def observe(fraction: float) -> None:
        percent = start + int((end - start) * fraction)
        now = time.monotonic()
        if percent > state["percent"] and now - state["at"] >= interval_s:
            state.update(percent=percent, at=now)
            report("layout", percent)

    token = _observer.set(observe)
    try:
        yield
    finally:
        _observer.reset(token)
