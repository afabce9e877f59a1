"""Render options as WeasyPrint arguments: image quality, PDF variant, document metadata and attachments."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from weasyprint import Attachment
from weasyprint.document import Document
from weasyprint.urls import URLFetcher

from shared.options import AttachmentSpec, DocumentInfo, PdfVariant, Quality, RenderOptions


@dataclass(frozen=True)
class ImageQuality:
    dpi: int
    """Largest image resolution kept, in dots per inch; finer images are downsampled."""
    jpeg_quality: int
    """JPEG quality (0..95) images are re-encoded with."""


QUALITY_LEVELS: dict[Quality, ImageQuality | None] = {
    Quality.DRAFT: ImageQuality(dpi=72, jpeg_quality=50),
    Quality.LOW: ImageQuality(dpi=96, jpeg_quality=65),
    Quality.MEDIUM: ImageQuality(dpi=150, jpeg_quality=80),
    Quality.HIGH: None,  # images as given
}
WEASYPRINT_VARIANTS = {variant: variant.value for variant in PdfVariant} | {PdfVariant.PDF_A_4: "pdf/a-4u"}
"""WeasyPrint names plain PDF/A-4 `pdf/a-4u` and writes a conformance letter that ISO 19005-4 has not got;
`_plain_pdfa4` removes it."""
EMBEDDED_FILE_DATE = datetime(1970, 1, 1)
"""Creation and modification date written for an attachment: the service cannot know when the client's file was
made, and a fixed date keeps renders reproducible (the same inputs give the same bytes; WeasyPrint would use now)."""
ATTACHMENT_RELATIONSHIP = "Unspecified"
"""AFRelationship of a client's attachment in PDF/A-3 and PDF/A-4 (it is neither the source nor data of the page)."""


def weasyprint_options(options: RenderOptions) -> dict[str, Any]:
    """Options for both HTML.render (images are read at layout) and Document.write_pdf."""
    chosen: dict[str, Any] = {}
    if (level := QUALITY_LEVELS[options.quality]) is not None:
        chosen.update(optimize_images=True, dpi=level.dpi, jpeg_quality=level.jpeg_quality)
    if options.pdf_variant is not None:
        chosen["pdf_variant"] = WEASYPRINT_VARIANTS[options.pdf_variant]
    return chosen


def embedded_file(spec: AttachmentSpec, fetcher: URLFetcher, relationship: str = ATTACHMENT_RELATIONSHIP) -> Attachment:
    """A data: URL carries the client's MIME type into the file's /Subtype (a string source would lose it).

    A WeasyPrint Attachment can be written once: build a new one for each write.
    """
    return Attachment(url=f"data:{spec.mime_type};base64,{spec.content_base64}", url_fetcher=fetcher,
                      name=spec.filename, description=spec.description, relationship=relationship,
                      created=EMBEDDED_FILE_DATE, modified=EMBEDDED_FILE_DATE)


def apply_document_info(document: Document, info: DocumentInfo) -> None:
    """Over what the HTML says (<title>, <meta name=author>, <html lang>): WeasyPrint writes Info, XMP and /Lang."""
    metadata = document.metadata
    if info.title is not None:
        metadata.title = info.title
    if info.author is not None:
        metadata.authors = [info.author]
    if info.subject is not None:
        metadata.description = info.subject
    if info.keywords is not None:
        metadata.keywords = list(info.keywords)
    if info.lang is not None:
        metadata.lang = info.lang


def finisher(options: RenderOptions) -> Callable[[Document, Any], None] | None:
    """What WeasyPrint's writer leaves to do on the finished pydyf.PDF, or None."""
    steps: list[Callable[[Document, Any], None]] = []
    if options.pdf_variant == PdfVariant.PDF_A_4:
        steps.append(_plain_pdfa4)
    if options.pdf_variant is not None and options.pdf_variant.is_pdfa and options.attachments:
        steps.append(_associated_files_once)
    if options.pdf_variant is None and options.document is not None:
        steps.append(_xmp_metadata)
    if not steps:
        return None

    def finish(document: Document, pdf: Any) -> None:
        for step in steps:
            step(document, pdf)

    return finish


def _metadata_stream(pdf: Any) -> Any:
    reference = pdf.catalog["Metadata"]  # b"26 0 R"
    return pdf.objects[int(reference.split()[0])]


def _plain_pdfa4(document: Document, pdf: Any) -> None:
    stream = _metadata_stream(pdf)
    stream.stream = [chunk.replace(b' pdfaid:conformance="U"', b"") for chunk in stream.stream]


def _associated_files_once(document: Document, pdf: Any) -> None:
    """WeasyPrint lists each attachment twice in the catalog's /AF (from the name tree and from the file specs)."""
    unique = list(dict.fromkeys(pdf.catalog["AF"]))
    pdf.catalog["AF"].clear()
    pdf.catalog["AF"].extend(unique)


def _xmp_metadata(document: Document, pdf: Any) -> None:
    """WeasyPrint writes XMP only for a variant; the document's metadata belongs in it anyway (no identification)."""
    document.metadata.include_in_pdf(pdf, "a", None, None, compress=True)
