"""worker/conformance.py against files that break one rule each: the broken rule, and only it, fails."""
from __future__ import annotations

import io
from typing import Callable

import pikepdf
import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.constants import UserAccessPermissions
from pypdf.generic import NameObject

from shared.config import PROJECT_ROOT
from shared.options import PdfVariant, RenderOptions
from worker import conformance
from worker.render import Renderer

DOC = "<html lang='en'><head><title>Checked</title></head><body><h1>Heading</h1><p>Text</p>{extra}</body></html>"
LINK = "<p><a href='https://example.com/'>a link</a></p>"
IMAGE = "<img src='assets/logo.svg' alt='Logo'>"
Mutation = Callable[[pikepdf.Pdf], None]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates")


def written(renderer: Renderer, variant: PdfVariant, extra: str = "") -> bytes:
    options = RenderOptions(pdf_variant=variant)
    return renderer.render(template=None, html=DOC.format(extra=extra), data={}, options=options).content


def mutated(content: bytes, mutate: Mutation, **save: object) -> bytes:
    with pikepdf.open(io.BytesIO(content)) as pdf:
        mutate(pdf)
        out = io.BytesIO()
        pdf.save(out, **save)
    return out.getvalue()


def failing(content: bytes, variant: PdfVariant, password: str = "") -> set[str]:
    return {c.name for c in conformance.check(content, variant, password=password).checks if not c.passed}


def _set_xmp(key: str, value: str | None) -> Mutation:
    def mutate(pdf: pikepdf.Pdf) -> None:
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
            if value is None:
                del meta[key]
            else:
                meta[key] = value
    return mutate


def _unembed_a_font(pdf: pikepdf.Pdf) -> None:
    descriptor = next(o for o in pdf.objects if isinstance(o, pikepdf.Dictionary) and "/FontFile2" in o)
    del descriptor["/FontFile2"]


def _drop_to_unicode(pdf: pikepdf.Pdf) -> None:
    font = next(o for o in pdf.objects if isinstance(o, pikepdf.Dictionary) and "/ToUnicode" in o)
    del font["/ToUnicode"]


def _javascript_on_open(pdf: pikepdf.Pdf) -> None:
    pdf.Root.OpenAction = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS="app.alert(1)"))


def _attach(mime: str) -> Mutation:
    def mutate(pdf: pikepdf.Pdf) -> None:
        spec = pikepdf.AttachedFileSpec(pdf, b"a,b\n", mime_type=mime, filename="x.csv")
        pdf.attachments["x.csv"] = spec
    return mutate


def _half_transparent(pdf: pikepdf.Pdf) -> None:
    page = pdf.pages[0]
    page.Resources.ExtGState = pikepdf.Dictionary(GSx=pikepdf.Dictionary(Type=pikepdf.Name.ExtGState, ca=0.5))


def _drop_figure_alt(pdf: pikepdf.Pdf) -> None:
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Dictionary) and obj.get("/S") == pikepdf.Name.Figure:
            del obj["/Alt"]


def _drop_tabs(pdf: pikepdf.Pdf) -> None:
    for page in pdf.pages:
        if "/Tabs" in page.obj:
            del page.obj["/Tabs"]


def _set_info(key: str, value: str) -> Mutation:
    def mutate(pdf: pikepdf.Pdf) -> None:
        pdf.docinfo[key] = value
    return mutate


A1, A2, A2U, A3, A4, UA1 = (PdfVariant.PDF_A_1B, PdfVariant.PDF_A_2B, PdfVariant.PDF_A_2U, PdfVariant.PDF_A_3B,
                            PdfVariant.PDF_A_4, PdfVariant.PDF_UA_1)
