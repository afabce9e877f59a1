"""`options.einvoice`: which Factur-X profile, and optionally the caller's own XML."""
from __future__ import annotations

import base64
import binascii
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_XML_BASE64_CHARS = 1_000_000
"""Longest `xml_base64`, in characters; the request body's own limit (MAX_PAYLOAD_BYTES) usually bites first."""


class Profile(str, Enum):
    """Factur-X 1.0 profiles, from the totals only (minimum) to the full EN 16931 model and beyond (extended)."""

    MINIMUM = "minimum"
    BASICWL = "basicwl"
    BASIC = "basic"
    EN16931 = "en16931"
    EXTENDED = "extended"

    @property
    def guideline(self) -> str:
        """BT-24, the specification identifier the XML declares."""
        return _GUIDELINES[self]

    @property
    def has_lines(self) -> bool:
        """Whether the profile carries invoice lines (minimum and basicwl state totals only)."""
        return self not in (Profile.MINIMUM, Profile.BASICWL)


_GUIDELINES = {
    Profile.MINIMUM: "urn:factur-x.eu:1p0:minimum",
    Profile.BASICWL: "urn:factur-x.eu:1p0:basicwl",
    Profile.BASIC: "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic",
    Profile.EN16931: "urn:cen.eu:en16931:2017",
    Profile.EXTENDED: "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended",
}


class EInvoiceOptions(BaseModel):
    """Make the PDF a Factur-X e-invoice of `profile`; its XML is built from the data unless given."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile
    xml_base64: str | None = Field(None, max_length=MAX_XML_BASE64_CHARS,
                                   description="The caller's own CII XML, base64; XSD-checked against the profile")

    @field_validator("xml_base64")
    @classmethod
    def _decodes(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is not valid base64") from None
        return value

    def given_xml(self) -> bytes | None:
        return base64.b64decode(self.xml_base64) if self.xml_base64 is not None else None
