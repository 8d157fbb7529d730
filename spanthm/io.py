"""Output files for both command lines (``spanthm`` and ``empirical``): atomic writes and
output sets with manifests.

* :func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_text`,
  :func:`atomic_write_json`: the one atomic writer of the project. Content goes to a
  temporary file beside the target, is flushed and ``fsync``-ed, given the usual file mode
  and renamed onto the target (:func:`os.replace`, atomic on POSIX); an exception or an
  interrupt removes the temporary file. A reader never sees a half-written file.
* :func:`write_set`, :func:`read_manifest`, :func:`unvouched`: a directory written as one
  set with a manifest (docs/method.md §6), replaced with ``--overwrite`` only when the
  manifest vouches for every entry in it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "MANIFEST_NAME", "read_manifest",
           "unvouched", "write_set", "resolve_out", "unwritable_anchor"]


def _usual_mode(path) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (mode 0600) the mode a plain ``open``
    would (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _write_synced(path, blob: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer to fill (``np.savez``,
    matplotlib, ``torch.save``); on success ``fsync`` it, give it the usual file mode and
    rename it onto ``path``; on any exception, interrupt included, remove it. Creates
    parent directories. ``suffix`` lets writers that insist on an extension keep it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        _usual_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path, blob: bytes) -> Path:
    """Write ``blob`` to ``path`` atomically (:func:`atomic_path`). Returns the path."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".tmp") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(blob)
    return path


