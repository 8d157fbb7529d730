r"""Controls (docs/method.md §4): each must leave the ceiling where the theorem puts it.

Every control is one :func:`empirical.diagnose` measurement (same protocol on a seeded
subset of :data:`DEFAULT_FRAMES` = 2500 of the 5000 aspirin frames by default, so that all
of them, the 128-channel backbone's features included, run in under 10 minutes on a 2-core
CPU; the :class:`~empirical.diagnostic.FeatureSet` of a backbone is extracted once per
sample layout and handed to every control that probes it) and reports its
measured ceiling (the highest ``l`` with mean held-out rho at or above the recoverable
threshold, 0.5) beside the predicted one (``spanthm.ceiling``):

* ``capacity``: backbone channels x1, x2, x4 (``aspirin_L2_seed0``, ``aspirin_L2_c64_seed0``,
  ``aspirin_L2_c128_seed0``) at ``d = 2``; SPN width ``k = 16, 32, 64`` (per-irrep
  reduction filling ``k`` from the top degree down) at ``d = 2``, with enough rotations per
  configuration for two training samples per monomial.
* ``parameters``: a ``d = 3`` SPN of width 18 (1330 coefficients) against the widest
  ``d = 2`` SPN (width 63, 2080 coefficients): fewer parameters, higher ceiling.
* ``activation``: gate nonlinearity SiLU (``aspirin_L2_seed0``), tanh
  (``aspirin_L2_tanh_seed0``), GELU (``aspirin_L2_gelu_seed0``) at ``d = 2``.
* ``architecture``: ``aspirin_L1_seed0`` (d = 1, 2, 3: ceilings 1, 2, 3) and
  ``aspirin_L3_seed0`` (d = 1, 2: ceilings 3, 6), and a second family, e3nn's gate-points
  network (:class:`empirical.backbone.GatePointsBackbone`, random-initialized: it has no
  training loop here yet) at d = 1, 2.
* ``untrained``: a random-initialized L = 2 backbone of the aspirin class (d = 1, 2, 3).

Every control that probes d = 3 (L = 1, untrained) uses the rotations per configuration of
the d = 3 parameters control, so its automatic d = 3 SPN width is that control's (k = 18 at
L = 2) rather than the narrower one the frames alone allow (k = 9 on 2500 frames, where the
untrained backbone measured rho(6) = 0.22 and a ceiling of 5).

A control whose backbone is not shipped (``empirical backbones``) is listed with
``status: "missing"`` and null measurements, and the run's ``complete`` flag is false; the
README says how each is trained.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar, Dict, List, Optional, Sequence, Tuple, Union

from e3nn import o3

from .._result import RunResult
from ..backbone import (Backbone, BackboneConfig, GatePointsBackbone, dataset_statistics,
                        shipped)
from ..backbone import load as load_backbone
from ..data import load as load_dataset
from ..cache import model_key, open_cache
from ..diagnostic import (ROTATE_MODES, THRESHOLDS, DegreeSummary, diagnose, extract_features, make_plan,
                          n_monomials)
from ..runtime import SAMPLES_PER_COEFFICIENT, Progress, versions

__all__ = ["run_controls", "ControlsResult", "ControlsConfig", "ControlRow", "ControlRun",
           "PlannedControl", "CONTROL_BACKBONES", "KINDS"]

SCHEMA_VERSION = 1
#: Frames the controls use by default (a seeded subset; None in :func:`run_controls`: all).
DEFAULT_FRAMES = 2500
#: Shipped checkpoints the trained controls read (name -> what it varies).
CONTROL_BACKBONES = {
    "aspirin_L2_c64_seed0": "L = 2, 64 channels (x2)",
    "aspirin_L2_c128_seed0": "L = 2, 128 channels (x4)",
    "aspirin_L2_tanh_seed0": "L = 2, tanh gates",
    "aspirin_L2_gelu_seed0": "L = 2, GELU gates",
    "aspirin_L1_seed0": "L = 1",
    "aspirin_L3_seed0": "L = 3",
}
BASE = "aspirin_L2_seed0"
KINDS = ("capacity", "parameters", "activation", "architecture", "untrained")
#: Backbones built here rather than read from a checkpoint (always available).
BUILT = ("random", "gate-points")
MEASURED, MISSING = "measured", "missing"


def _fields(cls, m: Dict, names: Optional[Sequence[str]] = None) -> Dict:
    """The values of ``m`` for the fields of the record ``cls`` (or ``names``); a missing
    one raises ``KeyError`` (:meth:`ControlsResult.from_dict` names it)."""
    return {name: m[name] for name in (names or [f.name for f in fields(cls)])}


# ------------------------------------------------------------------------------ records

@dataclass(frozen=True)
class PlannedControl:
    """One control of the plan: what it varies and how it is probed. ``backbone`` is a
    checkpoint name or one of :data:`BUILT`; ``k`` the SPN width (None: automatic);
    ``rotations`` per configuration (None: one)."""

    name: str
    kind: str
    backbone: str
    degrees: Tuple[int, ...]
    k: Optional[int] = None
    rotations: Optional[int] = None
    available: bool = True


@dataclass(frozen=True)
class ControlRow:
    """One control at one probe degree ``d``: the measured ceiling beside the predicted
    one, projected from the diagnostic's :class:`~empirical.diagnostic.DegreeSummary`
    (``rho`` keyed by ``l``). A control whose backbone is missing has only its name, kind,
    backbone and ``d``; its other fields are None."""

    name: str
    kind: str
    backbone: str
    L: Optional[int]
    d: int
    k: Optional[int] = None
    spn_coefficients: Optional[int] = None
    measured_ceiling: Optional[int] = None
    predicted_ceiling: Optional[int] = None
    agrees: Optional[bool] = None
    all_cells_agree: Optional[bool] = None
    rho: Dict[int, Optional[float]] = field(default_factory=dict)
    rho_boundary: Optional[float] = None
    rho_above: Optional[float] = None
    status: str = MEASURED
    #: the diagnostic's degree status (docs/method.md §2.8: agrees, violates,
    #: boundary_not_reached, undecided, untested); ``agrees`` above is the point-estimate
    #: ceiling test the controls pass on
    verdict: Optional[str] = None

    #: The keys a missing control's ``results.json`` row holds.
    MISSING_KEYS: ClassVar[Tuple[str, ...]] = ("name", "kind", "backbone", "L", "d",
                                              "measured_ceiling", "predicted_ceiling",
                                              "agrees", "status")

    @classmethod
    def missing(cls, p: PlannedControl, d: int) -> "ControlRow":
        return cls(name=p.name, kind=p.kind, backbone=p.backbone, L=None, d=d,
                   status=MISSING)

    @classmethod
    def measured(cls, p: PlannedControl, L: int, s: DegreeSummary, k: int,
                 lmax: int) -> "ControlRow":
        """The row of a measured control (backbone degree ``L``) from its summary at
        ``d = s.d`` (``k``: the SPN width it used; ``rho_above`` None when
        ``dL + 1 > lmax``)."""
        return cls(name=p.name, kind=p.kind, backbone=p.backbone, L=L, d=s.d, k=k,
                   spn_coefficients=n_monomials(k, s.d), measured_ceiling=s.measured_ceiling,
                   predicted_ceiling=s.ceiling,
                   agrees=bool(s.measured_ceiling == s.ceiling),
                   all_cells_agree=s.agreement, rho=dict(sorted(s.rho.items())),
                   rho_boundary=s.rho_boundary,
                   rho_above=s.rho_above if s.ceiling + 1 <= lmax else None,
                   verdict=s.status)

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["rho"] = {str(l): r for l, r in sorted(self.rho.items())}
        if self.status == MISSING:
            out = {k: out[k] for k in self.MISSING_KEYS}
        elif self.verdict is None:      # a row read from a file written before issue 23
            out.pop("verdict")
        return out

    @classmethod
    def from_dict(cls, m: Dict) -> "ControlRow":
        if m["status"] == MISSING:
            return cls(**_fields(cls, m, cls.MISSING_KEYS))
        values = _fields(cls, m, [f.name for f in fields(cls) if f.name != "verdict"])
        values["rho"] = {int(l): r for l, r in values["rho"].items()}
        return cls(**values, verdict=m.get("verdict"))    # absent before issue 23


@dataclass(frozen=True)
class ControlRun:
    """The diagnose configuration and warnings of one measured control."""

    control: str
    config: Dict
    warnings: List[str]



@dataclass(frozen=True)
class ControlsConfig:
    """The configuration of a controls run (``config`` of ``results.json``)."""

    dataset: Optional[str]
    frames: int
    n_boot: int
    seed: int
    lmax: int
    thresholds: Dict[str, float]
    versions: Dict[str, str]
    control_backbones: Dict[str, str]



@dataclass(kw_only=True)
class ControlsResult(RunResult):
    """What :func:`run_controls` measured, as typed records; :meth:`to_dict` is exactly
    ``results.json`` (``complete`` and ``agreement`` follow from the rows) and
    :meth:`from_dict` reads one back."""

    config: ControlsConfig
    controls: List[ControlRow]
    runs: List[ControlRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every planned control was measured (none lacks its backbone)."""
        return all(c.status == MEASURED for c in self.controls)

    @property
    def agreement(self) -> bool:
        """Whether every measured control leaves the ceiling where the theorem puts it."""
        return all(c.agrees for c in self.controls if c.status == MEASURED)

    def to_dict(self) -> Dict:
        return {"schema_version": SCHEMA_VERSION, "config": asdict(self.config),
                "controls": [c.to_dict() for c in self.controls],
                "complete": self.complete, "agreement": self.agreement,
                "runs": [asdict(r) for r in self.runs]}

    @classmethod
    def from_dict(cls, payload: Dict, seconds: float = 0.0) -> "ControlsResult":
        """The records of a controls ``results.json`` dictionary (unknown keys are ignored);
        ``ValueError`` naming the first missing key, or when its ``complete`` or
        ``agreement`` contradicts its rows."""
        try:
            out = cls(config=ControlsConfig(**_fields(ControlsConfig, payload["config"])),
                      controls=[ControlRow.from_dict(c) for c in payload["controls"]],
                      runs=[ControlRun(**_fields(ControlRun, r)) for r in payload["runs"]],
                      seconds=seconds)
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]}") from None
        except (TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not the results of empirical controls ({exc})") from None
        for name in ("complete", "agreement"):
            if name in payload and payload[name] != getattr(out, name):
                raise ValueError(f"{name}: {payload[name]!r}, but the controls give "
                                 f"{getattr(out, name)!r}")
        return out

    def save(self, out_dir: Union[str, Path], overwrite: bool = False) -> List[Path]:
        """Write the outputs into ``out_dir`` as one set (it must not hold files unless
        ``overwrite``)."""
        from ._report import write_controls_outputs
        return write_controls_outputs(self, Path(out_dir), overwrite=overwrite)


# ------------------------------------------------------------------------------ the plan

def _rotations(k: int, d: int, n_train: int) -> int:
    """Rotations per configuration for :data:`~empirical.runtime.SAMPLES_PER_COEFFICIENT`
    training samples per monomial of a width-``k``, degree-``d`` SPN."""
    return max(1, math.ceil(SAMPLES_PER_COEFFICIENT * n_monomials(k, d) / n_train))


def _plan(available: set, frames: int, spn_widths=(16, 32, 64),
          parameter_widths=(18, 63)) -> List[PlannedControl]:
    """The controls, in report order (see the module docstring)."""
    n_train = int(round(0.8 * frames))
    k3, k2 = parameter_widths
    plan = [PlannedControl(f"channels x{mult}", "capacity", name, (2,))
            for name, mult in ((BASE, 1), ("aspirin_L2_c64_seed0", 2),
                               ("aspirin_L2_c128_seed0", 4))]
    plan += [PlannedControl(f"SPN width k={k}", "capacity", BASE, (2,), k,
                            _rotations(k, 2, n_train)) for k in spn_widths]
    plan += [PlannedControl(f"d=3 SPN, width {k3}", "parameters", BASE, (3,), k3,
                            _rotations(k3, 3, n_train)),
             PlannedControl(f"d=2 SPN, width {k2}", "parameters", BASE, (2,), k2,
                            _rotations(k2, 2, n_train))]
    plan += [PlannedControl(f"activation {act}", "activation", name, (2,))
             for name, act in ((BASE, "silu"), ("aspirin_L2_tanh_seed0", "tanh"),
                               ("aspirin_L2_gelu_seed0", "gelu"))]
    plan += [PlannedControl("L = 1", "architecture", "aspirin_L1_seed0", (1, 2, 3)),
             PlannedControl("L = 3", "architecture", "aspirin_L3_seed0", (1, 2)),
             PlannedControl("e3nn gate-points L = 2 (random init)", "architecture",
                            "gate-points", (1, 2)),
             PlannedControl("random init L = 2", "untrained", "random", (1, 2, 3))]
    # a control probed at d = 3 gets the d = 3 parameters control's sample budget, so that
    # its d = 3 SPN is as wide as the trained one's (k = 18 for L = 2): the untrained
    # control's weaker recovery is then the backbone's, not a narrower probe's
    return [replace(p, available=p.backbone in BUILT or p.backbone in available,
                    rotations=_rotations(k3, 3, n_train)
                    if 3 in p.degrees and p.rotations is None else p.rotations)
            for p in plan]


# ------------------------------------------------------------------------------ the run

def _check_options(kinds: Sequence[str], frames: Optional[int],
                   parameter_widths: Tuple[int, int]) -> None:
    """``ValueError`` for an unknown kind, too few frames, or a d = 3 SPN that does not
    have fewer coefficients than the d = 2 one."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"control kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if frames is not None and frames < 20:
        raise ValueError(f"controls need at least 20 frames, got {frames}")
    k3, k2 = parameter_widths
    if n_monomials(k3, 3) >= n_monomials(k2, 2):
        raise ValueError(f"the d = 3 SPN (width {k3}, {n_monomials(k3, 3)} coefficients) must "
                         f"have fewer coefficients than the d = 2 one (width {k2}, "
                         f"{n_monomials(k2, 2)})")


def _dataset(dataset, frames: Optional[int]):
    """The dataset and the frame count (None: every frame); never cut silently: a request
    for more frames than the data have is refused."""
    data = load_dataset(dataset) if not hasattr(dataset, "positions") else dataset
    if frames is None:
        return data, data.n_frames
    if frames > data.n_frames:
        raise ValueError(f"frames = {frames} is more than the {data.n_frames} frames of "
                         f"{dataset if isinstance(dataset, (str, Path)) else 'the dataset'}; "
                         f"give at most {data.n_frames}")
    return data, frames


def _build(backbone: str, data, paths: Dict[str, str], seed: int):
    """The protocol object of a control backbone: e3nn's gate-points network or a
    random-initialized L = 2 backbone (both seeded), else the checkpoint in ``paths``."""
    species = sorted(set(int(z) for z in data.numbers))
    if backbone == "gate-points":
        return GatePointsBackbone(L=2, species=species, seed=seed)
    if backbone == "random":
        stats = dataset_statistics(data, range(min(1000, data.n_frames)), 5.0)
        config = BackboneConfig(L=2, channels=32, layers=3, species=species, **stats)
        return Backbone(config, seed=seed).eval()
    return load_backbone(paths[backbone]).eval()


@dataclass
class _Run:
    """What one controls run shares between its controls: the options, the data, the
    backbones built so far and one FeatureSet per (backbone, rotations) sample layout."""

    data: object
    frames: int
    n_boot: int
    seed: int
    lmax: int
    paths: Dict[str, str]
    objects: Dict[str, object] = field(default_factory=dict, repr=False)
    features: Dict[tuple, object] = field(default_factory=dict, repr=False)
    cache: object = None
    rotate: str = "auto"

    def measure(self, p: PlannedControl) -> Tuple[List[ControlRow], ControlRun]:
        """One diagnose run of control ``p``: its rows (one per probe degree) and run."""
        if p.backbone not in self.objects:
            self.objects[p.backbone] = _build(p.backbone, self.data, self.paths, self.seed)
        obj = self.objects[p.backbone]
        rotations = p.rotations or 1
        key = (p.backbone, rotations)
        if key not in self.features:
            layout = make_plan(self.data, sorted({ir.l for _, ir in o3.Irreps(obj.irreps_out)}),
                               degrees=list(p.degrees), lmax=self.lmax, seed=self.seed,
                               frames=self.frames, n_boot=self.n_boot, k_sweep=(),
                               rotations_per_config=rotations)
            self.features[key] = extract_features(
                obj, self.data, layout, 0, cache=self.cache, rotate=self.rotate,
                model=model_key(obj) if self.cache is not None else None)
        res = diagnose(backbones=[obj], names=[p.backbone], dataset=self.data,
                       degrees=list(p.degrees), lmax=self.lmax, seed=self.seed, k=p.k,
                       n_boot=self.n_boot, frames=self.frames, k_sweep=(),
                       rotations_per_config=rotations, features=[self.features[key]],
                       progress=False, cache=self.cache if self.cache is not None else False,
                       rotate=self.rotate)
        rows = [ControlRow.measured(p, res.L, res.summaries[d], int(res.config["k"][str(d)]),
                                    self.lmax) for d in p.degrees]
        return rows, ControlRun(control=p.name, config=res.config, warnings=res.warnings)


def run_controls(dataset="aspirin", frames: Optional[int] = DEFAULT_FRAMES, n_boot: int = 500,
                 seed: int = 0,
                 lmax: int = 7, kinds=KINDS, spn_widths=(16, 32, 64), parameter_widths=(18, 63),
                 backbone_paths: Optional[Dict[str, str]] = None,
                 progress=None, cache=False, rotate: str = "auto") -> ControlsResult:
    """Run the controls of ``kinds`` (see the module docstring) on ``frames`` frames (a
    seeded subset; None: every frame). ``parameter_widths``:
    (width of the d = 3 SPN, width of the widest d = 2 SPN); the d = 3 one must have fewer
    coefficients. ``backbone_paths`` maps control backbone names (``aspirin_L2_seed0``,
    :data:`CONTROL_BACKBONES`) to checkpoint files that replace the shipped ones (the
    ``full`` reproduction retrains them). ``cache``, ``rotate``: as for
    :func:`empirical.diagnose` (docs/method.md §2.12, §2.13). Raises ``ValueError`` for bad
    options before any work."""
    _check_options(kinds, frames, parameter_widths)
    if rotate not in ROTATE_MODES:
        raise ValueError(f"rotate must be 'auto' or 'model', got {rotate!r}")
    start = time.perf_counter()
    data, frames = _dataset(dataset, frames)
    paths = {b["name"]: b["path"] for b in shipped()}
    paths.update(backbone_paths or {})
    plan = [p for p in _plan(set(paths), frames, spn_widths, parameter_widths)
            if p.kind in kinds]
    run = _Run(data=data, frames=frames, n_boot=n_boot, seed=seed, lmax=lmax, paths=paths,
               cache=open_cache(cache), rotate=rotate)
    bar = Progress(sum(len(p.degrees) for p in plan), enabled=progress)
    controls: List[ControlRow] = []
    runs: List[ControlRun] = []
    for p in plan:
        bar.set_label(p.name)
        if p.available:
            rows, record = run.measure(p)
            runs.append(record)
        else:
            rows = [ControlRow.missing(p, d) for d in p.degrees]
        for row in rows:
            controls.append(row)
            bar.advance(1)
    bar.close()
    config = ControlsConfig(dataset=data.metadata.get("source"), frames=frames, n_boot=n_boot,
                            seed=seed, lmax=lmax, thresholds=dict(THRESHOLDS),
                            versions=versions(), control_backbones=CONTROL_BACKBONES)
    return ControlsResult(config=config, controls=controls, runs=runs,
                          seconds=time.perf_counter() - start)
