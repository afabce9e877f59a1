"""Each render option on its own, through the renderer (no queue), checked in the written PDF."""
from __future__ import annotations

import base64
import io
from typing import Any

import pikepdf
import pytest
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.errors import PageRangeEmpty
from shared.options import RenderOptions
from shared.template_catalog import load_catalog
from bench.photos import photo_album_html
from worker.render import Renderer, RenderedPdf

MM = 72 / 25.4
SIX_PAGES = "{% for i in range(1, 7) %}<p style='break-after: page'>page-{{ i }}</p>{% endfor %}"
SAMPLES = {name: info.sample_data for name, info in load_catalog(PROJECT_ROOT / "templates").items()}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates", max_pages=50)


def render(renderer: Renderer, options: dict[str, Any], html: str = "<p>hello</p>", **kwargs: Any) -> RenderedPdf:
    return renderer.render(template=None, html=html, data={}, options=RenderOptions.model_validate(options), **kwargs)


def media_box_mm(content: bytes, page: int = 0, password: str = "") -> tuple[float, float]:
    with pikepdf.open(io.BytesIO(content), password=password) as pdf:
        x0, y0, x1, y1 = (float(v) for v in pdf.pages[page].MediaBox)
    return round((x1 - x0) / MM, 1), round((y1 - y0) / MM, 1)


def page_texts(content: bytes, password: str | None = None) -> list[str]:
    reader = PdfReader(io.BytesIO(content))
    if password is not None:
        reader.decrypt(password)
    return [page.extract_text() for page in reader.pages]


@pytest.mark.parametrize(("page", "expected"), [
    ({"size": "A4"}, (210, 297)),
    ({"size": "letter"}, (215.9, 279.4)),
    ({"size": "LEGAL", "orientation": "landscape"}, (355.6, 215.9)),
    ({"size": "a3", "orientation": "portrait"}, (297, 420)),
    ({"size": "A5"}, (148, 210)),
    ({"size": "B5"}, (176, 250)),
    ({"size": "Tabloid"}, (279.4, 431.8)),
    ({"size": {"width_mm": 100, "height_mm": 150}}, (100, 150)),
    ({"size": {"width_mm": 100, "height_mm": 150}, "orientation": "landscape"}, (150, 100)),
    ({"orientation": "landscape"}, (297, 210)),
])
def test_page_size_and_orientation_set_the_media_box(renderer: Renderer, page: dict, expected: tuple) -> None:
    """page.size and page.orientation decide every page's media box, over the template's @page size."""
    html = "<style>@page { size: A6 }</style><p>one</p><p style='break-before: page'>two</p>"
    pdf = render(renderer, {"page": page}, html)
    assert pdf.pages == 2
    assert media_box_mm(pdf.content, 0) == media_box_mm(pdf.content, 1) == pytest.approx(expected, abs=0.2)


def test_margins_override_the_template_and_move_the_text(renderer: Renderer) -> None:
    """margins_mm as one number or per side replaces the template's @page margins (text starts at the new left)."""
    html = "<style>@page { size: A4; margin: 50mm } body, p { margin: 0 }</style><p>MARGINTEST</p>"

    def text_left_mm(options: dict) -> float:
        xs: list[float] = []
        page = PdfReader(io.BytesIO(render(renderer, options, html).content)).pages[0]
        page.extract_text(visitor_text=lambda text, cm, tm, *_: xs.append(tm[4] * cm[0] + cm[4]) if text.strip() else None)
        return round(min(xs) / MM)

    assert text_left_mm({}) == 50
    assert text_left_mm({"page": {"margins_mm": 10}}) == 10
    assert text_left_mm({"page": {"margins_mm": {"left": 25}}}) == 25
    assert text_left_mm({"page": {"size": "A4", "margins_mm": {"top": 5, "right": 5, "bottom": 5, "left": 0}}}) == 0