def atomic_write_text(path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    """:func:`atomic_write_text` of ``obj`` as indented, key-sorted JSON with a newline."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- manifests
#
# Every output directory a run writes as one set holds MANIFEST_NAME: the tool, its
# version, the command, and the sha256 of every file of the set. ``--overwrite`` replaces a
# directory only when every entry in it is vouched for by such a manifest (a listed regular
# file whose content still has the listed hash, or a listed sub-directory that is itself
# vouched for): a hand-written manifest cannot make the tool delete a file whose content it
# did not write.

#: File name of the manifest written into every output directory (hidden, JSON).
MANIFEST_NAME = ".spectral-ceilings.json"
#: ``tool`` field of a manifest.
MANIFEST_TOOL = "spectral-ceilings"
#: A manifest larger than this is not ours (ours list a few dozen files: a few KiB).
MAX_MANIFEST_BYTES = 1024 * 1024
#: A file larger than this is never vouched for (so checking a directory costs at most this
#: much hashing per listed file); our largest outputs (checkpoints, PNGs) are a few MiB.
MAX_VOUCHED_FILE_BYTES = 1024 * 1024 * 1024
#: Foreign entries named in a refusal (then "and N more").
FOREIGN_SHOWN = 4


def sha256_bytes(blob: bytes) -> str:
    """Hex sha256 of ``blob``."""
    import hashlib

    return hashlib.sha256(blob).hexdigest()


def sha256_file(path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _portable(arg: str, base) -> str:
    """``arg`` of a recorded command line with every absolute path in it (``/x/y``,
    ``--opt=/x/y``, ``native:/x/y``) written relative to ``base`` (the output directory:
    what a reader of the manifest has), so that no path of the machine a run happened on
    goes into an output (:func:`portable_text`)."""
    if base is None:
        return arg
    head, sep, tail = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if os.path.isabs(tail):          # a path argument: relative whether it exists or not
        return head + sep + os.path.relpath(tail, os.path.realpath(base))
    return portable_text(arg, base)  # a path inside an argument (``native:/x/y``)


#: A candidate absolute path inside text: a ``/`` not preceded by a word character, then
#: characters that do not end a path in our outputs (space, quotes, brackets, separators).
_ABSOLUTE = re.compile(r"(?<![\w.~-])(/[^\s\"'`|,;()\[\]{}<>]+)")
#: The same inside JSON text, where a quote inside a string is escaped (``\\"``).
_ABSOLUTE_JSON = re.compile(r'(?:(?<=\\[nrtbf"/])|(?<=\\u[0-9a-fA-F]{4})|(?<![\w.~-]))'
                            r'(/(?:[^\s"\\`|,;()\[\]{}<>]|\\.)+)')
#: Output files whose text is made portable by :func:`write_set` (the rest are binary).
TEXT_SUFFIXES = (".json", ".md", ".txt", ".log", ".csv", ".toml")


def portable_text(text: str, base, json_escaped: bool = False) -> str:
    """``text`` with every absolute path of this machine in it (one that exists, or whose
    folder exists) written relative to ``base`` (the output directory: what a reader of
    the output has), so that no path of the machine a run happened on goes into an output
    (docs/method.md §6). Anything else that merely contains a ``/`` (``rho(4)/rho(5)``, a
    top-level name such as ``/x``) is left alone. With
    ``json_escaped`` the text is JSON and a path in it is read (and written back) with
    JSON's escapes (``\\u00e9``, ``\\"``). A path with a space is cut at the space; its
    head is made relative all the same, so the whole stays relative.

    >>> import tempfile, os
    >>> out = tempfile.mkdtemp()
    >>> portable_text(f"source: {os.path.dirname(out)}/x.pt; rho(4)/rho(5); meV/A", out)
    'source: ../x.pt; rho(4)/rho(5); meV/A'
    """
    root = os.path.realpath(base)

    def relative(match: "re.Match") -> str:
        written = match.group(1).rstrip(".:")
        rest = match.group(1)[len(written):]
        path = written
        if json_escaped:
            try:
                path = json.loads(f'"{written}"')
            except ValueError:
                return match.group(0)
        folder = os.path.dirname(path)
        if folder in ("/", "") or not (os.path.exists(path) or os.path.isdir(folder)):
            return match.group(0)     # "/rho(5)" is not a path: a machine path has a folder
        rel = os.path.relpath(os.path.realpath(path), root)
        return (json.dumps(rel)[1:-1] if json_escaped else rel) + rest

    pattern = _ABSOLUTE_JSON if json_escaped else _ABSOLUTE
    return pattern.sub(relative, text)


def manifest_bytes(files: "dict[str, str]", kind: str = "set",
                   dirs: "dict[str, str] | None" = None, base=None) -> bytes:
    """The manifest of a directory holding ``files`` (name -> sha256 hex, or a list of
    accepted hashes while a file is being replaced) and ``dirs`` (name -> ``"set"``, a
    sub-directory with its own manifest, or another kind a caller knows how to check).
    The command line is recorded with absolute paths made relative to ``base``."""
    import sys

    from . import __version__

    command = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python",
               *(_portable(a, base) for a in sys.argv[1:])]
    manifest = {"tool": MANIFEST_TOOL, "version": __version__, "kind": kind,
                "command": command, "files": dict(sorted(files.items())),
                "dirs": dict(sorted((dirs or {}).items()))}
    return (json.dumps(manifest, indent=1) + "\n").encode("utf-8")


def read_manifest(directory) -> "dict | None":
    """The manifest of ``directory`` when it holds a well-formed one (a regular file, not a
    link, at most :data:`MAX_MANIFEST_BYTES`, our ``tool``); ``None`` otherwise."""
    path = Path(directory) / MANIFEST_NAME
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if (not isinstance(manifest, dict) or manifest.get("tool") != MANIFEST_TOOL
            or not isinstance(manifest.get("files", {}), dict)
            or not isinstance(manifest.get("dirs", {}), dict)):
        return None
    return manifest


def entry_hashes(entry) -> "list[str]":
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [h for h in entry if isinstance(h, str)]
    return []


#: Sub-directories a manifest may vouch for, nested (ours: a reproduction folder holds step
#: folders, 2 levels); a deeper chain of manifests is not ours.
MAX_SET_DEPTH = 8


def unvouched(directory, check_dir=None, prefix: str = "", depth: int = 0) -> "list[str]":
    """Entries of ``directory`` (relative names, sorted) that its manifest does not vouch
    for: everything when there is no manifest; else every entry other than the manifest
    that is a link, an unlisted name, a listed file whose size is over
    :data:`MAX_VOUCHED_FILE_BYTES` or whose sha256 is not a listed one, or a listed
    sub-directory that is not vouched for in turn. A sub-directory listed with a kind other
    than ``"set"`` is checked by ``check_dir(path, kind, prefix)`` (a list of foreign
    names), and is foreign when no ``check_dir`` is given. A sub-directory deeper than
    :data:`MAX_SET_DEPTH` is foreign (a chain of hand-made manifests is bounded)."""
    directory = Path(directory)
    if depth > MAX_SET_DEPTH:
        return [prefix or f"{directory.name}/"]
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    manifest = read_manifest(directory)
    if manifest is None:
        return [prefix + p.name + ("/" if p.is_dir() and not p.is_symlink() else "")
                for p in entries]
    files, dirs = manifest.get("files", {}), manifest.get("dirs", {})
    foreign: "list[str]" = []
    for path in entries:
        name = path.name
        if name == MANIFEST_NAME:
            continue
        if path.is_symlink():
            foreign.append(prefix + name)
        elif path.is_file() and name in files:
            if (path.stat().st_size > MAX_VOUCHED_FILE_BYTES
                    or sha256_file(path) not in entry_hashes(files[name])):
                foreign.append(prefix + name)
        elif path.is_dir() and name in dirs:
            kind = dirs[name]
            if kind == "set":
                foreign += unvouched(path, check_dir, prefix + name + "/", depth + 1)
            elif check_dir is not None:
                foreign += check_dir(path, kind, prefix + name + "/")
            else:
                foreign.append(prefix + name + "/")
        else:
            foreign.append(prefix + name + ("/" if path.is_dir() else ""))
    return foreign


def describe(names: "list[str]") -> str:
    """Up to :data:`FOREIGN_SHOWN` names, then "and N more"."""
    shown = ", ".join(names[:FOREIGN_SHOWN])
    return shown + (f" and {len(names) - FOREIGN_SHOWN} more" if len(names) > FOREIGN_SHOWN
                    else "")


def resolve_out(path) -> Path:
    """``path`` made absolute with every symbolic link resolved (an output written through
    a link goes into the directory the link points to; the link stays). ``ValueError`` for
    a link that does not resolve (a loop)."""
    real = Path(os.path.realpath(path))
    if real.is_symlink():
        raise ValueError(f"{path} is a symbolic link that does not resolve (a loop)")
    return real


def unwritable_anchor(path) -> "Path | None":
    """The nearest existing ancestor of ``path`` (where a set or a file is assembled before
    it is renamed into place) when it is not a writable directory; ``None`` when it is."""
    anchor = Path(path).parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir() or not os.access(anchor, os.W_OK | os.X_OK):
        return anchor
    # os.access says yes to root on a read-only file system (and on /sys, /proc): try it
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=anchor)
    except OSError:
        return anchor
    os.close(fd)
    os.unlink(probe)
    return None


def contains(outer: Path, inner: Path) -> bool:
    """Whether the resolved path ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or outer in inner.parents


def write_set(out_dir, files: "dict[str, bytes]", kind: str = "set",
              recheck=None) -> "list[Path]":
    """Write ``{name: content}`` and their manifest as one set: into a temporary sibling
    directory, then renamed onto ``out_dir`` (resolved, :func:`resolve_out`); a directory
    already there is renamed aside and removed only after the new one is in place, and put
    back on any failure. ``recheck(real_out)`` runs just before the swap (the caller
    refuses there a directory that gained foreign files since its first check). No
    temporary directory is left behind. Returns the paths written."""
    import shutil

    out = resolve_out(out_dir)
    for name in files:
        if Path(name).name != name or name in ("", ".", "..", MANIFEST_NAME):
            raise ValueError(f"output file names are plain names, got {name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        hashes = {}
        for name, blob in files.items():
            if name.endswith(TEXT_SUFFIXES):
                blob = portable_text(blob.decode("utf-8"), out,
                                     json_escaped=name.endswith(".json")).encode("utf-8")
            _write_synced(tmp / name, blob)
            hashes[name] = sha256_bytes(blob)
        _write_synced(tmp / MANIFEST_NAME, manifest_bytes(hashes, kind, base=out))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)      # mkdtemp creates 0700
        for name in [*files, MANIFEST_NAME]:
            os.chmod(tmp / name, 0o666 & ~umask)
        if recheck is not None:
            recheck(out)
        if out.exists():
            if any(out.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old",
                                            dir=out.parent))
                os.replace(out, old / "d")
            else:
                out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old / "d", out)    # put the earlier run back
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return [Path(out_dir) / name for name in files]
