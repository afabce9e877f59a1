"""Merged documents (`parts`): parts rendered in one worker and joined in order with one outline entry each."""
from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.template_catalog import load_catalog
from tests.conftest import JobsClient

CATALOG = load_catalog(PROJECT_ROOT / "templates")


def sample(name: str) -> dict[str, Any]:
    return CATALOG[name].sample_data


def outline(content: bytes) -> list[tuple[int, str, int]]:
    """(depth, title, 1-based page) of every bookmark, in order."""
    reader = PdfReader(io.BytesIO(content))
    found: list[tuple[int, str, int]] = []

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                found.append((depth, item.title, reader.get_destination_page_number(item) + 1))

    walk(reader.outline, 0)
    return found


def page_count(template: str | None, html: str | None, data: dict[str, Any], jobs: JobsClient, client) -> int:
    body = {"template": template, "data": data} if template else {"html": html, "data": data}
    done = jobs.wait(jobs.submit(body)["id"])
    assert done["status"] == "completed", done
    return done["result"]["pages"]


@pytest.mark.usefixtures("workers")
def test_parts_are_appended_in_order_with_one_outline_entry_each(jobs: JobsClient, client) -> None:
    """Pages add up, each part starts on its own page, and the top-level outline names each part at its first page."""
    appendix = "<html><head><title>Appendix A</title></head><body><h1>Terms</h1><p>{{ text }}</p></body></html>"
    parts = [
        {"template": "letter.html", "data": sample("letter.html"), "title": "Cover letter"},
        {"template": "report.html", "data": sample("report.html")},
        {"html": appendix, "data": {"text": "Payment within 30 days."}},
        {"html": "<p>Signed.</p>", "css": "p { color: red }"},
    ]
    alone = [page_count(p.get("template"), p.get("html"), p["data"] if "data" in p else {}, jobs, client)
             for p in parts]
    done = jobs.wait(jobs.submit({"parts": parts, "filename": "pack.pdf"})["id"])
    assert done["status"] == "completed", done
    assert done["template"] == "parts"
    content = client.get(done["links"]["pdf"]).data
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) == done["result"]["pages"] == sum(alone)

    report_title = "Annual Sales Performance Report 2024"
    first_pages = [1 + sum(alone[:i]) for i in range(len(parts))]
    titles = ["Cover letter", report_title, "Appendix A", "Part 4"]
    assert done["result"]["parts"] == [{"title": t, "first_page": f, "pages": n}
                                       for t, f, n in zip(titles, first_pages, alone)]
    entries = outline(content)
    assert [(title, page) for depth, title, page in entries if depth == 0] == list(zip(titles, first_pages))
    nested = [(title, page) for depth, title, page in entries if depth > 0]
    assert ("Terms", first_pages[2]) in nested  # a part's own headings sit under its entry
    assert all(page >= first_pages[1] for title, page in nested if title != "Terms")

    texts = [page.extract_text() for page in reader.pages]
    assert sample("letter.html")["recipient"]["name"] in texts[0]
    assert "Payment within 30 days." in texts[first_pages[2] - 1]
    assert texts[first_pages[3] - 1].strip().startswith("Signed.")


@pytest.mark.parametrize(("parts", "field"), [
    ([{"template": "letter.html", "data": {}}, {"template": "nope.html"}], "parts[1].template"),
    ([{"html": "<p>a</p>"}, {"html": "<p>b</p>", "template": "letter.html"}], "parts[1]"),
    ([{"html": "<p>a</p>", "colour": "red"}], "parts[0].colour"),
    ([{"html": "<p>a</p>", "data": []}], "parts[0].data"),
    ([{"html": "<p>a</p>", "title": "t" * 501}], "parts[0].title"),
    ([], "parts"),
    ([{"html": "<p>a</p>"}] * 101, "parts"),
])
def test_a_bad_part_is_422_naming_it_and_nothing_is_enqueued(client, auth, parts: list[Any], field: str) -> None:
    """One bad part refuses the whole request, naming parts[i] and its field; no job is created."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={"parts": parts})
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert field in [e["field"] for e in response.json["errors"]], response.json
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


@pytest.mark.parametrize("extra", [{"template": "letter.html"}, {"data": {"a": 1}}, {"css": "p {}"},
                                   {"options": {"einvoice": {"profile": "basic"}}}])
def test_parts_exclude_a_top_level_source(client, auth, extra: dict[str, Any]) -> None:
    """With parts, the job itself carries no template, data, css or e-invoice: each part has its own."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={"parts": [{"html": "<p>a</p>"}], **extra})
    assert response.status_code == 422, response.json
    assert response.json["errors"][0]["field"] == "body"


@pytest.mark.usefixtures("workers")
def test_a_part_failing_in_the_worker_names_its_index(jobs: JobsClient) -> None:
    """A part whose data misses a field fails the job as a template error that says which part."""
    done = jobs.wait(jobs.submit({"parts": [{"html": "<p>ok</p>"}, {"html": "<p>{{ customer.name }}</p>"}]})["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "template_error"
    assert done["error"]["message"].startswith("parts[1]: ") and "customer" in done["error"]["message"]


def test_page_limit_counts_all_parts(tmp_path) -> None:
    """MAX_PAGES bounds the merged document, not each part: parts within the limit alone can pass it together."""
    from shared.errors import PageLimitExceeded
    from worker.merge import PartSource
    from worker.render import Renderer

    renderer = Renderer(PROJECT_ROOT / "templates", max_pages=5)
    three_pages = PartSource(html="{% for i in range(3) %}<p style='break-after: page'>{{ i }}</p>{% endfor %}")
    assert renderer.render_parts([three_pages]).pages == 3
    with pytest.raises(PageLimitExceeded):
        renderer.render_parts([three_pages, three_pages])
