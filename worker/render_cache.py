"""What a worker parses once, before it forks: templates/ stylesheets, inline <style> blocks, decoded images.

Each cache is filled only while the worker warms up on its own built-in templates, then frozen: a
work-horse finds the built-in templates' stylesheets and images ready, and nothing a job brings
(another tenant's CSS or images) is ever kept for a later job. The templates/ tree's content hash,
taken at start-up, is what a cache entry is valid for: a deploy with a changed file starts new
workers, which parse it afresh.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import weasyprint.css
from weasyprint import CSS

INLINE_STYLE_CACHE_SIZE = 64
"""Parsed inline <style> blocks kept per worker (the built-in templates need a handful)."""


@dataclass(frozen=True)
class TemplateTree:
    """The bytes of every file under templates/ at start-up, by file URL, and one hash over all of them."""

    root_uri: str
    files: dict[str, str]
    """file:// URL -> sha256 of the file's bytes."""
    sha256: str

    @classmethod
    def scan(cls, templates_dir: Path) -> TemplateTree:
        root = templates_dir.resolve()
        files: dict[str, str] = {}
        overall = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[path.as_uri()] = digest
            overall.update(f"{path.relative_to(root).as_posix()}\0{digest}\n".encode())
        return cls(root.as_uri() + "/", files, overall.hexdigest())

    def holds(self, url: str) -> bool:
        return url in self.files


@dataclass
class ParsedSheet:
    """A parsed stylesheet with what its parse added to the document-wide collections, to add again on reuse."""

    css: CSS
    counter_styles: dict[str, Any]
    color_profiles: dict[str, Any]
    assets: list[tuple[str, str]]
    """What the parse fetched (the file itself, its @imports, fonts) as (URL, sha256), for the render manifest."""

    def replay(self, counter_style: Any, color_profiles: Any) -> CSS:
        if counter_style is not None:
            counter_style.update(self.counter_styles)
        if color_profiles is not None:
            color_profiles.update(self.color_profiles)
        return self.css


@dataclass
class RenderLog:
    """What one render loaded: every asset, fetched or served from a cache, with the sha256 of its bytes."""

    assets: list[tuple[str, str]] = field(default_factory=list)
    """(URL, sha256) in the order first loaded."""
    remote: bool = False
    """An allow-listed https asset was loaded: its bytes may change, so the render is not offered for reuse."""

    def note(self, url: str, sha256: str) -> None:
        if (url, sha256) not in self.assets:
            self.assets.append((url, sha256))
        self.remote = self.remote or url.lower().startswith("https:")


class _NotedImages(dict):  # type: ignore[type-arg]
    """One render's image cache: a copy of the kept images that lists each kept one the render uses."""

    def __init__(self, kept: dict[str, Any], tree: TemplateTree, log: RenderLog) -> None:
        super().__init__(kept)
        self.tree = tree
        self.log = log

    def __contains__(self, url: object) -> bool:
        found = super().__contains__(url)
        if found and isinstance(url, str) and self.tree.holds(url):
            self.log.note(url, self.tree.files[url])
        return found


_current: contextvars.ContextVar[tuple[RenderCaches, RenderLog] | None] = contextvars.ContextVar(
    "render_caches", default=None)


