"""Options applied to a finished PDF (pikepdf), for an engine that cannot apply them while it writes the file."""
from __future__ import annotations

import io

import pikepdf

from shared.errors import PageRangeEmpty
from shared.options import AttachmentSpec, DocumentInfo, RenderOptions, pages_kept

PDF_DATE = "D:19700101000000Z"
"""The date written for attachments, as a PDF date string: the fixed date of pdf_output.EMBEDDED_FILE_DATE, so
renders stay reproducible."""

WALL_CLOCK_KEYS = ("/CreationDate", "/ModDate")


def keep_pages(pdf: pikepdf.Pdf, options: RenderOptions) -> None:
    """`page_ranges` over the printed document: the pages kept, in the order the ranges name them."""
    selection = options.page_selection()
    if selection is None:
        return
    kept = pages_kept(selection, len(pdf.pages))
    if not kept:
        raise PageRangeEmpty(f"page_ranges {options.page_ranges!r} keeps none of the {len(pdf.pages)} pages")
    chosen = [pdf.pages[i] for i in kept]
    for _ in range(len(pdf.pages)):
        del pdf.pages[0]
    pdf.pages.extend(chosen)


def set_document_info(pdf: pikepdf.Pdf, info: DocumentInfo) -> None:
    """Title, author, subject, keywords and language into the Info dictionary, the XMP and the catalog's /Lang."""
    with pdf.open_metadata(set_pikepdf_as_editor=False) as xmp:
        if info.title is not None:
            pdf.docinfo["/Title"] = info.title
            xmp["dc:title"] = info.title
        if info.author is not None:
            pdf.docinfo["/Author"] = info.author
            xmp["dc:creator"] = [info.author]
        if info.subject is not None:
            pdf.docinfo["/Subject"] = info.subject
            xmp["dc:description"] = info.subject
        if info.keywords is not None:
            pdf.docinfo["/Keywords"] = ", ".join(info.keywords)
            xmp["pdf:Keywords"] = ", ".join(info.keywords)
    if info.lang is not None:
        pdf.Root.Lang = pikepdf.String(info.lang)
    if info.title is not None:  # viewers show the title, not the file name
        pdf.Root.ViewerPreferences = pikepdf.Dictionary(DisplayDocTitle=True)


def attach(pdf: pikepdf.Pdf, spec: AttachmentSpec) -> None:
    attached = pikepdf.AttachedFileSpec(pdf, spec.content(), description=spec.description or "",
                                        filename=spec.filename, mime_type=spec.mime_type,
                                        creation_date=PDF_DATE, mod_date=PDF_DATE)
    pdf.attachments[spec.filename] = attached


def apply(content: bytes, options: RenderOptions) -> tuple[bytes, int]:
    """The PDF with page selection, document metadata and attachments applied; and its page count."""
    with pikepdf.open(io.BytesIO(content)) as pdf:
        for stamp in WALL_CLOCK_KEYS:  # the print's wall-clock time would make every render's bytes differ
            if stamp in pdf.docinfo:
                del pdf.docinfo[stamp]
        keep_pages(pdf, options)
        if options.document is not None:
            set_document_info(pdf, options.document)
        for spec in options.attachments:
            attach(pdf, spec)
        out = io.BytesIO()
        # Deterministic output: /ID from the content, every stream compressed anew by qpdf (Chromium's own
        # compressed streams differ between prints of the same page), so the same inputs give the same bytes.
        pdf.save(out, deterministic_id=True, recompress_flate=True)
        return out.getvalue(), len(pdf.pages)

