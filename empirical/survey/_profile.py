"""The per-layer spectral profile (docs/method.md §2.9): the diagnostic at one probe degree
``d`` on the features of every interaction layer of a backbone.

``profile(backbones, d) -> ProfileResult``: for each backbone, each layer it names
(protocol ``layers`` / ``at_layer``; a backbone without them has one row, its own layer)
is diagnosed on its own, with the same plan (frames, split, rotations, signal) for every
layer, and one :class:`LayerProfile` row records rho(l) with intervals beside that layer's
predicted ceiling ``d * L_layer``. The layers share the model: ``at_layer`` reads another
layer of the same weights, nothing is copied or retrained.

Cost: one feature extraction per layer (a layer's features are read by its own forward
pass), so a profile of ``n`` layers costs about ``n`` diagnoses at one ``d`` without the k
sweep. The default of 1000 frames keeps a 4-layer SevenNet profile to minutes on a CPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from e3nn import o3

from .._result import RunResult
from ..backbone import supports
from ..data import Dataset
from ..data import load as load_dataset
from ..diagnostic import diagnose, resolve_backbones
from ..runtime import place, resolve_device, versions
from ..diagnostic import MAX_LMAX, validate_options
from ..diagnostic import THRESHOLDS

__all__ = ["LayerProfile", "ProfileResult", "profile", "backbone_layers", "PROFILE_SCHEMA"]

#: ``results.json["schema"]`` of a profile.
PROFILE_SCHEMA = "spectral-ceilings-profile/1"


@dataclass(frozen=True)
class LayerProfile:
    """One layer of one backbone at probe degree ``d`` (``rho`` keyed by ``l``)."""

    backbone: str
    layer: str
    index: int
    irreps_out: str
    L: int
    d: int
    predicted_ceiling: int
    measured_ceiling: Optional[int]
    agreement: Optional[bool]
    rho: Dict[int, Optional[float]]
    rho_ci: Dict[int, Tuple[Optional[float], Optional[float]]]
    equivariance_error: Dict[str, float]
    equivariant: Optional[bool]

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["rho"] = {str(l): v for l, v in sorted(self.rho.items())}
        out["rho_ci"] = {str(l): list(v) for l, v in sorted(self.rho_ci.items())}
        return out


class ProfileResult(RunResult):
    """``payload``: ``schema``, ``config``, ``backbones`` (name, source, sha256, layers)
    and ``rows`` (:class:`LayerProfile` dicts, backbone then layer order)."""

    @property
    def rows(self) -> List[Dict]:
        return self.payload["rows"]

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """``results.json``, ``report.md`` and ``profile.png`` as one set."""
        from ._report import write_profile_outputs
        return write_profile_outputs(self, out_dir, plots=plots, overwrite=overwrite)


def _pair(ci) -> Tuple[Optional[float], Optional[float]]:
    """A 95 % interval as ``(low, high)``; ``(None, None)`` where it is undefined."""
    return (None, None) if ci is None else (ci[0], ci[1])


def backbone_layers(obj) -> List[Tuple[str, object]]:
    """``[(layer name, backbone reading it)]`` in forward order: every layer of the
    protocol's ``layers`` (through ``at_layer``), or the object itself when it names none."""
    if not supports(obj, "layers"):
        return [(str(getattr(obj, "layer", None) or "features"), obj)]
    return [(str(name), obj.at_layer(i)) for i, name in enumerate(obj.layers)]


def _max_l(obj) -> int:
    return max((ir.l for _, ir in o3.Irreps(obj.irreps_out)), default=0)


def profile(backbones=None, dataset="aspirin", d: int = 2, lmax: Optional[int] = None,
            frames: Optional[int] = 1000, seed: int = 0, n_boot: int = 500,
            marked: Optional[Sequence[int]] = None, trust_checkpoints: bool = False,
            device=None, progress=None) -> ProfileResult:
    """Diagnose every interaction layer of each backbone at probe degree ``d``.

    Parameters
    ----------
    backbones : as for :func:`empirical.diagnose` (names, paths, adapter specs such as
        ``sevenn:7net-0``, protocol objects); default the four shipped backbones.
    d : probe degree.  lmax : highest target degree (default ``d * max L + 2``, at most
        :data:`~empirical.diagnostic._plan.MAX_LMAX`), the same for every layer.
    frames : seeded subset of frames (default 1000; ``None`` for all).
    Other options as for :func:`empirical.diagnose`.

    Raises ``ValueError`` for bad input before any layer is diagnosed.
    """
    start = time.perf_counter()
    validate_options([d], lmax if lmax is not None else 0, seed, n_boot, 0.2, 3, None,
                     "irrep", "ridge", None)
    dev = resolve_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    entries = resolve_backbones(backbones, trust_checkpoints=trust_checkpoints)
    place(entries, dev)
    layered = [(name, obj, info, backbone_layers(obj)) for name, obj, info in entries]
    top = max(_max_l(view) for *_, layers in layered for _, view in layers)
    if top < 1:
        raise ValueError("no layer of the backbones carries l > 0 features: nothing to probe")
    if lmax is None:
        lmax = min(MAX_LMAX, d * top + 2)
    if lmax > MAX_LMAX:
        raise ValueError(f"lmax {lmax} is above the largest supported {MAX_LMAX}")
    rows: List[LayerProfile] = []
    described = []
    total = sum(len(layers) for *_, layers in layered)
    done = 0
    for name, obj, info, layers in layered:
        described.append({"name": name, "source": info.get("source", ""),
                          "sha256": info.get("sha256"), "layers": [n for n, _ in layers]})
        for index, (layer, view) in enumerate(layers):
            done += 1
            if progress is not False:
                import sys
                print(f"[{done}/{total}] {name} {layer}", file=sys.stderr, flush=True)
            if _max_l(view) < 1:
                continue
            res = diagnose(backbones=[view], names=[f"{name}/{layer}"], dataset=data,
                           marked=marked, degrees=[d], lmax=lmax, seed=seed, n_boot=n_boot,
                           frames=frames, k_sweep=(), progress=False)
            s = res.summaries[d]
            rec = res.backbones[0]
            rows.append(LayerProfile(
                backbone=name, layer=layer, index=index, irreps_out=rec.irreps_out, L=rec.L,
                d=d, predicted_ceiling=s.ceiling, measured_ceiling=s.measured_ceiling,
                agreement=s.agreement, rho=dict(s.rho),
                rho_ci={l: _pair(v) for l, v in s.rho_ci.items()},
                equivariance_error=dict(rec.equivariance_error), equivariant=rec.equivariant))
    config = {"dataset": res.config["dataset"], "marked_atoms": res.config["marked_atoms"],
              "d": d, "lmax": lmax, "seed": seed, "n_boot": n_boot,
              "frames": frames, "n_test": res.config["n_test"],
              "device": str(dev) if dev is not None else None,
              "thresholds": dict(THRESHOLDS), "versions": versions(),
              "method": "each layer diagnosed on its own (empirical.diagnose, one d, no k "
                        "sweep) with the same plan; docs/method.md §2.9"}
    payload = {"schema": PROFILE_SCHEMA, "config": config, "backbones": described,
               "rows": [r.to_dict() for r in rows]}
    return ProfileResult(payload=payload, seconds=time.perf_counter() - start)
