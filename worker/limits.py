"""Per-render resource bounds: a page limit enforced during layout, and a memory cap per work-horse."""
from __future__ import annotations

import contextlib
import resource
from contextvars import ContextVar
from typing import Any, Iterator

import weasyprint.layout

from shared.errors import PageLimitExceeded

_page_limit: ContextVar[int | None] = ContextVar("page_limit", default=None)
_original_make_all_pages = weasyprint.layout.make_all_pages


def _bounded_make_all_pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
    limit = _page_limit.get()
    for count, page in enumerate(_original_make_all_pages(*args, **kwargs), start=1):
        if limit is not None and count > limit:
            raise PageLimitExceeded(f"the document passed the limit of {limit} pages (MAX_PAGES)")
        yield page


# WeasyPrint lays out every page before returning; counting as pages are made stops a
# 10,000-page document at the limit instead of after minutes of layout. (Pinned: WeasyPrint 70.)
weasyprint.layout.make_all_pages = _bounded_make_all_pages


@contextlib.contextmanager
def page_limit(limit: int) -> Iterator[None]:
    token = _page_limit.set(limit)
    try:
        yield
    finally:
        _page_limit.reset(token)


def cap_memory(megabytes: int) -> None:
    """Limit this process's address space: a runaway render fails with MemoryError, the machine lives."""
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
