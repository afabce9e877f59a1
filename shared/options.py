"""Render options (`options` on a job request): one pydantic model that validates, documents and echoes them."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared.einvoice.options import EInvoiceOptions
from shared.filenames import safe_basename

MAX_ATTACHMENTS = 20
MAX_KEYWORDS = 50
MAX_DOCUMENT_TEXT_CHARS = 1000
MAX_PAGE_MM = 2000
"""Largest custom page side, in millimetres (smallest: MIN_PAGE_MM)."""
MIN_PAGE_MM = 10
MAX_MARGIN_MM = 200
DEFAULT_WATERMARK_OPACITY = 0.15
MAX_PASSWORD_CHARS = 128
_RANGE = re.compile(r"\s*([0-9]{1,6})\s*(?:(-)\s*([0-9]{1,6})?)?\s*")


class _Strict(BaseModel):
    """Unknown keys are refused: a misspelt option must never be silently dropped."""

    model_config = ConfigDict(extra="forbid")


class PaperSize(str, Enum):
    A3 = "A3"
    A4 = "A4"
    A5 = "A5"
    B5 = "B5"
    LETTER = "Letter"
    LEGAL = "Legal"
    TABLOID = "Tabloid"


class CustomSize(_Strict):
    width_mm: float = Field(ge=MIN_PAGE_MM, le=MAX_PAGE_MM)
    height_mm: float = Field(ge=MIN_PAGE_MM, le=MAX_PAGE_MM)


class Orientation(str, Enum):
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"


class Margins(_Strict):
    """Each side in millimetres; a side left out keeps the template's margin."""

    top: float | None = Field(None, ge=0, le=MAX_MARGIN_MM)
    right: float | None = Field(None, ge=0, le=MAX_MARGIN_MM)
    bottom: float | None = Field(None, ge=0, le=MAX_MARGIN_MM)
    left: float | None = Field(None, ge=0, le=MAX_MARGIN_MM)


class PageOptions(_Strict):
    size: PaperSize | CustomSize | None = Field(None, description="A3 A4 A5 B5 Letter Legal Tabloid (any case), "
                                                                 "or {width_mm, height_mm}")
    orientation: Orientation | None = None
    margins_mm: float | Margins | None = Field(
        None, description=f"Millimetres (0..{MAX_MARGIN_MM}): one number for all sides, or {{top, right, bottom, left}}")

    # The two unions are resolved here, so that an error names `size` or `margins_mm` rather than a union member.
    @field_validator("size", mode="before")
    @classmethod
    def _paper_or_custom(cls, size: Any) -> Any:
        if isinstance(size, str):
            named = next((p for p in PaperSize if p.value.lower() == size.strip().lower()), None)
            if named is None:
                raise ValueError(f"must be one of {', '.join(p.value for p in PaperSize)} or {{width_mm, height_mm}}")
            return named
        if isinstance(size, dict):
            return _nested(CustomSize, size)
        if size is not None:
            raise ValueError("must be a paper size name or {width_mm, height_mm}")
        return size

    @field_validator("margins_mm", mode="before")
    @classmethod
    def _all_or_each(cls, margins: Any) -> Any:
        if isinstance(margins, (int, float)) and not isinstance(margins, bool):
            if not 0 <= margins <= MAX_MARGIN_MM:
                raise ValueError(f"must be 0..{MAX_MARGIN_MM} mm")
            return float(margins)
        if isinstance(margins, dict):
            return _nested(Margins, margins)
        if margins is not None:
            raise ValueError("must be a number or {top, right, bottom, left}")
        return margins


def _nested(model: type[_Strict], value: dict[str, Any]) -> _Strict:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


class Quality(str, Enum):
    DRAFT = "draft"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class PdfVariant(str, Enum):
    PDF_A_1B = "pdf/a-1b"
    PDF_A_2B = "pdf/a-2b"
    PDF_A_3B = "pdf/a-3b"
    PDF_A_2U = "pdf/a-2u"
    PDF_A_3U = "pdf/a-3u"
    PDF_A_4 = "pdf/a-4"
    PDF_UA_1 = "pdf/ua-1"
    PDF_UA_2 = "pdf/ua-2"

    @property
    def is_pdfa(self) -> bool:
        return self.value.startswith("pdf/a-")

    @property
    def part(self) -> int:
        return int(self.value.split("-")[1][0])

    @property
    def level(self) -> str | None:
        """PDF/A conformance letter (B or U); None for PDF/A-4 and PDF/UA."""
        suffix = self.value.split("-")[1][1:]
        return suffix.upper() or None


