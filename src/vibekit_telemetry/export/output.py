"""Where an export goes: a temporary file renamed when complete, an fsspec URL, a confined directory."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from ..errors import ValidationError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+://")


def is_url(path: str) -> bool:
    """Return whether the destination is a URL (s3://, gs://, memory:// …) rather than a local path."""
    return bool(_URL.match(path)) and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise ValidationError("output_path", "a local path, or fsspec installed for URLs "
                              "(pip install 'vibekit-telemetry[export]'; s3:// also needs s3fs)", "URL") from None
    return fsspec


@contextmanager
def atomic_output(path: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """Open a binary file that appears at `path` only once the block completes.

    Locally the bytes go to a hidden temporary file beside the target, renamed over it at the end
    (atomic on one filesystem), so an interrupted export never leaves a truncated file that looks
    complete. URLs go through fsspec (s3:// needs s3fs) in a transaction: the object is published only
    when the block completes (on S3 the multipart upload is completed then); an interrupted export
    discards it instead (the multipart upload is aborted, so no parts are left behind either).
    """
    if is_url(path):
        yield from _remote_output(path, dict(storage_options or {}))
        return
    target = Path(_local(path))
    if target.is_dir():
        raise ValidationError("output_path", "a file path, not a directory", path)
    parent = target.parent
    if not parent.exists():
        raise ValidationError("output_path", f"a path in an existing directory ({parent} does not exist)", path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


def _unwritable(path: str, exc: OSError) -> ValidationError:
    return ValidationError("output_path", "a writable destination", path,
                           message=f"output_path: cannot write {path}: {type(exc).__name__}: {exc}")


def _remote_output(path: str, storage_options: dict[str, Any]) -> Iterator[IO[bytes]]:
    fsspec = _fsspec()
    try:
        # Our own filesystem instance: a transaction is state of the instance, and cached instances
        # are shared with every other user of the same URL and options in the process.
        fs, fs_path = fsspec.core.url_to_fs(path, skip_instance_cache=True, **storage_options)
    except (ImportError, ValueError) as exc:
        raise ValidationError("output_path", f"a URL fsspec can write ({exc})", path) from None
    try:
        # In a transaction files are opened with autocommit off and committed when it ends without
        # an error (on S3: the multipart upload is completed then); an error discards them instead
        # (the upload is aborted, its parts deleted).
        with fs.transaction:
            out = fs.open(fs_path, "wb")
            try:
                yield out
            except BaseException:
                with suppress(AttributeError):  # buffered files: closing must not upload the rest
                    out.closed = True
                raise
            out.close()
    except OSError as exc:  # no such bucket, access denied, unreachable endpoint
        raise _unwritable(path, exc) from None


@contextmanager
def local_copy(path: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[str]:
    """Give a local path to read `path` from: itself, or for a URL a temporary download removed afterwards."""
    if not is_url(path):
        yield _local(path)
        return
    fsspec = _fsspec()
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
        exists = fs.isfile(fs_path)
    except (ImportError, ValueError, OSError) as exc:
        raise ValidationError("file", f"a URL fsspec can read ({exc})", path) from None
    if not exists:
        raise ValidationError("file", "an existing file", path)
    name = os.path.basename(fs_path.rstrip("/")) or "import"
    with tempfile.TemporaryDirectory(prefix="vibekit-import-") as tmp:
        local = os.path.join(tmp, name)  # the same name: its extension tells the format and compression
        fs.get_file(fs_path, local)
        yield local


def output_size(path: str, storage_options: Mapping[str, Any] | None = None) -> int | None:
    """Return the size in bytes of a written export (None for a URL fsspec cannot stat)."""
    if not is_url(path):
        return os.path.getsize(_local(path))
    try:
        import fsspec

        fs, fs_path = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
        size: Any = fs.size(fs_path)
        return int(size) if size is not None else None
    except Exception:
        return None


def confine(path: str, root: str | os.PathLike[str], field: str = "output_path") -> str:
    """Return `path` resolved inside the export directory `root`; ValidationError when it leaves it.

    Relative paths are taken from root. `..`, absolute paths outside root, URLs and symlinks that
    lead out of it are refused (seed 001 path-traversal protection); the directories on the way must
    exist already.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValidationError(field, "a file name inside the export directory", path)
    if is_url(path) or path.startswith("file://"):
        raise ValidationError(field, "a file name inside the export directory, not a URL", path)
    base = Path(root).resolve()
    candidate = Path(path) if os.path.isabs(path) else base / path
    # resolve() follows symlinks, so a link inside the directory pointing out of it is caught too.
    resolved = candidate.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValidationError(field, f"a path inside the export directory {base}", path)
    if resolved == base:
        raise ValidationError(field, "a file name, not the export directory itself", path)
    return str(resolved)