class RenderCaches:
    """Parsed stylesheets and decoded images shared by every render of this worker process."""

    def __init__(self, tree: TemplateTree) -> None:
        self.tree = tree
        self._files: dict[str, ParsedSheet] = {}
        self._inline: OrderedDict[tuple[str, str], ParsedSheet] = OrderedDict()
        self._images: dict[str, Any] = {}
        self._image_ids = {hashlib.md5(url.encode(), usedforsecurity=False).hexdigest() for url in tree.files}
        self._warming = False

    @contextlib.contextmanager
    def render(self, *, warm: bool = False) -> Iterator[tuple[RenderLog, dict[str, Any]]]:
        """One render's scope: its log and its image cache (the kept images plus what this render decodes)."""
        log = RenderLog()
        images = _NotedImages(self._images, self.tree, log)
        self._warming = warm
        token = _current.set((self, log))
        try:
            yield log, images
        finally:
            _current.reset(token)
            self._warming = False
        if warm:
            self._images.update((url, image) for url, image in images.items() if self._keeps_image(url))

    def _keeps_image(self, key: str) -> bool:
        """Image URLs under templates/, and the decoded data WeasyPrint files under such an image's id."""
        return self.tree.holds(key) or key.split("-", 1)[0] in self._image_ids

    def preparse(self, stylesheet: Path, **css_options: Any) -> None:
        """Parse a stylesheet file of templates/ now (start-up), so that renders which link it skip the parse."""
        url = stylesheet.resolve().as_uri()
        with self.render(warm=True):
            if (parsed := self._parse({"url": url, **css_options})) is not None:
                self._keep(("url", url), parsed)

    def _keep(self, key: tuple[str, str], parsed: ParsedSheet) -> None:
        if key[0] == "url":
            self._files[key[1]] = parsed
            return
        self._inline[key] = parsed
        while len(self._inline) > INLINE_STYLE_CACHE_SIZE:
            self._inline.popitem(last=False)

    def stylesheet(self, log: RenderLog, kwargs: dict[str, Any]) -> CSS:
        """A document's stylesheet: kept, parsed and kept (warm-up only), or parsed as WeasyPrint would."""
        key = self._key(kwargs)
        if key is None:
            return CSS(**kwargs)
        found = self._files.get(key[1]) if key[0] == "url" else self._inline.get(key)
        if found is None and self._warming and (found := self._parse(kwargs)) is not None:
            self._keep(key, found)
        if found is None:
            return CSS(**kwargs)
        for url, digest in found.assets:
            log.note(url, digest)
        return found.replay(kwargs.get("counter_style"), kwargs.get("color_profiles"))

    def _key(self, kwargs: dict[str, Any]) -> tuple[str, str] | None:
        """Only whole documents' sheets from known sources; an @import (parent's matcher) or a layer is not."""
        if kwargs.get("matcher") is not None or kwargs.get("layer") is not None:
            return None
        if kwargs.get("url") is not None:
            return ("url", kwargs["url"]) if self.tree.holds(kwargs["url"]) else None
        string = kwargs.get("string")
        if isinstance(string, str) and "@font-face" not in string:  # a render's own fonts last one render
            digest = hashlib.sha256(string.encode()).hexdigest()
            return "string", f"{digest}:{kwargs.get('base_url')}:{kwargs.get('media_type')}"
        return None

    def _parse(self, kwargs: dict[str, Any]) -> ParsedSheet | None:
        """Parse into collections of the sheet's own, recording what it adds; None for a sheet with @layer rules."""
        counter_styles: dict[str, Any] = {}
        color_profiles: dict[str, Any] = {}
        log = RenderLog()
        token = _current.set((self, log))
        try:
            css = CSS(**{**kwargs, "counter_style": counter_styles, "color_profiles": color_profiles,
                         "page_rules": [], "layers": []})
        finally:
            _current.reset(token)
        if css.layers:  # layer order is document-wide; such a sheet is parsed per document
            return None
        return ParsedSheet(css, counter_styles, color_profiles, log.assets)


def note_fetch(url: str, body: bytes) -> None:
    """Called by the fetcher for every asset it serves, so the render manifest lists it."""
    current = _current.get()
    if current is not None:
        current[1].note(url, hashlib.sha256(body).hexdigest())


def _document_stylesheet(*args: Any, **kwargs: Any) -> CSS:
    """weasyprint.css's CSS(...) for <link>, <style> and @import: served from the caches inside a render."""
    current = _current.get()
    if current is None or args:
        return CSS(*args, **kwargs)
    caches, log = current
    return caches.stylesheet(log, kwargs)


# weasyprint.css builds every document stylesheet through its module-level name `CSS`; routing that name here
# is the one place a parsed sheet can be handed back instead of re-parsed. (Pinned: WeasyPrint 70.)
weasyprint.css.CSS = _document_stylesheet  # type: ignore[misc,assignment]
