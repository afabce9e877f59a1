"""E-invoices: CII XML built from invoice.html's data per Factur-X profile, refused at submit when it cannot be valid,
and embedded in a PDF/A-3b by a real worker."""
from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import facturx
import pikepdf
import pytest
from lxml import etree
from pypdf import PdfReader

from shared.config import PROJECT_ROOT
from shared.einvoice.cii import build_cii
from shared.einvoice.invoice_data import read_invoice
from shared.einvoice.options import Profile
from tests.conftest import JobsClient
from worker.render import Renderer

SAMPLE: dict[str, Any] = json.loads((PROJECT_ROOT / "templates/invoice.json").read_text())["sample_data"]
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"}


def expected_totals(data: dict[str, Any]) -> dict[str, Decimal]:
    """Subtotal, tax and total worked out here from the items, to the cent, independently of the service."""
    cent = Decimal("0.01")
    subtotal = sum((Decimal(str(i["quantity"])) * Decimal(str(i["unit_price"]))).quantize(cent, ROUND_HALF_UP)
                   for i in data["items"])
    tax = (subtotal * Decimal(str(data["tax_rate"]))).quantize(cent, ROUND_HALF_UP)
    return {"subtotal": subtotal, "tax": tax, "total": subtotal + tax}


def xml_facts(xml: bytes) -> dict[str, Any]:
    root = etree.fromstring(xml)

    def text(path: str) -> str | None:
        found = root.find(path, NS)
        return found.text if found is not None else None

    totals = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/" \
             "ram:SpecifiedTradeSettlementHeaderMonetarySummation/"
    return {
        "number": text("rsm:ExchangedDocument/ram:ID"),
        "issued": text("rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"),
        "subtotal": Decimal(text(totals + "ram:TaxBasisTotalAmount")),
        "tax": Decimal(text(totals + "ram:TaxTotalAmount")),
        "total": Decimal(text(totals + "ram:GrandTotalAmount")),
        "due": Decimal(text(totals + "ram:DuePayableAmount")),
        "seller_vat": text(".//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID"),
        "rate": text(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent"),
        "lines": len(root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)),
    }


def assert_states_the_data(xml: bytes, data: dict[str, Any], profile: Profile) -> None:
    facts = xml_facts(xml)
    totals = expected_totals(data)
    assert facts["number"] == data["invoice_number"]
    assert facts["issued"] == data["issue_date"].replace("-", "")
    assert (facts["subtotal"], facts["tax"], facts["total"], facts["due"]) == (
        totals["subtotal"], totals["tax"], totals["total"], totals["total"])
    assert facts["seller_vat"] == data["seller"]["vat_number"].replace(" ", "")
    assert facts["lines"] == (len(data["items"]) if profile.has_lines else 0)
    if profile is not Profile.MINIMUM:
        assert Decimal(facts["rate"]) == Decimal(str(data["tax_rate"])) * 100


@pytest.mark.parametrize("profile", list(Profile))
def test_built_xml_passes_the_xsd_of_its_profile(profile: Profile) -> None:
    """The XML built from the sample invoice passes factur-x's own XSD check for each profile and states its data."""
    xml = build_cii(read_invoice(SAMPLE, profile), profile)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level=profile.value) is True
    assert facturx.get_level(etree.fromstring(xml), "factur-x") == profile.value
    assert_states_the_data(xml, SAMPLE, profile)


def test_xml_amounts_are_the_printed_amounts() -> None:
    """With amounts that sit on a rounding edge, every line amount and total in the XML is the one the PDF prints."""
    data = {**SAMPLE, "tax_rate": 0.175, "items": [
        {"description": "Widget", "quantity": 3, "unit_price": 0.335, "unit": "C62"},
        {"description": "Gadget", "quantity": 1.5, "unit_price": 10.01, "unit": "HUR"},
        {"description": "Sprocket", "quantity": 7, "unit_price": 2.145}]}
    xml = build_cii(read_invoice(data, Profile.EN16931), Profile.EN16931)
    facts = xml_facts(xml)
    pdf = Renderer(PROJECT_ROOT / "templates").render(template="invoice.html", html=None, data=data)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    printed = re.search(r"Subtotal ([0-9,.]+) VAT \(17.5%\) ([0-9,.]+) Total due GBP ([0-9,.]+)", " ".join(text.split()))
    assert printed, text
    assert [Decimal(v.replace(",", "")) for v in printed.groups()] == [facts["subtotal"], facts["tax"], facts["total"]]
    for amount in etree.fromstring(xml).iterfind(".//ram:SpecifiedTradeSettlementLineMonetarySummation/"
                                                 "ram:LineTotalAmount", NS):
        assert f" {Decimal(amount.text):,.2f}" in text
    assert b'unitCode="HUR"' in xml and b'unitCode="C62"' in xml


