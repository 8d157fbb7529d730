"""Trust before unpickling: the one rule every framework adapter applies.

A third-party checkpoint (a pickled ``.ckpt``/``.pt``, a ``torch.package`` archive such as
nequip's ``.nequip.zip``) is code: loading it runs whatever the file says. An adapter
loads such a file only when

* the caller says it is trusted (``trusted=True`` in the API, ``--trust-checkpoints`` on
  the command line), or
* it is a file an installed distribution shipped (:func:`is_installed_file`): its real
  path is one that a distribution installed in this interpreter's site directories lists
  in its ``RECORD``, and its SHA-256 is the one recorded there (SevenNet's pretrained
  models in the sevenn wheel). Installing the distribution was the act of trust. A folder
  name proves nothing: a file under ``ANYDIR/site-packages/`` that no ``RECORD`` lists,
  or whose bytes differ from the recorded hash, or a ``RECORD`` that is not in a site
  directory (a ``*.dist-info`` in the working directory), grants nothing.

Otherwise :func:`require_trust` raises :class:`UntrustedCheckpoint` before the file is
opened. Configuration files never grant trust (a sweep TOML's ``trust_checkpoints`` key
is refused). This package's own checkpoints are never unpickled (they load with
``torch.load(weights_only=True)``) and need no trust.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import site
import sysconfig
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

__all__ = ["UntrustedCheckpoint", "require_trust", "is_installed_file", "site_directories",
           "site_relative"]

#: What a user types to trust a file on the command line.
CLI_FLAG = "--trust-checkpoints"

#: Bytes read at a time while hashing a file against its RECORD entry.
_HASH_BLOCK = 1 << 20


class UntrustedCheckpoint(ValueError):
    """A pickled third-party checkpoint was not declared trusted (see the module docstring)."""


def site_directories() -> List[Path]:
    """This interpreter's site directories (``sysconfig``'s purelib and platlib, ``site``'s
    site-packages and the user site), resolved, existing ones only: where an installed
    distribution's ``*.dist-info`` lies."""
    found = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    found += list(getattr(site, "getsitepackages", lambda: [])())
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    out: List[Path] = []
    for d in found:
        p = Path(d).resolve()
        if p.is_dir() and p not in out:
            out.append(p)
    return out


def site_relative(path) -> Optional[str]:
    """``path`` (symlinks resolved) relative to the site directory that holds it, in POSIX
    form (``sevenn/pretrained_potentials/...``), or ``None`` when no site directory
    (:func:`site_directories`) holds it: how a file of an installed package is named
    without the machine's own path."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    for root in site_directories():
        try:
            return real.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


def _record_hash(path: Path) -> str:
    """``path``'s SHA-256 as a ``RECORD`` writes it (urlsafe base64, no padding)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            h.update(block)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def _candidates(real: Path) -> Iterator[Tuple[importlib.metadata.Distribution, str]]:
    """``(distribution, path relative to its site directory)`` for each distribution in a
    site directory that holds ``real`` and whose ``RECORD`` text names that relative
    path (a substring test on the text: only those ``RECORD`` files are parsed)."""
    for root in site_directories():
        try:
            rel = real.relative_to(root).as_posix()
        except ValueError:
            continue
        for dist in importlib.metadata.distributions(path=[str(root)]):
            if Path(str(dist.locate_file(""))).resolve() != root:
                continue
            text = dist.read_text("RECORD")
            if text and rel in text:
                yield dist, rel


def _listed(dist: importlib.metadata.Distribution,
            rel: str) -> Optional[importlib.metadata.PackagePath]:
    """The ``RECORD`` entry of ``dist`` for the relative path ``rel`` (``None``: not
    listed). Entries that are absolute or climb out (``..``) never match: ``rel`` is
    a resolved path below the site directory."""
    for entry in dist.files or ():
        if entry.as_posix() == rel and not entry.is_absolute() and ".." not in entry.parts:
            return entry
    return None


def is_installed_file(path) -> bool:
    """True when ``path`` is a file an installed distribution shipped (see the module
    docstring): its real path (symlinks resolved) is listed in the ``RECORD`` of a
    distribution installed in a site directory (:func:`site_directories`), with the
    size and the SHA-256 of the file's present bytes. Only the one file is hashed."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):      # missing, unreadable, a symlink loop
        return False
    if not real.is_file():
        return False
    for dist, rel in _candidates(real):
        entry = _listed(dist, rel)
        if entry is None or entry.hash is None or entry.hash.mode != "sha256":
            continue
        try:
            if entry.size is not None and real.stat().st_size != entry.size:
                continue
            if _record_hash(real) == entry.hash.value:
                return True
        except OSError:
            return False
    return False


def require_trust(path, trusted: bool, framework: str) -> None:
    """Raise :class:`UntrustedCheckpoint` unless ``path`` may be unpickled (see the module
    docstring). ``framework`` names the format in the message."""
    if trusted is not True and trusted is not False:
        raise ValueError(f"trusted must be True or False, got {trusted!r}")
    if trusted or is_installed_file(path):
        return
    raise UntrustedCheckpoint(
        f"{path}: a {framework} checkpoint is pickled code, and loading it runs whatever the "
        f"file contains. Load it only if you trust where it came from: pass trusted=True "
        f"(command line: {CLI_FLAG}).")
