"""Whole-file compression of exports and imports: gzip (stdlib), brotli and zstd (the `export` extra)."""

from __future__ import annotations

import gzip
import io
from typing import IO, Any, Final, Protocol, cast

from ..errors import ValidationError

COMPRESSIONS: Final = ("none", "gzip", "brotli", "zstd")
# The file extension that selects each compression when none is given, and the one written.
EXTENSIONS: Final = {".gz": "gzip", ".gzip": "gzip", ".br": "brotli", ".zst": "zstd", ".zstd": "zstd"}
SUFFIX: Final = {"gzip": ".gz", "brotli": ".br", "zstd": ".zst", "none": ""}
_ALIASES: Final = {"gz": "gzip", "br": "brotli", "zstandard": "zstd", "": "none", "off": "none"}


class Sink(Protocol):
    """A binary destination with write() and close()."""

    def write(self, data: bytes) -> object:
        """Write bytes."""

    def close(self) -> None:
        """Finish the stream."""


def normalise(compression: str | None, field: str = "compression") -> str | None:
    """Return the canonical compression name, None when not given; ValidationError when unknown."""
    if compression is None:
        return None
    if not isinstance(compression, str):
        raise ValidationError(field, "one of " + ", ".join(COMPRESSIONS), compression)
    name = _ALIASES.get(compression.lower(), compression.lower())
    if name not in COMPRESSIONS:
        raise ValidationError(field, "one of " + ", ".join(COMPRESSIONS), compression)
    return name


def from_extension(path: str) -> str:
    """Return the compression a file name asks for by its last extension ('none' when none does)."""
    lowered = path.lower()
    for ext, name in EXTENSIONS.items():
        if lowered.endswith(ext):
            return name
    return "none"


def strip_extension(path: str) -> str:
    """Return the path without a compression extension (events.json.gz -> events.json)."""
    lowered = path.lower()
    for ext in EXTENSIONS:
        if lowered.endswith(ext):
            return path[: -len(ext)]
    return path


def _need(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ValidationError("compression", f"the `{module}` package (pip install 'vibekit-telemetry[export]')",
                              module) from None


class _BrotliWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._compressor = _need("brotli").Compressor(quality=5)

    def write(self, data: bytes) -> int:
        self._raw.write(self._compressor.process(data))
        return len(data)

    def close(self) -> None:
        self._raw.write(self._compressor.finish())


class _Plain:
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def write(self, data: bytes) -> int:
        return self._raw.write(data)

    def close(self) -> None:
        """The raw file is closed by its owner."""


def compressing_writer(raw: IO[bytes], compression: str) -> Sink:
    """Wrap a binary file so what is written to the result lands compressed in it (raw stays open)."""
    if compression == "gzip":
        # mtime=0: the same events give the same bytes, so exports can be compared and de-duplicated.
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    if compression == "zstd":
        return _need("zstandard").ZstdCompressor(level=3).stream_writer(raw, closefd=False)  # type: ignore[no-any-return]
    if compression == "brotli":
        return _BrotliWriter(raw)
    return _Plain(raw)


def detect(head: bytes, path: str) -> str:
    """Return the compression of a file from its first bytes (gzip, zstd), else from its extension (brotli)."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return from_extension(path) if from_extension(path) == "brotli" else "none"


class _BrotliReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._decompressor = _need("brotli").Decompressor()
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = self._raw.read(65536)
            if not chunk:
                if not self._decompressor.is_finished():
                    raise ValueError("the brotli stream is truncated")
                return 0
            self._buffer = self._decompressor.process(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def decompressing_reader(raw: IO[bytes], compression: str) -> IO[bytes]:
    """Wrap a binary file so reading the result gives the decompressed bytes."""
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "zstd":
        reader = _need("zstandard").ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(reader)
    if compression == "brotli":
        return io.BufferedReader(_BrotliReader(raw))
    return raw