@pytest.mark.parametrize(("ranges", "kept"), [
    ("2", [2]), ("1-3,5", [1, 2, 3, 5]), ("4-", [4, 5, 6]), ("5,1", [1, 5]), ("2-3,3-4", [2, 3, 4]),
    ("6-99", [6]), (" 1 , 6 ", [1, 6]),
])
def test_page_ranges_keep_those_pages_in_document_order(renderer: Renderer, ranges: str, kept: list[int]) -> None:
    """page_ranges keeps the listed pages once each, in document order; pages past the end are dropped."""
    pdf = render(renderer, {"page_ranges": ranges}, SIX_PAGES)
    texts = page_texts(pdf.content)
    assert pdf.pages == len(texts) == len(kept)
    assert [t.strip() for t in texts] == [f"page-{i}" for i in kept]


def test_page_ranges_that_keep_nothing_fail_permanently(renderer: Renderer) -> None:
    """A range wholly past the end is a permanent page_range failure."""
    with pytest.raises(PageRangeEmpty) as raised:
        render(renderer, {"page_ranges": "7-"}, SIX_PAGES)
    assert raised.value.code == "page_range" and raised.value.permanent


def test_quality_levels_shrink_photos_and_high_keeps_them(renderer: Renderer) -> None:
    """Lower quality levels give smaller files (images downsampled and re-encoded); high embeds them as given."""
    html = photo_album_html(count=2)
    sizes = {q: len(render(renderer, {"quality": q}, html).content) for q in ("draft", "low", "medium", "high")}
    assert sizes["draft"] < sizes["low"] < sizes["medium"] < sizes["high"]
    with pikepdf.open(io.BytesIO(render(renderer, {"quality": "draft"}, html).content)) as pdf:
        widths = [int(img.Width) for page in pdf.pages for img in page.get_images().values()]
    # 170 mm of A4 content width at 72 dpi is about 480 px; the source is 1600 px wide.
    assert widths and all(w <= 500 for w in widths)


def test_document_metadata_reaches_info_xmp_and_lang(renderer: Renderer) -> None:
    """document.* fills the Info dictionary, the XMP packet and the catalog's /Lang, over the HTML's own."""
    document = {"title": "Invoice INV-001", "author": "Acme Ltd", "subject": "March", "keywords": ["invoice", "acme"],
                "lang": "de-CH"}
    pdf = render(renderer, {"document": document}, "<html lang='en'><title>Old</title><p>x</p></html>")
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        info = {k: str(v) for k, v in doc.docinfo.items()}
        meta = doc.open_metadata()
        assert info["/Title"] == meta["dc:title"] == "Invoice INV-001"
        assert info["/Author"] == "Acme Ltd" and meta["dc:creator"] == ["Acme Ltd"]
        assert info["/Subject"] == meta["dc:description"] == "March"
        assert info["/Keywords"] == meta["pdf:Keywords"] == "invoice, acme"
        assert str(doc.Root.Lang) == "de-CH"


def test_attachments_are_embedded_byte_for_byte(renderer: Renderer) -> None:
    """Each attachment is an embedded file with its name, MIME type, description and exact bytes."""
    files = {"lines.csv": b"sku,qty\nA-1,3\n", "blob.bin": bytes(range(256)) * 10}
    attachments = [{"filename": "../../lines.csv", "content_base64": base64.b64encode(files["lines.csv"]).decode(),
                    "mime_type": "text/csv", "description": "Invoice lines"},
                   {"filename": "blob.bin", "content_base64": base64.b64encode(files["blob.bin"]).decode()}]
    pdf = render(renderer, {"attachments": attachments})
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        embedded = {name: spec for name, spec in doc.attachments.items()}
        assert {name: spec.get_file().read_bytes() for name, spec in embedded.items()} == files
        assert str(embedded["lines.csv"].get_file().mime_type) == "text/csv"
        assert embedded["lines.csv"].description == "Invoice lines"
        assert str(embedded["blob.bin"].get_file().mime_type) == "application/octet-stream"