class DocumentInfo(_Strict):
    title: str | None = Field(None, max_length=MAX_DOCUMENT_TEXT_CHARS)
    author: str | None = Field(None, max_length=MAX_DOCUMENT_TEXT_CHARS)
    subject: str | None = Field(None, max_length=MAX_DOCUMENT_TEXT_CHARS)
    keywords: list[str] | None = Field(None, max_length=MAX_KEYWORDS)
    lang: str | None = Field(None, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$",
                             description="BCP 47 language tag, e.g. en or de-CH")

    @field_validator("keywords")
    @classmethod
    def _short_keywords(cls, keywords: list[str] | None) -> list[str] | None:
        if keywords and any(len(k) > MAX_DOCUMENT_TEXT_CHARS for k in keywords):
            raise ValueError(f"each keyword must be at most {MAX_DOCUMENT_TEXT_CHARS} characters")
        return keywords


class AttachmentSpec(_Strict):
    filename: str = Field(min_length=1, max_length=255)
    content_base64: str
    mime_type: str = Field("application/octet-stream", max_length=127,
                           pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
    description: str | None = Field(None, max_length=MAX_DOCUMENT_TEXT_CHARS)

    @field_validator("filename")
    @classmethod
    def _safe_name(cls, raw: str) -> str:
        name = safe_basename(raw)
        if name is None:
            raise ValueError("no usable file name is left once path and unsafe characters are removed")
        return name

    @field_validator("content_base64")
    @classmethod
    def _valid_base64(cls, encoded: str) -> str:
        try:
            base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        return encoded

    def content(self) -> bytes:
        return base64.b64decode(self.content_base64)

    def echo(self) -> dict[str, Any]:
        """What the job resource shows: the file's size and hash instead of its content."""
        content = self.content()
        return {"filename": self.filename, "mime_type": self.mime_type, "description": self.description,
                "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}


class Watermark(_Strict):
    text: str = Field(min_length=1, max_length=100)
    opacity: float = Field(DEFAULT_WATERMARK_OPACITY, ge=0, le=1)


class Permission(str, Enum):
    PRINT = "print"
    COPY = "copy"
    MODIFY = "modify"
    ANNOTATE = "annotate"
    FILL_FORMS = "fill_forms"
    ASSEMBLE = "assemble"


class Encryption(_Strict):
    owner_password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)
    user_password: str | None = Field(None, min_length=1, max_length=MAX_PASSWORD_CHARS,
                                      description="Absent: the file opens without a password, with `permissions`")
    permissions: list[Permission] = Field(default_factory=list)

    @field_validator("user_password")
    @classmethod
    def _distinct(cls, user: str | None, info: ValidationInfo) -> str | None:
        if user is not None and user == info.data.get("owner_password"):
            raise ValueError("must differ from owner_password, or the permissions would bind nobody")
        return user


def parse_page_ranges(text: str) -> list[tuple[int, int | None]]:
    """`"1-3,5,8-"` -> [(1, 3), (5, 5), (8, None)]; ValueError naming the bad part."""
    ranges: list[tuple[int, int | None]] = []
    for part in text.split(","):
        match = _RANGE.fullmatch(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a page or range (e.g. 2, 1-3, 8-)")
        first = int(match[1])
        last = None if match[2] and not match[3] else int(match[3] or first)
        if first < 1 or (last is not None and last < first):
            raise ValueError(f"{part.strip()!r}: pages count from 1 and a range runs forwards")
        ranges.append((first, last))
    return ranges


def pages_kept(ranges: list[tuple[int, int | None]], page_count: int) -> list[int]:
    """0-based indexes of the pages kept, in document order, each once; pages past the end are dropped."""
    kept = {page - 1 for first, last in ranges
            for page in range(first, min(last or page_count, page_count) + 1)}
    return sorted(kept)


class RenderOptions(_Strict):
    """What shapes the PDF beyond template, data and css."""

    page: PageOptions | None = None
    page_ranges: str | None = Field(None, max_length=1000, description="Pages to keep, e.g. '1-3,5,8-'")
    quality: Quality = Quality.HIGH
    pdf_variant: PdfVariant | None = None
    document: DocumentInfo | None = None
    attachments: list[AttachmentSpec] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    watermark: Watermark | None = None
    encryption: Encryption | None = None
    einvoice: EInvoiceOptions | None = Field(None, description="Make the PDF a Factur-X / ZUGFeRD e-invoice "
                                             "(PDF/A-3b with the CII XML embedded as factur-x.xml)")

    @field_validator("page_ranges")
    @classmethod
    def _valid_ranges(cls, text: str | None) -> str | None:
        if text is not None:
            parse_page_ranges(text)
        return text

    @field_validator("attachments")
    @classmethod
    def _variant_allows_attachments(cls, attachments: list[AttachmentSpec], info: ValidationInfo) -> list[AttachmentSpec]:
        variant = info.data.get("pdf_variant")
        if attachments and variant is not None and variant.is_pdfa and variant.part < 3:
            raise ValueError(f"{variant.value} cannot carry attachments (PDF/A-1 forbids them, PDF/A-2 allows only "
                             "PDF/A files); use pdf/a-3b")
        return attachments

    @field_validator("watermark")
    @classmethod
    def _variant_allows_watermark(cls, watermark: Watermark | None, info: ValidationInfo) -> Watermark | None:
        if watermark is not None and watermark.opacity < 1 and info.data.get("pdf_variant") == PdfVariant.PDF_A_1B:
            raise ValueError("pdf/a-1b forbids transparency: use opacity 1 or pdf/a-2b")
        return watermark

    @field_validator("encryption")
    @classmethod
    def _variant_allows_encryption(cls, encryption: Encryption | None, info: ValidationInfo) -> Encryption | None:
        variant = info.data.get("pdf_variant")
        if encryption is not None and variant is not None and variant.is_pdfa:
            raise ValueError(f"{variant.value} forbids encryption")
        return encryption

    @field_validator("einvoice")
    @classmethod
    def _einvoice_is_pdfa3(cls, einvoice: EInvoiceOptions | None, info: ValidationInfo) -> EInvoiceOptions | None:
        """Factur-X is a PDF/A-3 file: another variant, encryption or other attachments cannot carry it."""
        if einvoice is None:
            return None
        variant = info.data.get("pdf_variant")
        if variant is not None and variant != PdfVariant.PDF_A_3B:
            raise ValueError(f"an e-invoice is pdf/a-3b; it cannot be {variant.value}")
        if info.data.get("encryption") is not None:
            raise ValueError("an e-invoice cannot be encrypted (PDF/A forbids it)")
        if info.data.get("attachments"):
            raise ValueError("an e-invoice carries factur-x.xml as its only attachment")
        return einvoice

    @model_validator(mode="after")
    def _einvoice_writes_pdfa3(self) -> RenderOptions:
        """An e-invoice is written as PDF/A-3b (and checked as one) without the client naming the variant."""
        if self.einvoice is not None and self.pdf_variant is None:
            self.pdf_variant = PdfVariant.PDF_A_3B
        return self

    def page_selection(self) -> list[tuple[int, int | None]] | None:
        return parse_page_ranges(self.page_ranges) if self.page_ranges is not None else None

    def for_worker(self) -> dict[str, Any]:
        """What the render job's kwargs carry: everything but the passwords (kept in shared/job_secrets)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_unset=True,
                               exclude={"encryption": {"owner_password", "user_password"}})

    def echo(self) -> dict[str, Any]:
        """The job resource's `options`: no passwords, and attachments by size and hash rather than content."""
        echoed = self.for_worker()
        if self.attachments:
            echoed["attachments"] = [a.echo() for a in self.attachments]
        if self.einvoice is not None and self.einvoice.xml_base64 is not None:
            echoed["einvoice"] = {"profile": self.einvoice.profile.value,
                                  "xml_sha256": hashlib.sha256(self.einvoice.given_xml() or b"").hexdigest()}
        return echoed