def mutated(path: str, value: Any) -> dict[str, Any]:
    """The sample invoice with the field at dotted `path` set to `value` (None: removed)."""
    data = copy.deepcopy(SAMPLE)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = data
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "field"), [
    ("issue_date", "31 March 2025", "data.issue_date"),
    ("due_date", "2025-02-30", "data.due_date"),
    ("currency", "pounds", "data.currency"),
    ("seller.country_code", None, "data.seller.country_code"),
    ("customer.country_code", "United Kingdom", "data.customer.country_code"),
    ("seller.vat_number", "123456789", "data.seller.vat_number"),
    ("customer.city", None, "data.customer.city"),
    ("items.2.unit", "days", "data.items[2].unit"),
    ("items.4.quantity", "ten", "data.items[4].quantity"),
    ("items.1.unit_price", -5, "data.items[1].unit_price"),
    ("payment.iban", "GB00 NWBK 6016 1331 9268 19", "data.payment.iban"),
    ("tax_category", "E", "data.tax_exemption_reason"),
    ("items", [], "data.items"),
    ("items.0.description", "bell\x07", "data.items[0].description"),
    ("items.0.quantity", 1e308, "data.items[0].quantity"),
    ("notes", ["fine", {"not": "text"}], "data.notes[1]"),
])
def test_data_that_cannot_make_an_einvoice_is_422_naming_the_field(client, auth, path: str, value: Any,
                                                                     field: str) -> None:
    """A submit whose invoice data cannot make a valid e-invoice answers 422 naming the field, and enqueues nothing."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={
        "template": "invoice.html", "data": mutated(path, value), "options": {"einvoice": {"profile": "en16931"}}})
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "validation_error"
    assert field in [e["field"] for e in response.json["errors"]], response.json
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def test_minimum_profile_needs_no_addresses_or_lines(client, auth) -> None:
    """The minimum profile states totals only: an invoice without cities is accepted for it."""
    data = mutated("customer.city", None)
    del data["seller"]["city"]
    response = client.post("/v1/jobs", headers=auth.headers(), json={
        "template": "invoice.html", "data": data, "options": {"einvoice": {"profile": "minimum"}}})
    assert response.status_code == 202, response.json


def own_xml(profile: Profile = Profile.BASIC, number: str = "OWN-77") -> bytes:
    return build_cii(read_invoice({**SAMPLE, "invoice_number": number}, profile), profile)


@pytest.mark.parametrize(("einvoice", "field", "fragment"), [
    ({"profile": "en16931", "xml_base64": "%%%"}, "options.einvoice.xml_base64", "base64"),
    ({"profile": "basic", "xml_base64": base64.b64encode(b"<not-xml").decode()}, "options.einvoice.xml_base64",
     "well-formed"),
    ({"profile": "basic", "xml_base64": base64.b64encode(own_xml().replace(b"<ram:TypeCode>380</ram:TypeCode>", b""))
      .decode()}, "options.einvoice.xml_base64", "XSD"),
    ({"profile": "en16931", "xml_base64": base64.b64encode(own_xml(Profile.BASIC)).decode()},
     "options.einvoice.xml_base64", "declares profile 'basic'"),
    ({"profile": "basic", "xml_base64": base64.b64encode(
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + own_xml().split(b"?>", 1)[1]
    ).decode()}, "options.einvoice.xml_base64", "DOCTYPE"),
    ({"profile": "gold"}, "options.einvoice.profile", "minimum"),
    ({"profile": "basic", "xml": "x"}, "options.einvoice.xml", "not permitted"),
])
def test_invalid_caller_xml_and_options_are_refused(client, auth, einvoice: dict[str, Any], field: str,
                                                     fragment: str) -> None:
    """The caller's XML must decode, be well-formed without a DTD, declare the profile asked for and pass its XSD."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={
        "template": "letter.html", "data": {}, "options": {"einvoice": einvoice}})
    assert response.status_code == 422, response.json
    error = next(e for e in response.json["errors"] if e["field"] == field)
    assert fragment.lower() in error["message"].lower(), error
    assert "root:" not in json.dumps(response.json)


@pytest.mark.parametrize("extra", [{"pdf_variant": "pdf/a-2b"}, {"encryption": {"owner_password": "x"}},
                                   {"attachments": [{"filename": "a.txt", "content_base64": "YQ==",
                                                     "mime_type": "text/plain"}]}])
def test_einvoice_excludes_other_variants_encryption_and_attachments(client, auth, extra: dict[str, Any]) -> None:
    """An e-invoice is PDF/A-3b with factur-x.xml as its one attachment: other variants, encryption, attachments
    are 422 on options.einvoice."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={
        "template": "invoice.html", "data": SAMPLE, "options": {**extra, "einvoice": {"profile": "basic"}}})
    assert response.status_code == 422, response.json
    assert "options.einvoice" in [e["field"] for e in response.json["errors"]]


def test_building_xml_needs_the_invoice_template(client, auth) -> None:
    """Without xml_base64 only invoice.html's data can become XML; another template is 422 on options.einvoice."""
    response = client.post("/v1/jobs", headers=auth.headers(), json={
        "html": "<p>{{ invoice_number }}</p>", "data": SAMPLE, "options": {"einvoice": {"profile": "basic"}}})
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "options.einvoice"


