"""Merged documents: laid-out parts joined in order into one document, with one outline entry per part."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weasyprint.document import Document


@dataclass(frozen=True)
class PartSource:
    """One part of a merged document, as the job carries it."""

    template: str | None = None
    html: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    css: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class PartPages:
    """Where a part landed in the merged PDF (`result.parts[i]`)."""

    title: str
    first_page: int
    pages: int

    def as_result(self) -> dict[str, Any]:
        return {"title": self.title, "first_page": self.first_page, "pages": self.pages}


def part_title(given: str | None, document: Document, number: int) -> str:
    """The part's `title`, else its document's <title>, else `Part N`."""
    return (given or "").strip() or (document.metadata.title or "").strip() or f"Part {number}"


def merge(parts: list[tuple[PartSource, Document]]) -> tuple[Document, tuple[PartPages, ...]]:
    """All parts' pages in order in one document, which shares the first part's fonts and metadata.

    Each part's first page gets a top-level bookmark with its title; the part's own bookmarks move one level down,
    under it. Each part starts on a page of its own because each was laid out as a document of its own.
    """
    pages, placed = [], []
    for number, (source, document) in enumerate(parts, start=1):
        title = part_title(source.title, document, number)
        for page in document.pages:
            page.bookmarks = [(level + 1, label, position, state) for level, label, position, state in page.bookmarks]
        if document.pages:
            document.pages[0].bookmarks.insert(0, (1, title, (0, 0), "closed"))
        placed.append(PartPages(title=title, first_page=len(pages) + 1, pages=len(document.pages)))
        pages.extend(document.pages)
    return parts[0][1].copy(pages), tuple(placed)
