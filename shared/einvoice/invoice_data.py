"""The facts of an `invoice.html` invoice, read from its `data` and checked field by field for an e-invoice.

The totals are computed exactly as the template computes them (each line rounded to cents, then summed; tax on the
subtotal), so the XML states the figures the PDF prints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from stdnum import iban as iban_check

from shared.einvoice.options import Profile

DEFAULT_UNIT = "C62"
"""UN/ECE Recommendation 20 code for "one" (a piece): an item's unit when it names none."""
INVOICE_TYPE_CODE = "380"
"""UNTDID 1001 commercial invoice."""
EXEMPT_CATEGORIES = frozenset({"E", "AE", "K", "G", "O"})
"""VAT categories (UNTDID 5305) that EN 16931 accepts only with an exemption reason."""
TAX_CATEGORIES = frozenset({"S", "Z", "L", "M"}) | EXEMPT_CATEGORIES
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_VAT_ID = re.compile(r"[A-Z]{2}(?=[0-9A-Z+*.]*[0-9])[0-9A-Z+*.]{2,13}")
_UNIT = re.compile(r"[A-Z0-9]{2,3}")
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry."""
MAX_MAGNITUDE = 1e12
"""Largest quantity or unit price, in absolute value: beyond it float arithmetic no longer holds cents exactly."""

Loc = tuple[str | int, ...]


class InvoiceDataError(ValueError):
    """The data cannot make a valid e-invoice; `problems` name each field (a path under `data`) and why."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__(f"{len(problems)} field(s) cannot make an e-invoice")
        self.problems = problems