def test_batch_names_the_bad_item_and_enqueues_nothing(client, auth) -> None:
    """In a batch, one e-invoice with bad data fails the whole batch with the item's index in the field."""
    good = {"template": "invoice.html", "data": SAMPLE, "options": {"einvoice": {"profile": "basic"}}}
    bad = {**good, "data": mutated("seller.vat_number", "nope")}
    response = client.post("/v1/jobs/batch", headers=auth.headers(), json={"jobs": [good, bad]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["jobs[1].data.seller.vat_number"]
    assert client.get("/v1/jobs", headers=auth.headers()).json["jobs"] == []


def embedded_xml(content: bytes) -> tuple[str, bytes]:
    """The embedded XML as the factur-x library itself extracts it from the PDF."""
    filename, xml = facturx.get_xml_from_pdf(content, check_xsd=False)
    return filename, xml


@pytest.mark.usefixtures("workers")
@pytest.mark.parametrize("profile", [Profile.MINIMUM, Profile.EN16931, Profile.EXTENDED])
def test_worker_embeds_the_xml_in_a_pdf_a_3b(jobs: JobsClient, client, profile: Profile) -> None:
    """The completed job's PDF is PDF/A-3b with factur-x.xml as associated file; the XML passes its XSD and states
    the invoice's number, totals and VAT as the PDF prints them."""
    data = {**SAMPLE, "invoice_number": f"FX-{profile.value}"}
    done = jobs.wait(jobs.submit({"template": "invoice.html", "data": data,
                                  "options": {"einvoice": {"profile": profile.value}}})["id"])
    assert done["status"] == "completed", done
    content = client.get(done["links"]["pdf"]).data
    filename, xml = embedded_xml(content)
    assert filename == "factur-x.xml"
    assert done["result"]["einvoice"] == {"profile": profile.value, "xml_sha256": hashlib.sha256(xml).hexdigest()}
    assert done["result"]["pdf_variant"] == "pdf/a-3b" and done["options"]["pdf_variant"] == "pdf/a-3b"
    failed = [check for check in done["result"]["conformance"]["checks"] if not check["passed"]]
    assert done["result"]["conformance"]["passed"] and not failed, failed
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level=profile.value) is True
    assert_states_the_data(xml, data, profile)

    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    totals = expected_totals(data)
    assert data["invoice_number"] in text
    for amount in totals.values():
        assert f"{amount:,.2f}" in text

    with pikepdf.open(io.BytesIO(content)) as pdf:
        metadata = pdf.open_metadata()
        assert (metadata.get("pdfaid:part"), metadata.get("pdfaid:conformance")) == ("3", "B")
        xmp = pdf.Root.Metadata.read_bytes().decode()
        assert "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#" in xmp and "pdfaExtension:schemas" in xmp
        level = re.search(r"<fx:ConformanceLevel>([^<]+)<", xmp).group(1)
        assert level.replace(" ", "").lower() == profile.value
        assert "/OutputIntents" in pdf.Root
        spec = pdf.attachments["factur-x.xml"]
        assert str(spec.obj["/AFRelationship"]) == "/Data"
        assert spec.obj in list(pdf.Root.AF)
        assert spec.get_file().read_bytes() == xml


@pytest.mark.usefixtures("workers")
def test_worker_embeds_the_callers_own_xml_unchanged(jobs: JobsClient, client) -> None:
    """With xml_base64 any template may be used; the embedded file is byte for byte the caller's XML."""
    xml = own_xml(Profile.BASIC, "OWN-4410")
    done = jobs.wait(jobs.submit({"html": "<h1>Invoice OWN-4410</h1>", "options": {
        "einvoice": {"profile": "basic", "xml_base64": base64.b64encode(xml).decode()}}})["id"])
    assert done["status"] == "completed", done
    filename, embedded = embedded_xml(client.get(done["links"]["pdf"]).data)
    assert (filename, embedded) == ("factur-x.xml", xml)
    assert done["result"]["einvoice"]["xml_sha256"] == hashlib.sha256(xml).hexdigest()
    assert done["options"]["einvoice"] == {"profile": "basic", "xml_sha256": hashlib.sha256(xml).hexdigest()}


def test_worker_refuses_data_that_no_longer_makes_an_einvoice() -> None:
    """A job whose data fails the checks when it runs (enqueued before a rule changed) fails as einvoice_invalid,
    permanently, naming the field."""
    from shared.errors import EInvoiceInvalid
    from shared.options import RenderOptions
    from worker.einvoice_pdf import embed_einvoice

    data = mutated("seller.vat_number", None)
    options = RenderOptions.model_validate({"einvoice": {"profile": "basic"}})
    rendered = Renderer(PROJECT_ROOT / "templates").render(template="invoice.html", html=None, data=data,
                                                          options=options)
    with pytest.raises(EInvoiceInvalid) as raised:
        embed_einvoice(rendered, options.einvoice, template="invoice.html", data=data)
    assert raised.value.code == "einvoice_invalid" and raised.value.permanent
    assert "data.seller.vat_number" in str(raised.value)