BROKEN: list[tuple[str, PdfVariant, str, Mutation, dict[str, object]]] = [
    ("xmp_identification", A3, "", _set_xmp("pdfaid:part", "2"), {}),
    ("xmp_identification", A3, "", _set_xmp("pdfaid:conformance", "A"), {}),
    ("xmp_identification", A4, "", _set_xmp("pdfaid:conformance", "U"), {}),
    ("xmp_identification", UA1, "", _set_xmp("pdfuaid:part", None), {}),
    ("header_version", A1, "", lambda pdf: None, {"force_version": "1.7"}),
    ("output_intent", A3, "", lambda pdf: pdf.Root.__delitem__("/OutputIntents"), {}),
    ("fonts_embedded", A3, "", _unembed_a_font, {}),
    ("fonts_embedded", UA1, "", _unembed_a_font, {}),
    ("metadata_consistent", A3, "", _set_info("/Title", "Another title"), {}),
    ("no_javascript", A3, "", _javascript_on_open, {}),
    ("attachments_allowed", A1, "", _attach("text/csv"), {}),
    ("attachments_allowed", A2, "", _attach("text/csv"), {}),
    ("attachments_allowed", A3, "", _attach("text/csv"), {}),  # embedded but not an associated file (/AF)
    ("no_transparency", A1, "", _half_transparent, {}),
    ("unicode_mapping", A2U, "", _drop_to_unicode, {}),
    ("unicode_mapping", UA1, "", _drop_to_unicode, {}),
    ("tagged", UA1, "", lambda pdf: setattr(pdf.Root.MarkInfo, "Marked", False), {}),
    ("structure_tree", UA1, "", lambda pdf: pdf.Root.__delitem__("/StructTreeRoot"), {}),
    ("language", UA1, "", lambda pdf: pdf.Root.__delitem__("/Lang"), {}),
    ("title", UA1, "", lambda pdf: pdf.Root.__delitem__("/ViewerPreferences"), {}),
    ("title", UA1, "", _set_xmp("dc:title", None), {}),
    ("figures_have_alt", UA1, IMAGE, _drop_figure_alt, {}),
    ("tab_order", UA1, LINK, _drop_tabs, {}),
]


@pytest.mark.parametrize(("rule", "variant", "extra", "mutate", "save"), BROKEN,
                         ids=[f"{rule}-{variant.value}-{i}" for i, (rule, variant, *_rest) in enumerate(BROKEN)])
def test_a_file_breaking_one_rule_fails_that_check_only(renderer: Renderer, rule: str, variant: PdfVariant,
                                                        extra: str, mutate: Mutation, save: dict) -> None:
    """The unbroken file passes every check; after breaking one rule exactly that check fails."""
    content = written(renderer, variant, extra)
    assert failing(content, variant) == set()
    assert failing(mutated(content, mutate, **save), variant) == {rule}


def test_encrypted_pdfa_fails_not_encrypted(renderer: Renderer) -> None:
    """An encrypted file cannot be PDF/A."""
    content = written(renderer, A3)
    encrypted = mutated(content, lambda pdf: None, encryption=pikepdf.Encryption(owner="o", user="", R=6))
    assert failing(encrypted, A3) == {"not_encrypted"}


def test_encrypted_pdfua_must_allow_accessibility(renderer: Renderer) -> None:
    """Encrypted PDF/UA passes only while assistive technology may extract its text.

    qpdf (and so the service) always grants that permission; pypdf writes a file that withholds it.
    """
    content = written(renderer, UA1)
    readable = mutated(content, lambda pdf: None, encryption=pikepdf.Encryption(owner="o", user="", R=6))
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(content)))
    writer.encrypt(user_password="", owner_password="o", algorithm="AES-256", permissions_flag=UserAccessPermissions.PRINT)
    closed = io.BytesIO()
    writer.write(closed)
    assert failing(readable, UA1, password="o") == set()
    assert "accessible_if_encrypted" in failing(closed.getvalue(), UA1, password="o")  # pypdf also writes PDF 2.0


def test_compressed_xmp_fails_pdfa1(renderer: Renderer) -> None:
    """PDF/A-1 wants its XMP stream unfiltered (qpdf always writes it so; pypdf can compress it)."""
    content = written(renderer, A1)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(content)))
    writer.root_object[NameObject("/Metadata")] = writer._add_object(writer.root_object["/Metadata"].get_object()
                                                                     .flate_encode())
    out = io.BytesIO()
    writer.write(out)
    assert "metadata_uncompressed" in failing(out.getvalue(), A1)  # pypdf also writes another header version


def test_a_plain_pdf_fails_the_pdfa_and_pdfua_identification(renderer: Renderer) -> None:
    """A file written without a variant is not taken for PDF/A or PDF/UA."""
    plain = renderer.render(template=None, html=DOC.format(extra=""), data={}).content
    assert {"xmp_identification", "output_intent", "file_identifier"} <= failing(plain, A3)
    assert {"xmp_identification", "tagged", "structure_tree"} <= failing(plain, UA1)


def test_report_names_variant_and_every_check() -> None:
    """The result object lists the variant, the verdict and each check with a detail."""
    report = conformance.Conformance(PdfVariant.PDF_UA_1, (conformance.Check("tagged", True, "ok"),
                                                           conformance.Check("language", False, "no /Lang")))
    assert report.to_dict() == {"variant": "pdf/ua-1", "passed": False, "checks": [
        {"name": "tagged", "passed": True, "detail": "ok"}, {"name": "language", "passed": False, "detail": "no /Lang"}]}
