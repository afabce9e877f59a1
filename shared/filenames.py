"""Safe file names: for the PDF's download name and for files embedded in it."""
from __future__ import annotations

import re

MAX_FILENAME_CHARS = 128
MAX_EXTENSION_CHARS = 16
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_stem(stem: str, max_chars: int) -> str:
    return _UNSAFE_FILENAME_CHARS.sub("-", stem).strip(".-")[:max_chars]


def safe_filename(raw: str) -> str | None:
    """A download name that cannot traverse paths or break a Content-Disposition header."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base[:-4] if base.lower().endswith(".pdf") else base
    stem = _safe_stem(stem, MAX_FILENAME_CHARS - 4)
    return f"{stem}.pdf" if stem else None


def safe_basename(raw: str) -> str | None:
    """Like safe_filename, but keeping the name's own extension (`../lines.csv` -> `lines.csv`)."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    if not dot:
        stem, extension = base, ""
    extension = _UNSAFE_FILENAME_CHARS.sub("", extension)[:MAX_EXTENSION_CHARS]
    stem = _safe_stem(stem, MAX_FILENAME_CHARS - len(extension) - 1)
    if not stem:
        return None
    return f"{stem}.{extension}" if extension else stem
