"""The book template: contents page numbers from the layout, right-hand chapter openings, running heads, notes."""
from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.template_catalog import load_catalog
from worker.render import Renderer

TEMPLATES = PROJECT_ROOT / "templates"
SAMPLE = load_catalog(TEMPLATES)["book.html"].sample_data


@pytest.fixture(scope="module")
def book_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("book") / "book.pdf"
    path.write_bytes(Renderer(TEMPLATES).render(template="book.html", html=None, data=SAMPLE).content)
    return path


def page_texts(path: Path) -> list[str]:
    """Each page's text as pdftotext lays it out, 1-based pages at index i - 1."""
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                                                           check=True).stdout).group(1))
    return [subprocess.run(["pdftotext", "-layout", "-f", str(n), "-l", str(n), str(path), "-"],
                           capture_output=True, text=True, check=True).stdout for n in range(1, pages + 1)]


def contents_entries(texts: list[str]) -> dict[str, int]:
    """Chapter title -> page number, as printed on the contents page."""
    toc = next(t for t in texts if "Contents" in t and "Chapter" not in t)
    entries = {}
    for chapter in SAMPLE["chapters"]:
        line = next(line for line in toc.splitlines() if chapter["title"] in line)
        entries[chapter["title"]] = int(line.split()[-1])
    return entries


def test_sample_fills_at_least_twenty_pages(book_pdf: Path) -> None:
    """The catalogue's sample book is long enough to show the paged-media features (>= 20 pages)."""
    assert len(PdfReader(book_pdf).pages) >= 20


def test_contents_numbers_are_the_pages_chapters_start_on(book_pdf: Path) -> None:
    """Each contents entry names the page (pdftotext per page) where that chapter's heading is, a right-hand page."""
    texts = page_texts(book_pdf)
    entries = contents_entries(texts)
    assert len(entries) == len(SAMPLE["chapters"]) >= 7
    for number, chapter in enumerate(SAMPLE["chapters"], start=1):
        start = next(i for i, text in enumerate(texts, start=1) if f"CHAPTER {number}\n" in text.upper()
                     and chapter["title"] in text)
        assert entries[chapter["title"]] == start, chapter["title"]
        assert start % 2 == 1, f"{chapter['title']} opens on a left-hand page"
        folio = [line.strip() for line in texts[start - 1].splitlines() if line.strip()][-1]
        assert folio == str(start), "the opening page's folio is its page number"


def test_running_heads_name_the_chapter_on_left_pages(book_pdf: Path) -> None:
    """A left-hand page inside a chapter is headed with its page number and that chapter's title."""
    texts = page_texts(book_pdf)
    entries = contents_entries(texts)
    starts = sorted((page, title) for title, page in entries.items())
    checked = 0
    for (start, title), (following, _) in zip(starts, starts[1:]):
        for page in range(start + 1, following):
            lines = [line for line in texts[page - 1].splitlines() if line.strip()]
            if not lines or page % 2 == 1:
                continue
            head = lines[0].split()
            assert head[0] == str(page) and " ".join(head[1:]) == title, (page, head)
            checked += 1
    assert checked == len(starts) - 1


def test_footnotes_sit_at_the_foot_of_their_page(book_pdf: Path) -> None:
    """A paragraph's note is typeset at the foot of the page that cites it, numbered from 1 in each chapter."""
    texts = page_texts(book_pdf)
    note = SAMPLE["chapters"][1]["paragraphs"][0]["note"]
    page = next(t for t in texts if note[:40] in " ".join(t.split()))
    lines = [" ".join(line.split()) for line in page.splitlines() if line.strip()]
    note_line = next(i for i, line in enumerate(lines) if line.startswith("1. " + note[:20]))
    assert note_line > len(lines) - 6, "the note is in the last lines of the page, above the folio"


def test_outline_lists_contents_and_every_chapter(book_pdf: Path) -> None:
    """The PDF outline has one bookmark per chapter, pointing at the chapter's first page."""
    reader = PdfReader(book_pdf)
    outline = [(item.title, reader.get_destination_page_number(item) + 1) for item in reader.outline
               if not isinstance(item, list)]
    entries = contents_entries(page_texts(book_pdf))
    assert outline[0][0] == "Contents"
    assert outline[1:] == [(chapter["title"], entries[chapter["title"]]) for chapter in SAMPLE["chapters"]]


def test_figure_has_its_caption(book_pdf: Path) -> None:
    """The chapter figure is drawn with a numbered caption beneath it."""
    text = " ".join(" ".join(page_texts(book_pdf)).split())
    chapter = next(i for i, c in enumerate(SAMPLE["chapters"], start=1) if "figure" in c)
    caption = SAMPLE["chapters"][chapter - 1]["figure"]["caption"]
    assert f"Figure {chapter}. {caption[:30]}" in text
