"""Batch objects in a local directory or object storage (fsspec): time-partitioned names, atomic writes."""

from __future__ import annotations

import gzip
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ValidationError

SUFFIXES = (".ndjson", ".ndjson.gz")


def is_remote(dest: str) -> bool:
    """True for a URL with a scheme other than file:// (s3://, gcs://, memory:// …)."""
    return "://" in dest and not dest.startswith("file://")


def object_name(now_s: float, compress: bool) -> str:
    """Return `dt=YYYY-MM-DD/hour=HH/<time>-<uuid>.ndjson[.gz]`: unique across replicas by its UUID."""
    at = datetime.fromtimestamp(now_s, UTC)
    stamp = at.strftime("%Y%m%dT%H%M%S") + f"{at.microsecond // 1000:03d}Z"
    return (f"dt={at:%Y-%m-%d}/hour={at:%H}/{stamp}-{uuid.uuid4().hex}"
            f"{'.ndjson.gz' if compress else '.ndjson'}")


class Destination:
    """Where batch objects go: a local directory (fsync, then rename) or an fsspec URL (one atomic PUT)."""

    def __init__(self, dest: str, storage_options: dict[str, Any] | None = None, field: str = "dest") -> None:
        if not isinstance(dest, str) or not dest.strip():
            raise ValidationError(field, "a directory or an object-storage URL such as s3://bucket/prefix", dest)
        self.dest = dest.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs: Any = None
        self.root = self.dest
        if is_remote(dest):
            try:
                from fsspec.core import url_to_fs
            except ImportError:
                raise ValidationError(field, "a local directory (object storage needs the usage extra: "
                                      "pip install 'vibekit-telemetry[usage]')", dest) from None
            try:
                self.fs, self.root = url_to_fs(self.dest, **self.storage_options)
            except (ImportError, ValueError) as exc:
                raise ValidationError(field, f"an object-storage URL fsspec can open ({exc})", dest) from None
        else:
            self.root = self.dest.removeprefix("file://")

    def put(self, name: str, body: bytes) -> str:
        """Write one object whole under `name`; return its full path or URL."""
        if self.fs is None:
            final = Path(self.root) / name
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".{final.name}.partial"
            with open(tmp, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)  # readers see the whole object or nothing
            _fsync_dir(final.parent)
            return str(final)
        path = f"{self.root}/{name}"
        # An object store's PUT is atomic: the object appears whole or not at all, so no rename is needed.
        self.fs.pipe_file(path, body)
        return f"{self.dest}/{name}"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not every file system syncs directories
        pass
    finally:
        os.close(fd)


def encode(lines: list[bytes], compress: bool) -> bytes:
    """Return the object body: NDJSON, gzip-compressed when asked (mtime 0: same rows, same bytes)."""
    body = b"".join(lines)
    return gzip.compress(body, compresslevel=6, mtime=0) if compress else body
