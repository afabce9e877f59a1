"""The stylesheet that render options add to a document: page size and margins over the template's, a watermark."""
from __future__ import annotations

from shared.options import Margins, Orientation, PageOptions, PaperSize, RenderOptions, Watermark

PAPER_MM = {
    PaperSize.A3: (297, 420), PaperSize.A4: (210, 297), PaperSize.A5: (148, 210), PaperSize.B5: (176, 250),
    PaperSize.LETTER: (215.9, 279.4), PaperSize.LEGAL: (215.9, 355.6), PaperSize.TABLOID: (279.4, 431.8),
}
"""Portrait width and height of each named size, in millimetres (CSS has no `Tabloid`; the figures say it all)."""
WATERMARK_ANGLE_DEG = -30
WATERMARK_MAX_VW = 18
"""Font size of a short watermark, in percent of the page's width (vw); longer texts get smaller."""
WATERMARK_SPAN_VW = 95
"""How far the text may run, in percent of the page's width: turned by 30 degrees it then stays on the page."""
GLYPH_EM = 0.6
"""Average advance of a bold glyph, in em, to size the text from its length."""
WATERMARK_COLOR = "128, 128, 128"


def css_string(text: str) -> str:
    """`text` as a quoted CSS string: every character that is not a letter, digit or space as a hex escape."""
    return '"' + "".join(c if c.isalnum() or c == " " else f"\\{ord(c):x} " for c in text) + '"'


def _size(page: PageOptions) -> str | None:
    if page.size is None:
        return page.orientation.value if page.orientation else None  # CSS: the default size (A4), turned
    if isinstance(page.size, PaperSize):
        width, height = PAPER_MM[page.size]
    else:
        width, height = page.size.width_mm, page.size.height_mm
    if page.orientation is not None and (width > height) != (page.orientation == Orientation.LANDSCAPE):
        width, height = height, width
    return f"{width}mm {height}mm"


def _margins(margins: float | Margins) -> list[str]:
    if not isinstance(margins, Margins):
        return [f"margin: {margins}mm !important;"]
    sides = margins.model_dump(exclude_none=True)
    return [f"margin-{side}: {mm}mm !important;" for side, mm in sides.items()]


def page_css(page: PageOptions) -> str:
    """An @page rule that wins over the template's own (`!important` from a user sheet beats any author rule)."""
    declarations = []
    if size := _size(page):
        declarations.append(f"size: {size} !important;")
    if page.margins_mm is not None:
        declarations += _margins(page.margins_mm)
    return f"@page {{ {' '.join(declarations)} }}" if declarations else ""


def watermark_css(watermark: Watermark) -> str:
    """Real text drawn once per page (a fixed box repeats on every page), so it is extractable from each."""
    size_vw = round(min(WATERMARK_MAX_VW, WATERMARK_SPAN_VW / (GLYPH_EM * len(watermark.text))), 2)
    return (
        "html::after { "
        f"content: {css_string(watermark.text)}; position: fixed; top: 45%; left: -25%; right: -25%; "
        f"text-align: center; white-space: nowrap; font-size: {size_vw}vw; font-weight: bold; line-height: 1; "
        f"color: rgba({WATERMARK_COLOR}, {watermark.opacity}); transform: rotate({WATERMARK_ANGLE_DEG}deg); "
        "z-index: 2147483647; }"
    )


def option_css(options: RenderOptions) -> str:
    """The whole generated stylesheet, empty when no option touches layout."""
    rules = [page_css(options.page) if options.page else "", watermark_css(options.watermark) if options.watermark else ""]
    return "\n".join(rule for rule in rules if rule)
