"""Adapters: force fields from other packages as backbones of the diagnostic.

Each adapter wraps a model of another framework in an object that follows the backbone
protocol (:mod:`empirical.backbone._protocol`: ``irreps_out``, ``node_features``,
``energy``, and the optional ``features_batch``, ``device``/``to``, ``layers``/``at_layer``),
records where it came from (``origin``, ``sha256``) and its feature degree ``L``. The other
framework is an optional dependency, imported only when an adapter is used, so importing
this package (or an adapter module) never needs it.

Every adapter is one file of the same shape (``empirical/adapters/<framework>.py``):

* ``PREFIX`` (the spec prefix, e.g. ``"sevenn"``), ``REQUIREMENT``, ``MISSING_MESSAGE``;
* ``<Framework>AdapterError(ValueError)`` and ``<Framework>Missing(ImportError, ...Error)``;
* ``load(name_or_path, *, trusted=False, layer=None, ...)`` and ``from_model(model, ...)``
  returning the backbone object;
* ``from_spec(spec, *, trusted=False) -> (backbone, name, info)`` for the text after
  ``PREFIX:`` in ``--backbones`` (``info``: ``source``, ``sha256``, ``seed`` (-1), the
  test MAEs (``None``) and the adapter's own keys, recorded in results.json);
* ``available() -> list[str]``: the full specs this environment can load without a
  download (the survey's list; empty when the framework is absent).

Third-party checkpoints are pickled code: every adapter calls
:func:`empirical.adapters._trust.require_trust` before it opens one.

* :mod:`empirical.adapters.nequip`: nequip 0.19 checkpoints and packaged models
  (``nequip:PATH``; ``pip install 'spectral-ceilings[nequip]'``).
* :mod:`empirical.adapters.sevenn`: SevenNet's pretrained potentials and checkpoints
  (``sevenn:7net-0``, ``sevenn:7net-mf-0@PBE``, ``sevenn:PATH``; extra ``[sevenn]``).
* :mod:`empirical.adapters.mace`: MACE model files (``mace:PATH``; see the README for the
  install route beside e3nn 0.6).
"""

from __future__ import annotations

import importlib
from typing import List, Tuple

__all__ = ["ADAPTERS", "adapter", "from_spec", "is_spec", "available"]

#: Spec prefix -> adapter module (``--backbones PREFIX:SPEC``).
ADAPTERS = {"nequip": "empirical.adapters.nequip",
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


def from_spec(item: str, trusted: bool = False) -> Tuple[object, str, dict]:
    """``(backbone, name, info)`` for ``PREFIX:SPEC`` through that adapter's ``from_spec``."""
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
