"""Where a downloaded PDF goes: a file object as given, or a path that never holds half a PDF."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Union

Destination = Union[str, "os.PathLike[str]", BinaryIO]


class PdfSink:
    """Writes chunks to the destination; a path is written through a temporary sibling renamed at the end, so a
    download that breaks leaves the earlier file (or none) rather than a truncated PDF."""

    def __init__(self, destination: Destination) -> None:
        self.written = 0
        self._path: Path | None = None
        self._temporary: Path | None = None
        self._file: IO[bytes]
        if isinstance(destination, (str, os.PathLike)):
            self._path = Path(destination)
            # Not mkstemp: its 0600 mode would outlive the rename; `open` honours the umask like any new file.
            self._temporary = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex}.part")
            self._file = open(self._temporary, "xb")
        else:
            self._file = destination

    def __enter__(self) -> PdfSink:
        return self

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._path is None or self._temporary is None:
            return
        self._file.close()
        if kind is None:
            os.replace(self._temporary, self._path)
        else:
            self._temporary.unlink(missing_ok=True)
