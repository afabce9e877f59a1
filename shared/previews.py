"""PNG previews of PDF pages, rasterised with PDFium (pypdfium2), and the limits of a preview request."""
from __future__ import annotations

import io
import threading

import pypdfium2 as pdfium
from PIL import Image
from redis import Redis

from shared import keys

DEFAULT_PREVIEW_WIDTH_PX = 600
"""Width of a preview when the request names none, in pixels (a readable A4 page on a laptop screen)."""
MIN_PREVIEW_WIDTH_PX = 50
MAX_PREVIEW_WIDTH_PX = 2000
PNG_COMPRESS_LEVEL = 6
"""zlib level of the PNG: 6 costs ~2 ms more than 1 on an invoice page and saves little; kept for smaller files."""

# PDFium is not thread-safe: one document at a time per process, whatever thread (or greenlet) asks.
_PDFIUM = threading.Lock()


class PageOutOfRange(ValueError):
    """The page asked for is past the document's end."""

    def __init__(self, pages: int) -> None:
        super().__init__(f"the document has {pages} page(s)")
        self.pages = pages


def render_png(pdf: bytes, page: int, width_px: int = DEFAULT_PREVIEW_WIDTH_PX) -> bytes:
    """Page `page` (1-based) of `pdf` as a PNG exactly `width_px` wide, on white, aspect ratio kept."""
    with _PDFIUM:
        document = pdfium.PdfDocument(pdf)
        try:
            if not 1 <= page <= len(document):
                raise PageOutOfRange(len(document))
            pdf_page = document[page - 1]
            width_pt, _ = pdf_page.get_size()
            image = pdf_page.render(scale=width_px / width_pt, may_draw_forms=False).to_pil()
        finally:
            document.close()
    if image.width != width_px:  # the scaled size is rounded; a pixel either way is resampled away
        image = image.resize((width_px, max(1, round(image.height * width_px / image.width))), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def job_preview_name(page: int, width_px: int) -> str:
    """The name a job's preview is stored under, beside its PDF."""
    return f"p{page}-w{width_px}.png"


def store_template_preview(connection: Redis, name: str, pdf: bytes) -> None:
    """Page 1 of a built-in template rendered with its sample data; kept without expiry (no tenant data)."""
    connection.set(keys.template_preview(name), render_png(pdf, 1))


def template_preview(connection: Redis, name: str) -> bytes | None:
    return connection.get(keys.template_preview(name))
