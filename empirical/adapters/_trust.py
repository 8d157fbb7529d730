"""Trust before unpickling: the one rule every framework adapter applies.

A third-party checkpoint (a pickled ``.ckpt``/``.pt``, a ``torch.package`` archive such as
nequip's ``.nequip.zip``) is code: loading it runs whatever the file says. An adapter
loads such a file only when

* the caller says it is trusted (``trusted=True`` in the API, ``--trust-checkpoints`` on
  the command line), or
* it is shipped inside an installed package (under a ``site-packages`` or
  ``dist-packages`` directory, or inside this package), where installing the package was
  the act of trust.

Otherwise :func:`require_trust` raises :class:`UntrustedCheckpoint` before the file is
opened. This package's own checkpoints are never unpickled (they load with
``torch.load(weights_only=True)``) and need no trust.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["UntrustedCheckpoint", "require_trust", "is_installed_file"]

#: What a user types to trust a file on the command line.
CLI_FLAG = "--trust-checkpoints"


class UntrustedCheckpoint(ValueError):
    """A pickled third-party checkpoint was not declared trusted (see the module docstring)."""


def is_installed_file(path) -> bool:
    """True for a file inside an installed package (``site-packages``/``dist-packages``)
    or inside this package's own directory."""
    resolved = Path(path).resolve()
    if any(part in ("site-packages", "dist-packages") for part in resolved.parts):
        return True
    own = Path(__file__).resolve().parents[1]            # the empirical package
    return own in resolved.parents


def require_trust(path, trusted: bool, framework: str) -> None:
    """Raise :class:`UntrustedCheckpoint` unless ``path`` may be unpickled (see the module
    docstring). ``framework`` names the format in the message."""
    if trusted is True or is_installed_file(path):
        return
    if trusted is not False:
        raise ValueError(f"trusted must be True or False, got {trusted!r}")
    raise UntrustedCheckpoint(
        f"{path}: a {framework} checkpoint is pickled code, and loading it runs whatever the "
        f"file contains. Load it only if you trust where it came from: pass trusted=True "
        f"(command line: {CLI_FLAG}).")
