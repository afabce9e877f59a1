"""The service's own checks of a written PDF against its declared PDF/A or PDF/UA variant (a subset of veraPDF's)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pikepdf

from shared.options import PdfVariant

DETAIL_MAX_CHARS = 300


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail[:DETAIL_MAX_CHARS]}


@dataclass(frozen=True)
class Conformance:
    variant: PdfVariant
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant.value, "passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class _Subject:
    """The opened file with what several checks read."""

    pdf: pikepdf.Pdf
    variant: PdfVariant
    xmp: dict[str, str]
    encrypted: bool


Rule = Callable[[_Subject], Check]


def _ok(name: str, passed: bool, detail: str) -> Check:
    return Check(name, passed, detail if not passed else (detail or "ok"))


def _objects(pdf: pikepdf.Pdf, type_name: str) -> Iterator[pikepdf.Dictionary]:
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") == pikepdf.Name(type_name):
            yield obj


def _dictionaries(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Dictionary | pikepdf.Stream]:
    """Every dictionary in the file: the indirect objects and the direct dictionaries nested in them."""
    for obj in pdf.objects:
        pending = [obj]
        while pending:
            node = pending.pop()
            if isinstance(node, (pikepdf.Dictionary, pikepdf.Stream)):
                yield node
                children = list(node.values())
            elif isinstance(node, pikepdf.Array):
                children = list(node)
            else:
                continue
            pending += [c for c in children if isinstance(c, (pikepdf.Dictionary, pikepdf.Array)) and not c.is_indirect]


def _fonts(pdf: pikepdf.Pdf) -> Iterator[tuple[str, pikepdf.Dictionary]]:
    """Every font the file defines, composite fonts as their descendant (which holds the descriptor)."""
    for font in _objects(pdf, "/Font"):
        subtype = font.get("/Subtype")
        if subtype == pikepdf.Name.Type0 or subtype == pikepdf.Name.Type3:
            continue  # Type0: its descendant is listed too; Type3: glyphs are content streams, nothing to embed
        yield str(font.get("/BaseFont", "?")), font


def header_version(s: _Subject) -> Check:
    expected = {("a", 1): ("1.4",), ("a", 4): ("2.0",), ("ua", 2): ("2.0",)}.get(
        ("a" if s.variant.is_pdfa else "ua", s.variant.part), ("1.4", "1.5", "1.6", "1.7"))
    return _ok("header_version", s.pdf.pdf_version in expected,
               f"PDF {s.pdf.pdf_version}; the variant wants {' or '.join(expected)}")


def xmp_identification(s: _Subject) -> Check:
    v = s.variant
    if v.is_pdfa:
        want = {"pdfaid:part": str(v.part)}
        if v.level:
            want["pdfaid:conformance"] = v.level
        if v.part == 4:
            want["pdfaid:rev"] = "2020"
        wrong_level = v.part == 4 and s.xmp.get("pdfaid:conformance") not in (None, "E", "F")
    else:
        want = {"pdfuaid:part": str(v.part)}
        wrong_level = False
    found = {key: s.xmp.get(key) for key in want}
    passed = found == want and not wrong_level
    return _ok("xmp_identification", passed, f"XMP has {found}" + ("" if passed else f", expected {want}")
               + (f" and no conformance letter but {s.xmp.get('pdfaid:conformance')!r}" if wrong_level else ""))


def output_intent(s: _Subject) -> Check:
    intents = [i for i in s.pdf.Root.get("/OutputIntents", []) if i.get("/S") == pikepdf.Name("/GTS_PDFA1")]
    profiles = {i.DestOutputProfile.objgen for i in intents if "/DestOutputProfile" in i}
    if not intents:
        return _ok("output_intent", False, "no /OutputIntents entry with /S /GTS_PDFA1")
    if len(profiles) != 1:
        return _ok("output_intent", False, f"{len(profiles)} distinct destination ICC profiles (one is required)")
    profile = intents[0].DestOutputProfile
    return _ok("output_intent", int(profile.get("/N", 0)) in (1, 3, 4),
               f"GTS_PDFA1 with an ICC profile of {profile.get('/N')} components")


def fonts_embedded(s: _Subject) -> Check:
    missing = [name for name, font in _fonts(s.pdf)
               if not any(k in font.get("/FontDescriptor", pikepdf.Dictionary()) for k in ("/FontFile", "/FontFile2", "/FontFile3"))]
    count = sum(1 for _ in _fonts(s.pdf))
    return _ok("fonts_embedded", not missing,
               f"not embedded: {', '.join(missing)}" if missing else f"{count} fonts, all embedded")


_TEXT_FONT_TYPES = (pikepdf.Name.Type0, pikepdf.Name.Type1, pikepdf.Name.TrueType, pikepdf.Name.MMType1)
"""Fonts that text is shown with (a Type0's descendant CIDFont is reached through it)."""


def unicode_mapping(s: _Subject) -> Check:
    missing = [str(f.get("/BaseFont", "?")) for f in _objects(s.pdf, "/Font")
               if f.get("/Subtype") in _TEXT_FONT_TYPES and "/ToUnicode" not in f]
    return _ok("unicode_mapping", not missing,
               f"no /ToUnicode map: {', '.join(missing)}" if missing else "every font maps its glyphs to Unicode")


def not_encrypted(s: _Subject) -> Check:
    return _ok("not_encrypted", not s.encrypted, "the file is encrypted" if s.encrypted else "not encrypted")


def file_identifier(s: _Subject) -> Check:
    ident = s.pdf.trailer.get("/ID")
    return _ok("file_identifier", ident is not None and len(ident) == 2, "trailer /ID " + ("present" if ident else "missing"))


_INFO_TO_XMP = {"/Title": "dc:title", "/Author": "dc:creator", "/Subject": "dc:description",
                "/Keywords": "pdf:Keywords", "/Producer": "pdf:Producer"}


def metadata_consistent(s: _Subject) -> Check:
    info = s.pdf.trailer.get("/Info") or pikepdf.Dictionary()
    differ = []
    for key, xmp_key in _INFO_TO_XMP.items():
        if key in info and str(info[key]) != s.xmp.get(xmp_key):
            differ.append(f"{key} {str(info[key])!r} vs {xmp_key} {s.xmp.get(xmp_key)!r}")
    return _ok("metadata_consistent", not differ, "; ".join(differ) or "Info and XMP agree")


def no_javascript(s: _Subject) -> Check:
    names = s.pdf.Root.get("/Names", pikepdf.Dictionary())
    found = ["/JavaScript name tree"] if "/JavaScript" in names else []
    for obj in _dictionaries(s.pdf):
        if obj.get("/S") in (pikepdf.Name.JavaScript, pikepdf.Name.Launch):
            found.append(f"{obj.S} action")
    return _ok("no_javascript", not found, ", ".join(found) or "no JavaScript or Launch actions")


def attachments_allowed(s: _Subject) -> Check:
    specs = list(_objects(s.pdf, "/Filespec"))
    embedded = [f for f in specs if "/EF" in f]
    part = s.variant.part
    if part == 1:
        bad = ["embedded files"] if embedded or "/EmbeddedFiles" in s.pdf.Root.get("/Names", pikepdf.Dictionary()) else []
    elif part == 2:
        bad = [str(f.get("/UF", f.get("/F"))) for f in embedded
               if f.EF.F.get("/Subtype") != pikepdf.Name("/application/pdf")]
    else:
        listed = [o.objgen for o in s.pdf.Root.get("/AF", [])]
        associated = set(listed)
        bad = [f"{len(listed) - len(associated)} repeated /AF entries"] if len(listed) != len(associated) else []
        bad += [str(f.get("/UF", f.get("/F"))) for f in embedded
               if "/AFRelationship" not in f or f.objgen not in associated or "/Subtype" not in f.EF.F
               or "/ModDate" not in f.EF.F.get("/Params", pikepdf.Dictionary())]
    return _ok("attachments_allowed", not bad, f"not allowed in PDF/A-{part}: {', '.join(bad)}" if bad else
               f"{len(embedded)} embedded files, as PDF/A-{part} allows")


def no_transparency(s: _Subject) -> Check:
    found = set()
    for obj in _dictionaries(s.pdf):
        if "/SMask" in obj and obj.get("/SMask") != pikepdf.Name.None_:
            found.add("soft mask")
        for key in ("/CA", "/ca"):
            if key in obj and float(obj[key]) < 1:
                found.add(f"{key} < 1")
        group = obj.get("/Group")
        if isinstance(group, pikepdf.Dictionary) and group.get("/S") == pikepdf.Name.Transparency:
            found.add("transparency group")
    return _ok("no_transparency", not found, ", ".join(sorted(found)) or "no transparency (PDF/A-1 forbids it)")


def metadata_uncompressed(s: _Subject) -> Check:
    metadata = s.pdf.Root.get("/Metadata")
    compressed = metadata is not None and "/Filter" in metadata
    return _ok("metadata_uncompressed", not compressed,
               "the XMP stream is compressed (PDF/A-1 forbids it)" if compressed else "XMP stream uncompressed")


def tagged(s: _Subject) -> Check:
    mark = s.pdf.Root.get("/MarkInfo", pikepdf.Dictionary())
    marked = bool(mark.get("/Marked", False))
    return _ok("tagged", marked, "MarkInfo /Marked true" if marked else "no MarkInfo /Marked true")


def structure_tree(s: _Subject) -> Check:
    root = s.pdf.Root.get("/StructTreeRoot")
    kids = root.get("/K") if root is not None else None
    filled = kids is not None and (not isinstance(kids, pikepdf.Array) or len(kids) > 0)
    return _ok("structure_tree", filled, "StructTreeRoot with elements" if filled else "no StructTreeRoot elements")


def language(s: _Subject) -> Check:
    lang = str(s.pdf.Root.get("/Lang", "")).strip()
    return _ok("language", bool(lang), f"/Lang {lang!r}" if lang else "no /Lang in the catalog")


def title(s: _Subject) -> Check:
    xmp_title = s.xmp.get("dc:title", "").strip()
    shown = bool(s.pdf.Root.get("/ViewerPreferences", pikepdf.Dictionary()).get("/DisplayDocTitle", False))
    problems = ([] if xmp_title else ["no dc:title in XMP"]) + ([] if shown else ["DisplayDocTitle is not true"])
    return _ok("title", not problems, "; ".join(problems) or f"title {xmp_title!r}, shown by viewers")


def figures_have_alt(s: _Subject) -> Check:
    figures = [e for e in _objects(s.pdf, "/StructElem") if e.get("/S") == pikepdf.Name.Figure]
    bare = sum(1 for e in figures if "/Alt" not in e and "/ActualText" not in e)
    return _ok("figures_have_alt", bare == 0, f"{bare} of {len(figures)} figures lack /Alt" if bare else
               f"{len(figures)} figures, all with alternate text")


def tab_order(s: _Subject) -> Check:
    pages = [n for n, page in enumerate(s.pdf.pages, 1) if page.get("/Annots") and page.get("/Tabs") != pikepdf.Name.S]
    return _ok("tab_order", not pages, f"pages with annotations but no /Tabs /S: {pages}" if pages else
               "annotations follow the structure order")


def accessible_if_encrypted(s: _Subject) -> Check:
    allowed = not s.encrypted or s.pdf.allow.accessibility
    return _ok("accessible_if_encrypted", allowed, "encrypted without the accessibility permission" if not allowed
               else "assistive technology may read the text")


_PDFA_RULES: tuple[Rule, ...] = (header_version, xmp_identification, output_intent, fonts_embedded, not_encrypted,
                                 file_identifier, metadata_consistent, no_javascript, attachments_allowed)
_PDFUA_RULES: tuple[Rule, ...] = (header_version, xmp_identification, tagged, structure_tree, language, title,
                                  fonts_embedded, unicode_mapping, figures_have_alt, tab_order, accessible_if_encrypted)


def rules_for(variant: PdfVariant) -> tuple[Rule, ...]:
    if not variant.is_pdfa:
        return _PDFUA_RULES
    extra: tuple[Rule, ...] = ()
    if variant.level == "U":
        extra += (unicode_mapping,)
    if variant.part == 1:
        extra += (no_transparency, metadata_uncompressed)
    return _PDFA_RULES + extra


def _xmp(pdf: pikepdf.Pdf) -> dict[str, str]:
    if "/Metadata" not in pdf.Root:
        return {}
    meta = pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False)
    prefixes = dict(pikepdf.models.metadata.DEFAULT_NAMESPACES)
    found = {}
    for key, value in meta.items():  # '{namespace}name' -> 'prefix:name'
        namespace, _, name = key[1:].partition("}")
        found[f"{prefixes.get(namespace, namespace)}:{name}"] = value if isinstance(value, str) else ", ".join(map(str, value))
    return found


def check(content: bytes, variant: PdfVariant, password: str = "") -> Conformance:
    """Run the variant's rules on the file as written (opened with `password` when it is encrypted)."""
    with pikepdf.open(io.BytesIO(content), password=password) as pdf:
        subject = _Subject(pdf=pdf, variant=variant, xmp=_xmp(pdf), encrypted=pdf.is_encrypted)
        return Conformance(variant=variant, checks=tuple(rule(subject) for rule in rules_for(variant)))
