"""The web page at / in a real Chromium against the real server and workers: submit, follow, preview, download."""
from __future__ import annotations

import re
from typing import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, Request, expect

from tests.conftest import TENANT_KEYS
from tests.support import LiveServer

pytestmark = pytest.mark.usefixtures("workers")

RENDER_TIMEOUT_MS = 60_000


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A page 360 px wide, as on a small phone."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


def sign_in(page: Page, server: LiveServer, key: str) -> None:
    page.goto(server.url)
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")


def wait_for_gallery(page: Page) -> None:
    """Every template tile shows its preview image, loaded."""
    page.wait_for_function("""() => {
        const images = [...document.querySelectorAll('#gallery .tile img')];
        return images.length >= 3 && images.every((img) => img.complete && img.naturalWidth > 0);
    }""")


def submit_and_complete(page: Page) -> None:
    page.click("#submit")
    expect(page.locator("#job-status")).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function("""() => {
        const images = [...document.querySelectorAll('#previews img')];
        return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
    }""")


def test_invoice_is_submitted_followed_previewed_and_downloaded(page: Page, live_api: LiveServer) -> None:
    """The invoice with its sample data ends `completed` live, shows a loaded page preview, and the download is a PDF."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    sign_in(page, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(page)
    expect(page.locator("input[name=template][value='invoice.html']")).to_be_checked()
    expect(page.locator("#data")).to_have_value(re.compile(r'"invoice_number": "INV-2025-0142"'))
    submit_and_complete(page)
    expect(page.locator("#job-step")).to_have_text("done")
    expect(page.locator("#job-percent")).to_have_text("100%")
    assert any("/events?token=" in url for url in urls), "the live panel follows the job's SSE link"
    href = page.get_attribute("#download", "href")
    assert href is not None and "/pdf?token=" in href
    head = page.evaluate("async (url) => new TextDecoder().decode((await (await fetch(url)).arrayBuffer()).slice(0, 5))",
                         href)
    assert head == "%PDF-"
    assert requests.get(live_api.url + href, timeout=10).content.startswith(b"%PDF-")
    job_id = page.text_content("#job-id")
    expect(page.locator("#recent li").first).to_contain_text("completed")
    expect(page.locator("#recent li").first).to_contain_text("invoice.html")
    assert page.evaluate("sessionStorage.getItem('pdfq.apiKey')") == TENANT_KEYS["acme"]
    assert not [url for url in urls if TENANT_KEYS["acme"] in url], "the key never travels in a URL"
    assert job_id


def test_invalid_key_shows_the_401_message(page: Page, live_api: LiveServer) -> None:
    """An unknown key shows the problem's title and detail, and is not kept."""
    sign_in(page, live_api, "not-a-key")
    alert = page.locator("#alert")
    expect(alert).to_be_visible()
    expect(page.locator("#alert-title")).to_have_text("Unauthorized")
    expect(page.locator("#alert-detail")).to_have_text("send 'Authorization: Bearer <key>' with a valid API key")
    assert page.evaluate("sessionStorage.getItem('pdfq.apiKey')") is None


def test_invalid_json_is_flagged_and_never_sent(page: Page, live_api: LiveServer) -> None:
    """Broken JSON data is marked invalid as it is typed, and submitting it sends no request to the API."""
    sign_in(page, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(page)
    posts: list[Request] = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else None)
    page.fill("#data", '{"invoice_number": "INV-1",\n  "items": [}')
    expect(page.locator("#data")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#data-status")).to_contain_text("Invalid JSON")
    expect(page.locator("#data-status")).to_contain_text("line 2")
    page.click("#submit")
    expect(page.locator("#alert-title")).to_have_text("Invalid JSON data")
    page.fill("#data", "[1, 2]")
    page.click("#submit")
    expect(page.locator("#data-status")).to_have_text("Must be a JSON object { … }")
    page.locator("details.more summary").click()
    page.fill("#data", "{}")
    page.fill("#options-json", "{nope")
    page.click("#submit")
    expect(page.locator("#alert-title")).to_have_text("Invalid options JSON")
    assert posts == [], "nothing was sent"
    expect(page.locator("#job-live")).to_be_hidden()


def test_api_errors_show_the_problem_title_detail_and_fields(page: Page, live_api: LiveServer) -> None:
    """A 422 from the API is shown as its title, detail and the fields it names."""
    sign_in(page, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(page)
    page.locator("details.more summary").click()
    page.fill("#options-json", '{"page_ranges": "1-", "no_such_option": true}')
    page.click("#submit")
    expect(page.locator("#alert-title")).to_have_text("Validation failed")
    expect(page.locator("#alert-fields")).to_contain_text("options")


def test_another_key_shows_nothing_of_the_first_tenant(page: Page, live_api: LiveServer) -> None:
    """Switching keys clears the job panel and lists only the new tenant's jobs."""
    sign_in(page, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(page)
    page.locator("input[name=template][value='letter.html']").check()
    submit_and_complete(page)
    acme_job = page.text_content("#job-id")
    page.fill("#api-key", TENANT_KEYS["globex"])
    page.click("text=Use key")
    wait_for_gallery(page)
    expect(page.locator("#job-live")).to_be_hidden()
    page.wait_for_function("() => !document.querySelector('#recent-empty').hidden || "
                           "document.querySelectorAll('#recent li').length > 0")
    assert acme_job and acme_job not in page.content()


def test_keyboard_alone_picks_a_template_and_submits(page: Page, live_api: LiveServer) -> None:
    """Tab, arrow keys and Enter are enough: the key, a template (its sample data loads), then submit."""
    page.goto(live_api.url)
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type(TENANT_KEYS["acme"])
    page.keyboard.press("Enter")
    wait_for_gallery(page)
    page.focus("input[name=template][value='invoice.html']")
    page.keyboard.press("ArrowRight")
    expect(page.locator("input[name=template][value='letter.html']")).to_be_checked()
    expect(page.locator("#data")).not_to_have_value(re.compile("invoice_number"))
    page.focus("#submit")
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)


def test_strict_csp_and_no_console_errors(page: Page, live_api: LiveServer) -> None:
    """The page is served with a CSP allowing no inline script or style, and runs without a violation."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    response = page.goto(live_api.url)
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    sign_in(page, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(page)
    assert problems == []


def test_phone_width_has_no_horizontal_scroll(phone: Page, live_api: LiveServer) -> None:
    """At 360 px wide, with templates and a finished job's previews shown, nothing scrolls sideways."""
    sign_in(phone, live_api, TENANT_KEYS["acme"])
    wait_for_gallery(phone)
    submit_and_complete(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    box = phone.locator("#previews img").first.bounding_box()
    assert box is not None and box["width"] > 200, "the preview is large enough to read"
