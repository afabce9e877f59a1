"""Progress during layout: a long document's percent moves while its pages are laid out, at a bounded rate."""
from __future__ import annotations

import time

import pytest

from shared.config import PROJECT_ROOT
from tests.conftest import JobsClient
from tests.support import wait_until
from worker.layout_progress import LAYOUT_REPORT_INTERVAL_S
from worker.render import Renderer

LONG_HTML = ("{% for i in range(sections) %}<h2>Section {{ i }}</h2>"
             "<p>{{ 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' * 40 }}</p>{% endfor %}")
"""About 0.7 pages per section: 200 sections are a 140-page document that takes seconds to lay out."""


def test_renderer_reports_layout_percent_as_pages_are_made() -> None:
    """The layout step reports rising percents between 30 and 70, no two closer together than the interval."""
    reports: list[tuple[str, int, float]] = []
    Renderer(PROJECT_ROOT / "templates").render(
        template=None, html=LONG_HTML, data={"sections": 200},
        progress=lambda step, percent: reports.append((step, percent, time.monotonic())))
    layout = [(percent, at) for step, percent, at in reports if step == "layout"]
    percents = [percent for percent, _ in layout]
    assert len(set(percents)) >= 4, reports
    assert percents == sorted(percents) and 30 <= percents[0] and percents[-1] < 70
    gaps = [b - a for (_, a), (_, b) in zip(layout[1:], layout[2:])]
    assert all(gap >= LAYOUT_REPORT_INTERVAL_S for gap in gaps)
    assert [step for step, _, _ in reports][-1] == "writing"


def test_short_document_makes_no_extra_progress_writes() -> None:
    """A one-page document laid out within the interval reports layout once, as before."""
    reports: list[tuple[str, int]] = []
    Renderer(PROJECT_ROOT / "templates").render(template=None, html="<p>short</p>", data={},
                                                progress=lambda step, percent: reports.append((step, percent)))
    assert reports == [("templating", 10), ("layout", 30), ("writing", 70)]


@pytest.mark.usefixtures("workers")
def test_worker_job_shows_several_layout_percents(jobs: JobsClient) -> None:
    """A client polling a long job through the API sees its layout percent take several values before it ends."""
    job = jobs.submit({"html": LONG_HTML, "data": {"sections": 250}, "timeout_s": 300})
    seen: set[int] = set()

    def finished() -> bool:
        current = jobs.get(job["id"])
        if current["progress"]["step"] == "layout":
            seen.add(current["progress"]["percent"])
        return current["status"] in ("completed", "failed")

    wait_until(finished, timeout=240, interval=0.05)
    done = jobs.get(job["id"])
    assert done["status"] == "completed", done
    assert len(seen - {30}) >= 3, seen
    assert all(30 <= percent < 70 for percent in seen)
