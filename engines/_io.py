"""File I/O: atomic writes (a temporary file, then a rename) and bounded, single reads."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from engines.errors import ModelLoadError

__all__ = ["DEFAULT_MAX_MODEL_BYTES", "atomic_write_bytes", "read_regular_file", "write_temp"]

#: The most bytes one model may read (its file plus any external data), unless raised with
#: ``EngineConfig.max_model_bytes``, ``ONNX_MAX_MODEL_BYTES`` or ``load_model(max_bytes=)``.
#: 2 GiB is protobuf's limit for one ONNX file; a detector is usually a few MB.
DEFAULT_MAX_MODEL_BYTES = 2**31
_LIMIT_HINT = "raise it with EngineConfig(max_model_bytes=...) or ONNX_MAX_MODEL_BYTES"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: str | Path, *, max_bytes: int, what: str = "model file") -> bytes:
    """All of ``path``, read once through one descriptor; refuse anything but a regular file of
    at most ``max_bytes``, and a file that changes while it is read (ModelLoadError).

    Opening does not block (a FIFO without a writer would wait forever) and nothing is read
    before the file's type and size are known, so ``/dev/zero`` or a pipe is refused at once.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no such {what}: {path}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot open {what} {path}: {exc.strerror or exc}") from exc
    try:
        before = os.fstat(fd)
        for test, kind in _KINDS:
            if test(before.st_mode):
                raise ModelLoadError(
                    f"{path} is {kind}, not a regular file: refusing to read it as the {what} "
                    "(a device or pipe can be endless or block forever)"
                )
        if not stat.S_ISREG(before.st_mode):
            raise ModelLoadError(f"{path} is not a regular file; expected the {what}")
        if before.st_size > max_bytes:
            raise ModelLoadError(
                f"{path} is {before.st_size:,} bytes, over the limit of {max_bytes:,} bytes "
                f"for the {what} ({_LIMIT_HINT})"
            )
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 24, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise ModelLoadError(
            f"{path} grew past the limit of {max_bytes:,} bytes while being read ({_LIMIT_HINT})"
        )
    if size != before.st_size or (after.st_size, after.st_mtime_ns) != (
        before.st_size,
        before.st_mtime_ns,
    ):
        raise ModelLoadError(
            f"{path} changed while being read ({before.st_size:,} bytes when opened, {size:,} "
            "read): load it again once it is completely written"
        )
    return b"".join(chunks)


def write_temp(folder: Path, data: bytes, prefix: str = ".partial-") -> Path:
    """``data`` fully written and fsynced to a new temporary file in ``folder`` (mode 0644)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; what we write is meant to be read
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path.parent, data, prefix=f".{path.name}.")
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