@dataclass(frozen=True)
class Party:
    name: str
    country_code: str
    address_lines: tuple[str, ...] = ()
    postcode: str | None = None
    city: str | None = None
    vat_id: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Line:
    number: int
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Payment:
    terms: str | None = None
    iban: str | None = None
    bic: str | None = None
    account_name: str | None = None
    account_number: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class InvoiceFacts:
    number: str
    issue_date: date
    due_date: date
    currency: str
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    tax_category: str
    tax_rate_percent: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    payment: Payment
    exemption_reason: str | None = None
    order_reference: str | None = None
    buyer_reference: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _cents(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _decimal(value: float) -> Decimal:
    """The number as written (`0.335`, `4.2`), never in exponent form, which the schemas refuse."""
    return Decimal(format(Decimal(str(value)), "f"))


class _Reader:
    """Collects every problem of the data in one pass, so a client can fix them all at once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[tuple[Loc, str]] = []

    def get(self, loc: Loc, *, required: bool = True) -> Any:
        node: Any = self.data
        for key in loc:
            if isinstance(key, int):
                node = node[key] if isinstance(node, list) and key < len(node) else None
            else:
                node = node.get(key) if isinstance(node, dict) else None
        if node is None and required:
            self.problems.append((("data", *loc), "required for an e-invoice"))
        return node

    def text(self, loc: Loc, *, required: bool = True, pattern: re.Pattern[str] | None = None,
             hint: str = "", squeeze: bool = False) -> str | None:
        value = self.get(loc, required=required)
        if value is None:
            return None
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
            self.problems.append((("data", *loc), "must be a non-empty string"))
            return None
        text = str(value).strip()
        if _NOT_XML_TEXT.search(text):
            self.problems.append((("data", *loc), "must not contain control characters"))
            return None
        if squeeze:
            text = re.sub(r"\s+", "", text).upper()
        if pattern is not None and not pattern.fullmatch(text):
            self.problems.append((("data", *loc), f"must be {hint}"))
            return None
        return text

    def iso_date(self, loc: Loc) -> date | None:
        value = self.text(loc)
        if value is None:
            return None
        try:
            if _ISO_DATE.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        self.problems.append((("data", *loc), "must be an ISO 8601 date (YYYY-MM-DD) for an e-invoice"))
        return None

    def number(self, loc: Loc, *, minimum: float | None = -MAX_MAGNITUDE, maximum: float | None = MAX_MAGNITUDE
               ) -> float | None:
        value = self.get(loc)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            self.problems.append((("data", *loc), "must be a number"))
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.problems.append((("data", *loc), f"must be between {minimum:g} and {maximum:g}"))
            return None
        return value

    def party(self, key: str, *, address_required: bool, vat_required: bool) -> Party | None:
        name = self.text((key, "name"))
        country = self.text((key, "country_code"), pattern=_COUNTRY, squeeze=True,
                            hint="an ISO 3166-1 alpha-2 country code, e.g. 'DE'")
        lines = self.get((key, "address_lines"), required=False) or []
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            self.problems.append((("data", key, "address_lines"), "must be a list of strings"))
            lines = []
        postcode = self.text((key, "postcode"), required=False)
        city = self.text((key, "city"), required=address_required)
        vat_id = self.text((key, "vat_number"), required=vat_required, pattern=_VAT_ID, squeeze=True,
                           hint="a VAT identifier starting with its two-letter country prefix, e.g. 'DE123456789'")
        email = self.text((key, "email"), required=False)
        if name is None or country is None:
            return None
        return Party(name=name, country_code=country, address_lines=tuple(lines[:3]), postcode=postcode, city=city,
                     vat_id=vat_id, email=email)


def read_invoice(data: dict[str, Any], profile: Profile) -> InvoiceFacts:
    """The invoice's facts for `profile`, or InvoiceDataError naming every field that cannot make a valid e-invoice."""
    read = _Reader(data)
    number = read.text(("invoice_number",))
    issue_date = read.iso_date(("issue_date",))
    due_date = read.iso_date(("due_date",))
    currency = read.text(("currency",), pattern=_CURRENCY, hint="an ISO 4217 currency code, e.g. 'EUR'")
    detailed = profile is not Profile.MINIMUM
    seller = read.party("seller", address_required=detailed, vat_required=True)
    buyer = read.party("customer", address_required=detailed, vat_required=False)
    rate = read.number(("tax_rate",), minimum=0, maximum=1)
    category = read.text(("tax_category",), required=False, pattern=re.compile("|".join(sorted(TAX_CATEGORIES))),
                         hint=f"a VAT category code (UNTDID 5305): one of {', '.join(sorted(TAX_CATEGORIES))}")
    reason = read.text(("tax_exemption_reason",), required=False)
    if category is None and rate is not None:
        category = "S" if rate > 0 else "Z"
    if category in EXEMPT_CATEGORIES and reason is None:
        read.problems.append((("data", "tax_exemption_reason"), f"required with tax_category {category!r}"))
    if category in EXEMPT_CATEGORIES | {"Z"} and rate not in (None, 0):
        read.problems.append((("data", "tax_rate"), f"must be 0 with tax_category {category!r}"))

    items = read.get(("items",))
    lines: list[Line] = []
    subtotal = 0.0
    if items is not None and not isinstance(items, list):
        read.problems.append((("data", "items"), "must be a list"))
        items = []
    if items is not None and not items and profile.has_lines:
        read.problems.append((("data", "items"), f"needs at least one line for profile {profile.value!r}"))
    for i, _ in enumerate(items or []):
        description = read.text(("items", i, "description"))
        quantity = read.number(("items", i, "quantity"))
        price = read.number(("items", i, "unit_price"), minimum=0)
        unit = read.text(("items", i, "unit"), required=False, pattern=_UNIT, squeeze=True,
                         hint="a UN/ECE Recommendation 20 unit code, e.g. 'C62', 'HUR', 'DAY'") or DEFAULT_UNIT
        if quantity is None or price is None:
            continue
        amount = round(quantity * price, 2)  # as the template: `(item.quantity * item.unit_price)|round(2)`
        subtotal = subtotal + amount
        lines.append(Line(number=i + 1, description=description or "", quantity=_decimal(quantity), unit=unit,
                          unit_price=_decimal(price), amount=_cents(amount)))

    iban = read.text(("payment", "iban"), required=False, squeeze=True)
    if iban is not None and not iban_check.is_valid(iban):
        read.problems.append((("data", "payment", "iban"), "is not a valid IBAN"))
    bic = read.text(("payment", "bic"), required=False, squeeze=True, pattern=_BIC, hint="an 8 or 11 character BIC")
    notes = read.get(("notes",), required=False)
    if isinstance(notes, str):
        note_list = [read.text(("notes",))]
    else:
        note_list = [read.text(("notes", i)) for i in range(len(notes))] if isinstance(notes, list) else []

    if read.problems or None in (number, issue_date, due_date, currency, seller, buyer, rate, category):
        raise InvoiceDataError(read.problems or [(("data",), "is not an invoice.html invoice")])
    assert number and issue_date and due_date and currency and seller and buyer and rate is not None and category
    subtotal = round(subtotal, 2)
    tax = round(subtotal * rate, 2)
    total = round(subtotal + tax, 2)
    return InvoiceFacts(
        number=number, issue_date=issue_date, due_date=due_date, currency=currency, seller=seller, buyer=buyer,
        lines=tuple(lines), tax_category=category, tax_rate_percent=Decimal(f"{rate * 100:.2f}"),
        subtotal=_cents(subtotal), tax=_cents(tax), total=_cents(total), exemption_reason=reason,
        payment=Payment(terms=read.text(("payment", "terms"), required=False), iban=iban, bic=bic,
                        account_name=read.text(("payment", "account_name"), required=False),
                        account_number=read.text(("payment", "account_number"), required=False),
                        reference=read.text(("payment", "reference"), required=False)),
        order_reference=read.text(("po_number",), required=False),
        buyer_reference=read.text(("buyer_reference",), required=False),
        notes=tuple(note for note in note_list if note),
    )
