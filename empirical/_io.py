"""Atomic output for :mod:`empirical`: a reader never sees a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_files", "write_file_set", "check_output_dir", "OutputExists",
           "read_json", "MAX_JSON_BYTES", "MAX_JSON_DEPTH"]

#: Bounds on a results file read back (``empirical compare``): ours are well under 1 MiB
#: and nested 6 deep.
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 32


class OutputExists(ValueError):
    """The output directory already holds files and ``overwrite`` was not given."""


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


def _listing(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir())
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def check_output_dir(out_dir, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output directory that cannot receive a run: a path that
    exists and is not a directory, a directory that already holds files (unless
    ``overwrite``), or one whose nearest existing ancestor is not writable. Creates nothing.
    Raises :class:`OutputExists` or ``ValueError`` naming the path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExists(f"{out} already holds files ({_listing(out)}): give another "
                           "output directory, or --overwrite (overwrite=True) to replace it")
    anchor = out.parent if not out.exists() else out
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir() or not os.access(anchor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {out}: {anchor} is not a writable directory")
    return out


def write_file_set(out_dir, files: "dict[str, bytes]", overwrite: bool = False) -> "list[Path]":
    """Write ``{name: content}`` as one set: into a temporary sibling directory first, then
    renamed onto ``out_dir``, so a reader (or an interrupt) sees the whole set or none of
    it, and never files of an earlier run beside the new ones. ``out_dir`` must not hold
    files unless ``overwrite``, in which case the earlier directory is replaced as a whole
    (:func:`check_output_dir`). Returns the paths written."""
    out = check_output_dir(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        for name, blob in files.items():
            if Path(name).name != name:
                raise ValueError(f"output file names are plain names, got {name!r}")
            (tmp / name).write_bytes(blob)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)      # mkdtemp creates 0700
        for name in files:
            os.chmod(tmp / name, 0o666 & ~umask)
        if out.exists():
            if any(out.iterdir()):
                old = out.parent / f".{out.name}.{os.getpid()}.old"
                os.replace(out, old)
            else:
                out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)          # put the earlier run back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out / name for name in files]


def read_json(path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """Parse a JSON file of at most ``max_bytes`` bytes nested at most ``max_depth`` deep;
    ``ValueError`` naming the file otherwise (size and depth are checked before parsing)."""
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes >> 20} MiB: not a results file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    from spanthm.verify import json_depth

    if json_depth(text) > max_depth:
        raise ValueError(f"{path} is nested deeper than {max_depth} levels: not a results file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
