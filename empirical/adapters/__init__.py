"""Adapters: backbones from a spec, through one registry.

:func:`resolve_backbones` turns what a user names into :class:`BackboneEntry` records (the
name, the protocol object, and where it came from: ``source``, ``sha256``, ``seed``, the
test MAEs and the adapter's own keys in ``extra``; :meth:`BackboneEntry.info` is what
results.json records). Every spec goes through :data:`ADAPTERS`: ``PREFIX:SPEC`` through
that adapter's ``from_spec``, a plain shipped name or checkpoint path (``aspirin_L2_seed0``,
``x.pt``) through the ``native`` one, a protocol object as it is.

Each adapter is one file of the same shape (``empirical/adapters/<framework>.py``):

* ``PREFIX`` (the spec prefix, e.g. ``"sevenn"``), ``REQUIREMENT``, ``MISSING_MESSAGE``;
* ``load(name_or_path, ...)`` and ``from_model(model, ...)`` returning the backbone object;
* ``from_spec(spec, *, trusted=False) -> BackboneEntry`` for the text after ``PREFIX:``
  in ``--backbones``;
* ``available() -> list[str]``: the full specs this environment can load without a
  download (the survey's list; empty when the framework is absent).

The adapters:

* :mod:`empirical.adapters.native`: this package's own checkpoints (``native:NAME_OR_PATH``
  or the plain name or path); loaded with ``weights_only=True``, no trust needed.
* :mod:`empirical.adapters.nequip`: nequip 0.19 checkpoints and packaged models
  (``nequip:PATH``; ``pip install 'spectral-ceilings[nequip]'``).
* :mod:`empirical.adapters.sevenn`: SevenNet's pretrained potentials and checkpoints
  (``sevenn:7net-0``, ``sevenn:7net-mf-0@PBE``, ``sevenn:PATH``; extra ``[sevenn]``).
* :mod:`empirical.adapters.mace`: MACE model files (``mace:PATH``; see the README for the
  install route beside e3nn 0.6).

A framework adapter wraps the framework's model in a subclass of
:class:`~empirical.adapters._base.FrameworkBackbone`, which holds the plumbing every one
shares (``device``, ``to``, ``parameters``, ``eval``, ``dtype``, the input checks), and
adds the protocol's model-specific part (:mod:`empirical.backbone._protocol`:
``irreps_out``, ``node_features``, ``energy``, ``features_batch``, ``layers``/``at_layer``).
The other framework is an optional dependency, imported only when its adapter is used, so
importing this package (or an adapter module) never needs it. It is imported, and its
models built, inside :func:`~empirical.adapters._framework.preserved_process_state`, which
leaves the process as it was found (default dtype, generators, ``os.environ``, e3nn's
settings). Third-party checkpoints are pickled code: every framework adapter calls
:func:`empirical.adapters._trust.require_trust` before it opens one.

Recorded sources never hold an absolute path of the machine: a file is recorded as the user
gave it, a model shipped in an installed package relative to its site directory, with the
package's version (``sevenn 0.13.0: sevenn/pretrained_potentials/...``).
"""

from __future__ import annotations

import importlib
from typing import List

from ._entry import BackboneEntry, resolve_backbones

__all__ = ["ADAPTERS", "adapter", "from_spec", "is_spec", "available", "BackboneEntry",
           "resolve_backbones"]

#: Spec prefix -> adapter module (``--backbones PREFIX:SPEC``).
ADAPTERS = {"native": "empirical.adapters.native",
            "nequip": "empirical.adapters.nequip",
            "sevenn": "empirical.adapters.sevenn",
            "mace": "empirical.adapters.mace"}


def is_spec(item) -> bool:
    """True for a string ``PREFIX:...`` naming one of :data:`ADAPTERS`."""
    return isinstance(item, str) and item.split(":", 1)[0] in ADAPTERS and ":" in item


def adapter(prefix: str):
    """The adapter module for ``prefix`` (imported on demand)."""
    if prefix not in ADAPTERS:
        raise ValueError(f"unknown adapter {prefix!r}: one of {sorted(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[prefix])


def from_spec(item: str, trusted: bool = False) -> BackboneEntry:
    """The :class:`BackboneEntry` of ``PREFIX:SPEC`` through that adapter's ``from_spec``."""
    prefix, spec = item.split(":", 1)
    if not spec:
        raise ValueError(f"{item!r}: nothing after {prefix}:")
    return adapter(prefix).from_spec(spec, trusted=trusted)


def available() -> List[str]:
    """Every spec the installed frameworks can load here without a download."""
    out: List[str] = []
    for prefix in ADAPTERS:
        try:
            specs = list(adapter(prefix).available())
        except ImportError:
            continue
        out += [s if s.startswith(f"{prefix}:") else f"{prefix}:{s}" for s in specs]
    return out
