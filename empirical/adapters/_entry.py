"""The typed backbone entry every adapter returns, and :func:`resolve_backbones`, which
turns what a user names (shipped names, checkpoint paths, ``PREFIX:SPEC`` specs, protocol
objects) into entries through the adapter registry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

__all__ = ["BackboneEntry", "resolve_backbones", "INFO_KEYS"]

#: The keys of :meth:`BackboneEntry.info` every backbone has, in the order recorded.
INFO_KEYS = ("source", "sha256", "seed", "test_energy_mae_meV", "test_force_mae_meV_per_A")


@dataclass(frozen=True)
class BackboneEntry:
    """One backbone of a run: its name, the protocol object, and what results.json records
    of where it came from.

    Attributes
    ----------
    name : the backbone's name in results and reports.
    backbone : the protocol object (``None`` for an entry describing a backbone that ran
        elsewhere, e.g. on a sweep's worker).
    source : where it came from, relative to what a reader has: ``"shipped backbone
        NAME"``, a checkpoint path as the user gave it, or the framework, its version and
        the file (``"sevenn 0.13.0: sevenn/pretrained_potentials/..."``).
    sha256 : the checkpoint file's SHA-256 (``None`` for an object in memory).
    seed : the training seed (-1 when unknown).
    test_energy_mae_meV, test_force_mae_meV_per_A : held-out errors from training, when
        the checkpoint records them.
    extra : an adapter's own keys (``sevenn_layer``, ``parameters``, ...), in order.
    """

    name: str
    backbone: object = None
    source: str = ""
    sha256: Optional[str] = None
    seed: int = -1
    test_energy_mae_meV: Optional[float] = None
    test_force_mae_meV_per_A: Optional[float] = None
    extra: Dict[str, object] = field(default_factory=dict)

    def info(self) -> Dict:
        """What results.json records of the backbone's origin: :data:`INFO_KEYS`, then
        :attr:`extra` (plain values)."""
        return {"source": self.source, "sha256": self.sha256, "seed": self.seed,
                "test_energy_mae_meV": self.test_energy_mae_meV,
                "test_force_mae_meV_per_A": self.test_force_mae_meV_per_A, **self.extra}

    @classmethod
    def from_info(cls, name: str, info: Mapping, backbone: object = None) -> "BackboneEntry":
        """The entry whose :meth:`info` is ``info`` (the inverse of :meth:`info`)."""
        return cls(name=str(name), backbone=backbone, source=str(info.get("source", "")),
                   sha256=info.get("sha256"), seed=int(info.get("seed", -1)),
                   test_energy_mae_meV=info.get("test_energy_mae_meV"),
                   test_force_mae_meV_per_A=info.get("test_force_mae_meV_per_A"),
                   extra={k: v for k, v in info.items() if k not in INFO_KEYS})

    def renamed(self, name: str) -> "BackboneEntry":
        """The same entry under another name."""
        return dataclasses.replace(self, name=str(name))


def _object_entry(obj, index: int) -> BackboneEntry:
    """The entry of a protocol object given directly (named ``<class>_<index>``)."""
    origin = getattr(obj, "origin", None)   # adapters record where a model came from
    source = (str(origin) if origin else
              f"python object {type(obj).__module__}.{type(obj).__qualname__}")
    sha = getattr(obj, "sha256", None)
    return BackboneEntry(name=f"{type(obj).__name__}_{index}", backbone=obj, source=source,
                         sha256=sha if isinstance(sha, str) else None)


def _entry(item, index: int, trusted: bool) -> BackboneEntry:
    """One item of :func:`resolve_backbones` through the registry: ``PREFIX:SPEC`` through
    that adapter, a plain name or path through the ``native`` one, an object as it is."""
    from . import adapter, from_spec, is_spec

    if isinstance(item, str) and is_spec(item):
        return from_spec(item, trusted=trusted)
    if isinstance(item, (str, Path)):
        return adapter("native").from_spec(str(item), trusted=trusted)
    return _object_entry(item, index)


def _default_backbones() -> List[str]:
    from ..backbone import shipped

    names = [entry["name"] for entry in shipped(role="diagnostic")]
    if not names:
        raise ValueError("no shipped backbones found: give backbones explicitly")
    return names


def resolve_backbones(backbones=None, names: Optional[Sequence[str]] = None,
                      trust_checkpoints: bool = False) -> List[BackboneEntry]:
    """:class:`BackboneEntry` per backbone named by ``backbones``: shipped names, checkpoint
    paths, ``PREFIX:SPEC`` adapter specs (``native:``, ``nequip:``, ``sevenn:``, ``mace:``)
    or protocol objects (default: the shipped diagnostic backbones). ``names`` renames them.
    Third-party (pickled) checkpoints load only with ``trust_checkpoints``.

    Raises ``ValueError`` for a backbone that cannot be loaded or does not follow the
    protocol, for a count of ``names`` that differs, and for two backbones of one name."""
    from ..backbone import Backbone, check_protocol

    if backbones is None:
        backbones = _default_backbones()
    if isinstance(backbones, (str, Path)) or not isinstance(backbones, Sequence):
        backbones = [backbones]
    if len(backbones) == 0:
        raise ValueError("no backbones given")
    if names is not None and len(names) != len(backbones):
        raise ValueError(f"{len(names)} names for {len(backbones)} backbones")
    out: List[BackboneEntry] = []
    for i, item in enumerate(backbones):
        entry = _entry(item, i, trust_checkpoints)
        try:
            check_protocol(entry.backbone)
        except TypeError as exc:
            raise ValueError(f"backbone {i} cannot be diagnosed: {exc}") from None
        if names is not None:
            entry = entry.renamed(names[i])
        if isinstance(entry.backbone, Backbone):
            entry.backbone.eval()
        out.append(entry)
    seen = set()
    for entry in out:
        if entry.name in seen:
            raise ValueError(f"two backbones are named {entry.name!r}: give distinct names")
        seen.add(entry.name)
    return out