def test_rendering_again_gives_the_same_bytes_except_when_encrypted(renderer: Renderer) -> None:
    """Options keep renders reproducible (attachments carry a fixed date); encryption's random salts do not."""
    attachment = {"filename": "a.txt", "content_base64": "YQ=="}
    for options in ({"attachments": [attachment], "pdf_variant": "pdf/a-3b"}, {"watermark": {"text": "D"}},
                    {"document": {"title": "T"}, "page": {"size": "A5"}, "pdf_variant": "pdf/ua-1"}):
        assert render(renderer, options).sha256 == render(renderer, options).sha256, options
    encrypted = {"encryption": {"owner_password": "o"}}
    assert render(renderer, encrypted).sha256 != render(renderer, encrypted).sha256


def test_attachments_in_pdfa3_are_associated_files(renderer: Renderer) -> None:
    """With PDF/A-3 each attachment is listed in the catalog's /AF with an AFRelationship."""
    attachment = {"filename": "data.xml", "content_base64": base64.b64encode(b"<a/>").decode(), "mime_type": "text/xml"}
    pdf = render(renderer, {"pdf_variant": "pdf/a-3b", "attachments": [attachment]},
                 "<html lang='en'><title>t</title><p>x</p></html>")
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        spec = doc.attachments["data.xml"]
        assert spec.get_file().read_bytes() == b"<a/>"
        assert [str(f.UF) for f in doc.Root.AF] == ["data.xml"] and "/AFRelationship" in doc.Root.AF[0]
    assert pdf.conformance is not None and pdf.conformance.passed


@pytest.mark.parametrize("text", ["DRAFT", 'Copy "#3" \\ <b>not bold</b> ✓'])
def test_watermark_text_is_on_every_page(renderer: Renderer, text: str) -> None:
    """The watermark is real text on each page, even text with quotes, backslashes and markup."""
    pdf = render(renderer, {"watermark": {"text": text, "opacity": 0.3}}, SIX_PAGES)
    texts = page_texts(pdf.content)
    assert len(texts) == 6 and all(text in t for t in texts)
    assert all(f"page-{i}" in t for i, t in enumerate(texts, 1))


def test_watermark_opacity_is_applied(renderer: Renderer) -> None:
    """The watermark is drawn with the given opacity (an ExtGState alpha)."""
    pdf = render(renderer, {"watermark": {"text": "DRAFT", "opacity": 0.25}})
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        alphas = {round(float(gs.get("/ca", 1)), 2) for page in doc.pages
                  for gs in page.Resources.get("/ExtGState", {}).values()}
    assert 0.25 in alphas


@pytest.mark.parametrize("user_password", ["reader-pw", None])
def test_encryption_is_aes256_with_the_permissions_given(renderer: Renderer, user_password: str | None) -> None:
    """The file is AES-256 encrypted: the user password (or none) opens it with only the granted permissions."""
    encryption = {"owner_password": "owner-pw", "permissions": ["print", "copy"]}
    if user_password:
        encryption["user_password"] = user_password
    pdf = render(renderer, {"encryption": encryption}, "<p>secret text</p>")
    if user_password:
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(pdf.content))
    with pikepdf.open(io.BytesIO(pdf.content), password=user_password or "") as doc:
        assert doc.is_encrypted and doc.encryption.bits == 256 and doc.encryption.R == 6
        assert str(doc.encryption.stream_method) == "EncryptionMethod.aesv3"
        allow = doc.allow
        assert allow.print_highres and allow.extract and allow.accessibility
        assert not (allow.modify_other or allow.modify_annotation or allow.modify_form or allow.modify_assembly)
    assert "secret text" in page_texts(pdf.content, password=user_password or "")[0]
    with pikepdf.open(io.BytesIO(pdf.content), password="owner-pw") as doc:
        assert doc.owner_password_matched


def test_encryption_without_permissions_grants_none(renderer: Renderer) -> None:
    """Permissions default to none: no printing, copying or changes (assistive reading stays allowed)."""
    pdf = render(renderer, {"encryption": {"owner_password": "o"}})
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        allow = doc.allow
        assert allow.accessibility
        assert not any([allow.print_lowres, allow.print_highres, allow.extract, allow.modify_other,
                        allow.modify_annotation, allow.modify_form, allow.modify_assembly])


