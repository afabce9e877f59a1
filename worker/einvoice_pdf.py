"""Turns a rendered PDF/A-3b into a Factur-X e-invoice: the CII XML embedded as `factur-x.xml` plus its XMP."""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

import facturx
import pikepdf

from shared.einvoice.options import EInvoiceOptions
from shared.einvoice.request import EInvoiceRequestError, einvoice_xml
from shared.einvoice.xsd import MAX_REASON_CHARS
from shared.errors import EInvoiceInvalid
from shared.options import PdfVariant
from worker import conformance
from worker.render import RenderedPdf

# The library logs each step at INFO and a failed check at ERROR quoting the invoice's text; the job's error says why.
logging.getLogger("factur-x").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class EInvoicePdf:
    pdf: RenderedPdf
    result: dict[str, str]
    """`result.einvoice` of the job: the profile and the embedded XML's SHA-256."""


def _xmp_from_info(content: bytes) -> bytes:
    """factur-x's XMP names pypdf as producer and leaves out the keywords that it writes into the Info dictionary;
    PDF/A wants the two to agree, so the XMP takes the Info values (keeping factur-x's pdfaid and fx entries)."""
    with pikepdf.open(io.BytesIO(content)) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as metadata:
            metadata.load_from_docinfo(pdf.docinfo, raise_failure=False)
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


def embed_einvoice(rendered: RenderedPdf, chosen: EInvoiceOptions, *, template: str | None,
                   data: dict[str, Any]) -> EInvoicePdf:
    """Build (or take) and XSD-check the XML, then attach it with AFRelationship Data and Factur-X XMP metadata.

    The checks repeat the ones made at submit: a job enqueued before a change of rules still cannot embed bad XML.
    """
    try:
        xml = einvoice_xml(chosen, template=template, data=data)
    except EInvoiceRequestError as exc:
        raise EInvoiceInvalid(str(exc)) from None
    # factur-x checks the XML with its own XSD checker, then writes the /AF array, the embedded file with
    # /AFRelationship /Data and XMP with the pdfaid and Factur-X extension schemas over WeasyPrint's PDF/A-3b
    # (which brings the output intent and embedded fonts).
    try:
        content = facturx.generate_from_binary(rendered.content, xml, flavor="factur-x", level=chosen.profile.value,
                                               check_xsd=True, afrelationship="data")
    except Exception as exc:  # The library raises bare Exception when its XSD check fails.
        raise EInvoiceInvalid(f"factur-x refused the XML: {exc}"[:MAX_REASON_CHARS]) from None
    content = _xmp_from_info(content)
    # The service's PDF/A checks run again on the file as it is stored: factur-x rewrote its XMP and catalog.
    pdf = RenderedPdf(content=content, pages=rendered.pages, sha256=hashlib.sha256(content).hexdigest(),
                      conformance=conformance.check(content, PdfVariant.PDF_A_3B), parts=rendered.parts)
    return EInvoicePdf(pdf=pdf, result={"profile": chosen.profile.value, "xml_sha256": hashlib.sha256(xml).hexdigest()})
