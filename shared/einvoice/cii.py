"""UN/CEFACT Cross-Industry-Invoice XML for a Factur-X profile, built with drafthorse from an invoice's facts."""
from __future__ import annotations

from decimal import Decimal

from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration, TradeParty
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.tradelines import LineItem

from shared.einvoice.invoice_data import INVOICE_TYPE_CODE, InvoiceFacts, Party
from shared.einvoice.options import Profile

CREDIT_TRANSFER = "58"
"""UNTDID 4461 SEPA credit transfer: the payment means of an invoice that names an IBAN."""
CREDIT_TRANSFER_NON_SEPA = "30"


def _fill_party(target: TradeParty, party: Party, profile: Profile) -> None:
    target.name = party.name
    if profile is not Profile.MINIMUM:
        for attribute, value in zip(("line_one", "line_two", "line_three"), party.address_lines):
            setattr(target.address, attribute, value)
        if party.postcode:
            target.address.postcode = party.postcode
        if party.city:
            target.address.city_name = party.city
        if party.email:
            target.electronic_address.uri_ID = ("EM", party.email)
    target.address.country_id = party.country_code
    if party.vat_id:
        target.tax_registrations.add(TaxRegistration(id=("VA", party.vat_id)))


def _add_lines(document: Document, facts: InvoiceFacts) -> None:
    for line in facts.lines:
        item = LineItem()
        item.document.line_id = str(line.number)
        item.product.name = line.description
        item.agreement.net.amount = line.unit_price
        item.delivery.billed_quantity = (line.quantity, line.unit)
        item.settlement.trade_tax.type_code = "VAT"
        item.settlement.trade_tax.category_code = facts.tax_category
        item.settlement.trade_tax.rate_applicable_percent = facts.tax_rate_percent
        item.settlement.monetary_summation.total_amount = line.amount
        document.trade.items.add(item)


def _add_settlement(document: Document, facts: InvoiceFacts, profile: Profile) -> None:
    """Tax breakdown, payment means and terms: what every profile above minimum states."""
    settlement = document.trade.settlement
    payment = facts.payment
    settlement.payment_reference = payment.reference or facts.number
    if payment.iban or payment.account_number:
        means = PaymentMeans()
        means.type_code = CREDIT_TRANSFER if payment.iban else CREDIT_TRANSFER_NON_SEPA
        if payment.iban:
            means.payee_account.iban = payment.iban
        else:
            means.payee_account.proprietary_id = payment.account_number
        if payment.account_name and profile in (Profile.EN16931, Profile.EXTENDED):
            means.payee_account.account_name = payment.account_name
        if payment.bic and profile in (Profile.EN16931, Profile.EXTENDED):
            means.payee_institution.bic = payment.bic
        settlement.payment_means.add(means)
    tax = ApplicableTradeTax()
    tax.calculated_amount = facts.tax
    tax.type_code = "VAT"
    if facts.exemption_reason:
        tax.exemption_reason = facts.exemption_reason
    tax.basis_amount = facts.subtotal
    tax.category_code = facts.tax_category
    tax.rate_applicable_percent = facts.tax_rate_percent
    settlement.trade_tax.add(tax)
    terms = PaymentTerms()
    if payment.terms:
        terms.description = payment.terms
    terms.due = facts.due_date
    settlement.terms.add(terms)


def build_cii(facts: InvoiceFacts, profile: Profile) -> bytes:
    """The XML (UTF-8, with declaration); profiles below basic carry no lines, minimum no addresses or breakdown."""
    document = Document()
    document.context.guideline_parameter.id = profile.guideline
    document.header.id = facts.number
    document.header.type_code = INVOICE_TYPE_CODE
    document.header.issue_date_time = facts.issue_date
    if profile is not Profile.MINIMUM:
        for note in facts.notes:
            document.header.notes.add(IncludedNote(content=note))
    agreement = document.trade.agreement
    if facts.buyer_reference:
        agreement.buyer_reference = facts.buyer_reference
    _fill_party(agreement.seller, facts.seller, profile)
    _fill_party(agreement.buyer, facts.buyer, profile)
    if facts.order_reference:
        agreement.buyer_order.issuer_assigned_id = facts.order_reference
    if profile.has_lines:
        _add_lines(document, facts)
    document.trade.settlement.currency_code = facts.currency
    if profile is not Profile.MINIMUM:
        _add_settlement(document, facts, profile)
    totals = document.trade.settlement.monetary_summation
    if profile is not Profile.MINIMUM:
        totals.line_total = facts.subtotal
        totals.charge_total = Decimal("0.00")
        totals.allowance_total = Decimal("0.00")
    totals.tax_basis_total = facts.subtotal
    totals.tax_total = (facts.tax, facts.currency)
    totals.grand_total = facts.total
    totals.due_amount = facts.total
    return document.serialize(schema=None)