@pytest.mark.parametrize("template", sorted(SAMPLES))
@pytest.mark.parametrize("variant", ["pdf/a-3b", "pdf/ua-1"])
def test_builtin_templates_conform(renderer: Renderer, template: str, variant: str) -> None:
    """Each built-in template renders to PDF/A-3b and PDF/UA-1 with every conformance check passed."""
    pdf = renderer.render(template=template, html=None, data=SAMPLES[template],
                          options=RenderOptions.model_validate({"pdf_variant": variant}))
    assert pdf.conformance is not None
    assert pdf.conformance.passed, [c for c in pdf.conformance.checks if not c.passed]
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        meta = doc.open_metadata()
        if variant == "pdf/a-3b":
            assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("3", "B")
            assert doc.Root.OutputIntents[0].S == pikepdf.Name("/GTS_PDFA1")
        else:
            assert meta["pdfuaid:part"] == "1"
            assert doc.Root.MarkInfo.Marked and "/StructTreeRoot" in doc.Root
        assert str(doc.Root.Lang) == "en" and meta["dc:title"]


@pytest.mark.parametrize("variant", ["pdf/a-1b", "pdf/a-2b", "pdf/a-2u", "pdf/a-3u", "pdf/a-4", "pdf/ua-2"])
def test_every_variant_declares_itself_and_passes(renderer: Renderer, variant: str) -> None:
    """Each variant writes its own XMP identification and passes its checks on a simple document."""
    pdf = render(renderer, {"pdf_variant": variant}, "<html lang='en'><title>Doc</title><p>text</p></html>")
    assert pdf.conformance is not None and pdf.conformance.passed, pdf.conformance
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        meta = doc.open_metadata()
        if variant.startswith("pdf/a-"):
            assert meta["pdfaid:part"] == variant[6]
            assert meta.get("pdfaid:conformance") == (variant[7:].upper() or None)
        else:
            assert meta["pdfuaid:part"] == variant[-1]
        assert doc.pdf_version == {"pdf/a-1b": "1.4", "pdf/a-4": "2.0", "pdf/ua-2": "2.0"}.get(variant, "1.7")


def test_pdfua_with_encryption_keeps_accessibility_and_passes(renderer: Renderer) -> None:
    """PDF/UA may be encrypted: the checks open it with the owner password and find it readable by assistive tools."""
    pdf = render(renderer, {"pdf_variant": "pdf/ua-1", "encryption": {"owner_password": "o", "user_password": "u"}},
                 "<html lang='en'><title>Doc</title><p>text</p></html>")
    assert pdf.conformance is not None and pdf.conformance.passed


def test_all_options_together(renderer: Renderer) -> None:
    """Every option at once on the invoice: each one still shows in the file."""
    options = {"page": {"size": "Letter", "orientation": "landscape", "margins_mm": 12}, "page_ranges": "2-",
               "quality": "medium", "pdf_variant": "pdf/ua-1", "document": {"title": "T", "lang": "fr"},
               "attachments": [{"filename": "a.txt", "content_base64": "YQ==", "mime_type": "text/plain"}],
               "watermark": {"text": "COPY"},
               "encryption": {"owner_password": "own", "user_password": "usr", "permissions": ["print"]}}
    pdf = renderer.render(template="invoice.html", html=None, data=SAMPLES["invoice.html"],
                          options=RenderOptions.model_validate(options))
    assert pdf.pages == 1 and pdf.conformance is not None and pdf.conformance.passed
    assert media_box_mm(pdf.content, password="usr") == pytest.approx((279.4, 215.9), abs=0.2)
    texts = page_texts(pdf.content, password="usr")
    assert "COPY" in texts[0] and "Page 2 of 2" in texts[0]
    with pikepdf.open(io.BytesIO(pdf.content), password="usr") as doc:
        assert doc.attachments["a.txt"].get_file().read_bytes() == b"a" and str(doc.Root.Lang) == "fr"
        assert str(doc.docinfo["/Title"]) == "T"
