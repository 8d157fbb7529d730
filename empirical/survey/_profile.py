"""The per-layer spectral profile (docs/method.md §2.9): the diagnostic at one probe degree
``d`` on the features of every interaction layer of a backbone.

``profile(backbones, d) -> ProfileResult``: for each backbone, each layer it names
(protocol ``layers`` / ``at_layer``; a backbone without them has one row, its own layer)
is diagnosed on its own, with the same plan (frames, split, rotations, signal) for every
layer of a backbone, and one :class:`LayerProfile` row records rho(l) with intervals beside
that layer's predicted ceiling ``d * L_layer``. The layers share the model: ``at_layer`` reads another
layer of the same weights, nothing is copied or retrained.

Cost: one feature extraction per layer (a layer's features are read by its own forward
pass), so a profile of ``n`` layers costs about ``n`` diagnoses at one ``d`` without the k
sweep. The default of 1000 frames keeps a 4-layer SevenNet profile to minutes on a CPU.

Draws: each backbone's plan seed is drawn from the run seed and its name
(:func:`~._draws.model_seed`), so two backbones never share rotations and adding one
changes no other's rows; ``paired=True`` (CLI ``--paired``) gives every backbone the run
seed itself (shared draws, for contrasts between backbones).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .._result import TypedResult
from ..adapters import resolve_backbones
from ..backbone import supports
from ..data import Dataset
from ..data import load as load_dataset
from ..diagnostic import DegreeHeadline, DegreeSummary, diagnose
from ..diagnostic.statistics import Interval
from ..cache import open_cache
from ..diagnostic import ROTATE_MODES
from ..runtime import max_l, place, resolve_device, versions
from ..diagnostic import MAX_LMAX, validate_options
from ..diagnostic import THRESHOLDS
from ._draws import check_paired, draws_of, model_seed

__all__ = ["LayerProfile", "ProfiledBackbone", "ProfileResult", "profile", "backbone_layers",
           "PROFILE_SCHEMA"]

#: ``results.json["schema"]`` of a profile.
PROFILE_SCHEMA = "spectral-ceilings-profile/2"
#: Read too: version 1 (before interval verdicts and per-model draws).
PROFILE_SCHEMA_READS = ("spectral-ceilings-profile/1",)


def _interval(ci) -> Interval:
    """A summary's interval as an :class:`Interval` (``None`` bounds where undefined)."""
    if isinstance(ci, Interval):
        return ci
    low, high = ci if ci is not None else (None, None)
    return Interval(low, high)


@dataclass(frozen=True)
class LayerProfile:
    """One layer of one backbone at probe degree ``d``: the headline of ``d`` (predicted
    ceiling ``d * L_layer``, measured ceiling, agreement) and rho with its 95 % interval
    at every target degree ``l`` (keyed by ``l``)."""

    backbone: str
    layer: str
    index: int
    irreps_out: str
    headline: DegreeHeadline
    rho: Dict[int, Optional[float]]
    rho_ci: Dict[int, Interval]
    equivariance_error: Dict[str, float]
    equivariant: Optional[bool]

    #: The keys of a row in ``results.json``, in order.
    KEYS = ("backbone", "layer", "index", "irreps_out", "L", "d", "predicted_ceiling",
            "measured_ceiling", "agreement", "status", "rho", "rho_ci", "equivariance_error",
            "equivariant")
    _OWN = ("backbone", "layer", "index", "irreps_out", "equivariance_error", "equivariant")

    @classmethod
    def of(cls, backbone: str, layer: str, index: int, irreps_out: str,
           summary: DegreeSummary, equivariance_error: Dict[str, float],
           equivariant: Optional[bool]) -> "LayerProfile":
        """The row of one layer's diagnosis at ``summary.d``."""
        return cls(backbone=backbone, layer=layer, index=index, irreps_out=irreps_out,
                   headline=DegreeHeadline.from_summary(summary), rho=dict(summary.rho),
                   rho_ci={l: _interval(v) for l, v in summary.rho_ci.items()},
                   equivariance_error=dict(equivariance_error), equivariant=equivariant)

    def to_dict(self) -> Dict:
        values = {**self.headline.to_dict(), **{k: getattr(self, k) for k in self._OWN}}
        values["rho"] = {str(l): v for l, v in sorted(self.rho.items())}
        values["rho_ci"] = {str(l): v.to_list() for l, v in sorted(self.rho_ci.items())}
        return {k: values[k] for k in self.KEYS}

    @classmethod
    def from_dict(cls, row: Dict) -> "LayerProfile":
        return cls(headline=DegreeHeadline.from_dict(row),
                   rho={int(l): v for l, v in row["rho"].items()},
                   rho_ci={int(l): _interval(v) for l, v in row["rho_ci"].items()},
                   **{k: row[k] for k in cls._OWN})


@dataclass(frozen=True)
class ProfiledBackbone:
    """A profiled backbone: its name, where it came from, its layers in forward order."""

    name: str
    source: str
    sha256: Optional[str]
    layers: Tuple[str, ...]

    def to_dict(self) -> Dict:
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, b: Dict) -> "ProfiledBackbone":
        return cls(name=b["name"], source=b["source"], sha256=b.get("sha256"),
                   layers=tuple(b["layers"]))


