"""The e-invoice XML a job request stands for, or the 422 problems naming why it cannot have one."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.einvoice.cii import build_cii
from shared.einvoice.invoice_data import InvoiceDataError, Loc, read_invoice
from shared.einvoice.options import EInvoiceOptions
from shared.einvoice.xsd import check_xsd
from shared.errors import EInvoiceInvalid

INVOICE_TEMPLATE = "invoice.html"
"""The built-in template whose data the service knows how to turn into CII XML."""


def field_path(loc: Loc) -> str:
    """`("data", "items", 2, "unit")` -> `data.items[2].unit`, as 422 responses name fields."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


class EInvoiceRequestError(ValueError):
    """Why a request cannot make an e-invoice, by field (a path in the request body)."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{field_path(loc)}: {message}" for loc, message in problems))
        self.problems = problems

    def as_validation_error(self, title: str) -> ValidationError:
        """For pydantic validators: raised inside one, its locations join the enclosing path (`jobs[2].data...`)."""
        return ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("einvoice", message), loc=loc, input=None)
            for loc, message in self.problems])


def einvoice_xml(options: EInvoiceOptions, *, template: str | None, data: dict[str, Any]) -> bytes:
    """The XSD-checked XML to embed: the caller's own, or one built from the invoice template's data."""
    given = options.given_xml()
    if given is not None:
        try:
            check_xsd(given, options.profile)
        except EInvoiceInvalid as exc:
            raise EInvoiceRequestError([(("options", "einvoice", "xml_base64"), str(exc))]) from None
        return given
    if template != INVOICE_TEMPLATE:
        raise EInvoiceRequestError([(("options", "einvoice"), f"building the XML needs the {INVOICE_TEMPLATE} "
                                     "template and its data; send xml_base64 with any other template")])
    try:
        xml = build_cii(read_invoice(data, options.profile), options.profile)
    except InvoiceDataError as exc:
        raise EInvoiceRequestError(exc.problems) from None
    try:
        check_xsd(xml, options.profile)
    except EInvoiceInvalid as exc:  # e.g. a text longer than the schema allows
        raise EInvoiceRequestError([(("data",), str(exc))]) from None
    return xml
