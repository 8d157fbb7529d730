"""This package's own backbones (:class:`empirical.backbone.Backbone` checkpoints) through
the adapter registry.

::

    from empirical.adapters import native
    entry = native.from_spec("aspirin_L2_seed0")     # a shipped backbone, by name
    entry = native.from_spec("runs/L2/best.pt")      # a checkpoint written by training
    entry.source                                     # "shipped backbone aspirin_L2_seed0"

``--backbones native:NAME_OR_PATH`` names one; a plain name or path (``aspirin_L2_seed0``,
``x.pt``) is routed here too (:func:`empirical.adapters.resolve_backbones`). A checkpoint
is a ``torch.save`` dict of plain tensors, loaded with ``weights_only=True`` (no code is
unpickled): it needs no trust (``trusted`` is accepted for the registry's shape and
ignored). The entry records where the backbone came from relative to what a reader has:
``"shipped backbone NAME"`` for a shipped one, the path as the user gave it for a file
(never resolved to an absolute path), the file's SHA-256, the training seed and the held-out
errors the checkpoint records.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

from ._entry import BackboneEntry

__all__ = ["load", "from_model", "from_spec", "available", "PREFIX", "REQUIREMENT",
           "MISSING_MESSAGE"]

#: Spec prefix: ``--backbones native:NAME_OR_PATH``.
PREFIX = "native"
#: Nothing beyond this package.
REQUIREMENT = ""
#: Never shown: this package is always there.
MISSING_MESSAGE = ""


def load(name_or_path, device: str = "cpu"):
    """The backbone of a checkpoint file or shipped name (``native:`` prefix dropped), a
    frozen :class:`~empirical.backbone.Backbone` in eval mode (:func:`empirical.backbone.load`)."""
    from ..backbone import load as load_backbone

    return load_backbone(_strip(name_or_path), device=device)


def from_model(model):
    """A :class:`~empirical.backbone.Backbone` already in memory, in eval mode (it is its
    own backbone); ``TypeError`` for anything else."""
    from ..backbone import Backbone

    if not isinstance(model, Backbone):
        raise TypeError(f"{type(model).__name__} is not an empirical.backbone.Backbone")
    return model.eval()


def _strip(spec) -> str:
    text = str(spec)
    return text[len(PREFIX) + 1:] if text.startswith(f"{PREFIX}:") else text


def from_spec(spec: str, *, trusted: bool = False) -> BackboneEntry:
    """The :class:`BackboneEntry` of a shipped name or checkpoint path (module docstring).

    The name is the shipped name, or the file's name without ``.pt``/``.pt.xz``."""
    from ..backbone import checkpoint_name, shipped_paths

    text = _strip(spec)
    obj = load(text)
    if Path(text).is_file():
        path, name = Path(text), checkpoint_name(text)
        source = str(path)
    else:
        path, name = Path(shipped_paths()[text]), text
        source = f"shipped backbone {name}"
    test = (getattr(obj, "metadata", {}) or {}).get("test", {})
    return BackboneEntry(name=name, backbone=obj, source=source,
                         sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                         seed=int(getattr(obj, "seed", -1)),
                         test_energy_mae_meV=test.get("energy_mae_meV"),
                         test_force_mae_meV_per_A=test.get("force_mae_meV_per_A"))


def available() -> List[str]:
    """None here: the shipped backbones are listed by :func:`empirical.backbone.shipped`
    under their plain names (which route to this adapter), and the survey takes them from
    there."""
    return []