@dataclass
class ProfileResult(TypedResult):
    """What :func:`profile` measured.

    Attributes
    ----------
    config : dict
        JSON-ready: ``dataset``, ``marked_atoms``, ``d``, ``lmax``, ``seed``, ``draws``
        (``"independent"`` or ``"paired"``), ``model_seeds`` (backbone name -> the plan
        seed of its layers' diagnoses), ``n_boot``, ``capacity`` (the widening rule, as
        diagnose's ``config.capacity``), ``frames``, ``n_test``, ``device``,
        ``thresholds``, ``versions``, ``method`` (docs/results_schema.md).
    backbones : list of ProfiledBackbone
    rows : list of LayerProfile
        Backbone then layer order (a layer without ``l > 0`` features has none).
    seconds : float
        Wall time, kept out of ``results.json``.
    """

    config: Dict
    backbones: List[ProfiledBackbone]
    rows: List[LayerProfile]
    seconds: float = field(default=0.0, compare=False)

    SCHEMA = PROFILE_SCHEMA
    READS = PROFILE_SCHEMA_READS
    COMMAND = "profile"

    def to_dict(self) -> Dict:
        """``results.json``: ``schema``, ``config``, ``backbones``, ``rows``."""
        return {"schema": PROFILE_SCHEMA, "config": copy.deepcopy(self.config),
                "backbones": [b.to_dict() for b in self.backbones],
                "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def _from_payload(cls, payload: Dict) -> "ProfileResult":
        return cls(config=payload["config"],
                   backbones=[ProfiledBackbone.from_dict(b) for b in payload["backbones"]],
                   rows=[LayerProfile.from_dict(r) for r in payload["rows"]])

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """``results.json``, ``report.md`` and ``profile.png`` as one set."""
        from ._report import write_profile_outputs
        return write_profile_outputs(self, out_dir, plots=plots, overwrite=overwrite)


def backbone_layers(obj) -> List[Tuple[str, object]]:
    """``[(layer name, backbone reading it)]`` in forward order: every layer of the
    protocol's ``layers`` (through ``at_layer``), or the object itself when it names none."""
    if not supports(obj, "layers"):
        return [(str(getattr(obj, "layer", None) or "features"), obj)]
    return [(str(name), obj.at_layer(i)) for i, name in enumerate(obj.layers)]


def profile(backbones=None, dataset="aspirin", d: int = 2, lmax: Optional[int] = None,
            frames: Optional[int] = 1000, seed: int = 0, n_boot: int = 500,
            marked: Optional[Sequence[int]] = None, trust_checkpoints: bool = False,
            device=None, progress=None, paired: bool = False,
            capacity: str = "auto", cache=False, rotate: str = "auto") -> ProfileResult:
    """Diagnose every interaction layer of each backbone at probe degree ``d``.

    Parameters
    ----------
    backbones : as for :func:`empirical.diagnose` (names, paths, adapter specs such as
        ``sevenn:7net-0``, protocol objects); default the four shipped backbones.
    d : probe degree.  lmax : highest target degree (default ``d * max L + 2``, at most
        :data:`~empirical.diagnostic._plan.MAX_LMAX`), the same for every layer.
    frames : seeded subset of frames (default 1000; ``None`` for all).
    paired : False (default): each backbone's plan seed is :func:`~._draws.model_seed` of
        ``seed`` and its name; True: every backbone uses ``seed`` (shared draws).
    Other options as for :func:`empirical.diagnose`.
    cache, rotate : as for :func:`empirical.diagnose` (one cache serves every layer;
    ``config.feature_cache`` counts what the run reused and wrote).

    Raises ``ValueError`` for bad input before any layer is diagnosed.
    """
    start = time.perf_counter()
    validate_options([d], lmax if lmax is not None else 0, seed, n_boot, 0.2, 3, None,
                     "irrep", "ridge", None, capacity=capacity)
    check_paired(paired)
    if rotate not in ROTATE_MODES:
        raise ValueError(f"rotate must be 'auto' or 'model', got {rotate!r}")
    dev = resolve_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    entries = resolve_backbones(backbones, trust_checkpoints=trust_checkpoints)
    place(entries, dev)
    store = open_cache(cache)
    layered = [(e.name, e.backbone, e.info(), backbone_layers(e.backbone)) for e in entries]
    top = max(max_l(view.irreps_out) for *_, layers in layered for _, view in layers)
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
    seeds = {name: model_seed(seed, name, paired) for name, *_ in layered}
    for name, obj, info, layers in layered:
        described.append(ProfiledBackbone(name, info.get("source", ""), info.get("sha256"),
                                          tuple(n for n, _ in layers)))
        for index, (layer, view) in enumerate(layers):
            done += 1
            if progress is not False:
                import sys
                print(f"[{done}/{total}] {name} {layer}", file=sys.stderr, flush=True)
            if max_l(view.irreps_out) < 1:
                continue
            res = diagnose(backbones=[view], names=[f"{name}/{layer}"], dataset=data,
                           marked=marked, degrees=[d], lmax=lmax, seed=seeds[name],
                           n_boot=n_boot, frames=frames, k_sweep=(), progress=False,
                           capacity=capacity, cache=store if store is not None else False,
                           rotate=rotate)
            rec = res.backbones[0]
            rows.append(LayerProfile.of(name, layer, index, rec.irreps_out, res.summaries[d],
                                        rec.equivariance_error, rec.equivariant))
    config = {"dataset": res.config["dataset"], "marked_atoms": res.config["marked_atoms"],
              "d": d, "lmax": lmax, "seed": seed, "draws": draws_of(paired),
              "model_seeds": seeds, "n_boot": n_boot, "capacity": res.config["capacity"],
              "frames": frames, "n_test": res.config["n_test"],
              "device": str(dev) if dev is not None else None,
              "thresholds": dict(THRESHOLDS), "versions": versions(), "rotate": rotate,
              "feature_cache": store.record() if store is not None else {"used": False},
              "method": "each layer diagnosed on its own (empirical.diagnose, one d, no k "
                        "sweep) with its backbone's plan; docs/method.md §2.9"}
    return ProfileResult(config=config, backbones=described, rows=rows,
                         seconds=time.perf_counter() - start)
