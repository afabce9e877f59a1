"""Options applied to a finished PDF (pikepdf), for an engine that cannot apply them while it writes the file."""
from __future__ import annotations

import io
import re
from typing import Any, Iterator

import pikepdf

from shared.errors import PageRangeEmpty
from shared.options import AttachmentSpec, DocumentInfo, RenderOptions, pages_kept

PDF_DATE = "D:19700101000000Z"
"""The date written for attachments, as a PDF date string: the fixed date of pdf_output.EMBEDDED_FILE_DATE, so
renders stay reproducible."""

WALL_CLOCK_KEYS = ("/CreationDate", "/ModDate")
_STRUCTURE_ID = re.compile(r"node[0-9]{8}")
"""Chromium names tagged-structure elements after the renderer's DOM node counter, which differs between
browser processes: the same page gets other ids (and other bytes) after a browser restart."""


def _containers(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Array | pikepdf.Dictionary]:
    stack: list[Any] = [obj for obj in pdf.objects if isinstance(obj, (pikepdf.Array, pikepdf.Dictionary))]
    stack += [pdf.trailer]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node.is_indirect:
            if node.objgen in seen:
                continue
            seen.add(node.objgen)
        yield node
        children = node.values() if isinstance(node, pikepdf.Dictionary) else list(node)
        stack.extend(c for c in children if isinstance(c, (pikepdf.Array, pikepdf.Dictionary)) and not c.is_indirect)


def stable_structure_ids(pdf: pikepdf.Pdf) -> None:
    """Renumber the structure element ids in their sorted order, which keeps the IDTree's name order valid."""
    containers = list(_containers(pdf))
    found: set[str] = set()
    for node in containers:
        values = node.values() if isinstance(node, pikepdf.Dictionary) else list(node)
        found.update(str(v) for v in values if isinstance(v, pikepdf.String) and _STRUCTURE_ID.fullmatch(str(v)))
    mapping = {old: pikepdf.String(f"node{n:08d}") for n, old in enumerate(sorted(found), start=1)}
    for node in containers:
        if isinstance(node, pikepdf.Dictionary):
            for key, value in node.items():
                if isinstance(value, pikepdf.String) and str(value) in mapping:
                    node[key] = mapping[str(value)]
        else:
            for index, value in enumerate(node):
                if isinstance(value, pikepdf.String) and str(value) in mapping:
                    node[index] = mapping[str(value)]


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
        stable_structure_ids(pdf)
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

