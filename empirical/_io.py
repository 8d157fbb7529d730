"""Atomic output for :mod:`empirical`: a reader never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success give it the usual file mode and
    rename it onto ``path`` (atomic on POSIX); on any exception, interrupt included, remove
    it. Creates parent directories. ``suffix`` lets writers that insist on an extension
    (``np.savez``, matplotlib) keep it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_files(out_dir, files: "dict[str, bytes]") -> "list[Path]":
    """Write ``{name: content}`` into ``out_dir``, each file atomically (:func:`atomic_path`),
    in the given order; the content is computed by the caller before the first write, so a
    content error writes nothing. Returns the paths written."""
    written = []
    for name, blob in files.items():
        path = Path(out_dir) / name
        with atomic_path(path, suffix=Path(name).suffix) as tmp:
            Path(tmp).write_bytes(blob)
        written.append(path)
    return written
