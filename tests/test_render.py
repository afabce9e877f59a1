"""The renderer on its own: Jinja2 rules, WeasyPrint output, and what templates may load."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.errors import PageLimitExceeded, TemplateError
from worker.render import Renderer, money


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates", max_pages=5)


def text_of(content: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)


def test_data_keys_are_top_level_and_under_data(renderer: Renderer) -> None:
    """A template sees each data key as a variable and the whole object as `data`."""
    pdf = renderer.render(template=None, html="<p>{{ name }} / {{ data.name }} / {{ 1234.5|money }}</p>",
                          data={"name": "Grace"})
    assert "Grace / Grace / 1,234.50" in text_of(pdf.content)
    assert pdf.pages == 1 and len(pdf.sha256) == 64


@pytest.mark.parametrize(("html", "fragment"), [
    ("{{ missing }}", "missing"),
    ("{% if %}", "syntax error"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "sandbox"),
    ("{{ cycler.__init__.__globals__ }}", "sandbox"),
    ("{{ 1 / 0 }}", "division"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
])
def test_template_faults_are_template_errors(renderer: Renderer, html: str, fragment: str) -> None:
    """Missing fields, syntax errors, sandbox escapes and endless recursion are permanent template errors."""
    with pytest.raises(TemplateError) as raised:
        renderer.render(template=None, html=html, data={})
    assert fragment in str(raised.value).lower()


def test_named_template_is_looked_up_by_name_only(renderer: Renderer) -> None:
    """A path-like template name cannot reach files outside templates/."""
    with pytest.raises(TemplateError):
        renderer.render(template="../shared/config.py", html=None, data={})


def test_local_files_are_not_fetched(renderer: Renderer, tmp_path: Path) -> None:
    """file:// outside templates/ is refused and the render goes on without it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-42")
    html = (f'<link rel="stylesheet" href="file://{secret}"><img src="file:///etc/passwd">'
            f'<object data="file://{secret}"></object><p>visible</p>')
    pdf = renderer.render(template=None, html=html, data={}, css=f"@import url(file://{secret});")
    text = text_of(pdf.content)
    assert "visible" in text and "TOPSECRET" not in text and "root:" not in text


def test_page_limit_stops_runaway_documents(renderer: Renderer) -> None:
    """A document longer than max_pages fails with page_limit."""
    html = "{% for i in range(20) %}<p style='page-break-after: always'>{{ i }}</p>{% endfor %}"
    with pytest.raises(PageLimitExceeded):
        renderer.render(template=None, html=html, data={})


def test_money_filter() -> None:
    """money formats with thousands separators and two decimals."""
    assert money(1234567.891) == "1,234,567.89" and money("3") == "3.00"


@pytest.mark.parametrize("source", ["file:///etc/passwd", "assets/missing.icc", "http://169.254.169.254/profile.icc"])
def test_unloadable_color_profile_is_skipped(renderer: Renderer, source: str) -> None:
    """An @color-profile whose source is refused or missing is ignored, and the document still renders."""
    css = f"@color-profile --brand {{ src: url({source}) }} p {{ color: color(--brand 0.1 0.2 0.3) }}"
    pdf = renderer.render(template=None, html="<p>still rendered</p>", data={}, css=css)
    assert "still rendered" in text_of(pdf.content)
