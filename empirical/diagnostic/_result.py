"""Typed records of a diagnostic run and the ``results.json`` schema (docs/method.md §5).

The pipeline hands these records from stage to stage; they become JSON only at the file
boundary (:meth:`DiagnoseResult.to_dict`) and are rebuilt from a file by
:meth:`DiagnoseResult.from_dict`. The report, the controls, the calibration comparison and
:mod:`empirical.testing` read the records, never the raw dictionary.

:data:`SCHEMA` names every key of ``results.json`` once, with its type and unit;
``docs/results_schema.md`` is generated from it (:func:`schema_markdown`, checked by a
test).

Schema versions
---------------
* 1: first version.
* 2: ``summary[d].cliff_ratio_ci`` is a Fieller-type confidence set (an object of kind
  ``interval``, ``two_rays``, ``ray`` or ``unbounded``, see
  :class:`~empirical.diagnostic.statistics.RatioConfidenceSet`) instead of a percentile
  ``[low, high]`` list, which was invalid when the denominator's interval contained 0;
  ``config.eps_definition`` and ``config.interval_cliff_ratio`` added; every backbone
  record gains ``dtype`` and ``equivariant``; ``summary[d].agreement`` is ``null`` when
  the ceiling is untested (``lmax <= dL``). Every other key is unchanged.
* 3: verdicts from intervals, in two parts (docs/method.md §2.8): every cell gains
  ``status`` (``recovered``, ``not_recovered``, ``blind``, ``exceeds`` or ``undecided``,
  from its 95 % interval; ``measured`` stays, the point-estimate label) and every
  ``summary[d]`` gains ``status`` (``agrees``, ``violates``, ``boundary_not_reached``,
  ``undecided`` or ``untested``); ``summary[d].agreement`` is now true only for
  ``agrees`` (null for ``untested``, false otherwise). Files of versions 1 and 2 are read
  with both statuses derived from their intervals. Every ``summary[d]`` gains
  ``capacity`` (the probe widths tried at the boundary, docs/method.md §2.6; empty in
  older files) and ``refit_spread`` (null in older files); ``config.capacity`` records
  the widening rule.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .._result import RunResult
from ._verdict import RECOVERABLE, UNTESTED, cell_status, degree_status
from .statistics import Interval

__all__ = ["SCHEMA_VERSION", "SCHEMA", "ProbeRecord", "Cell", "DegreeSummary",
           "BackboneRecord", "CapacityPoint", "Prediction", "DiagnoseResult", "schema_markdown",
           "DegreeHeadline", "CapacityStep", "RefitSpread", "reported_step", "probe_label"]

SCHEMA_VERSION = 4

#: An interval of a record: ``None`` where the quantity has none (``l = 0``, a degree not
#: measured), an :class:`~empirical.diagnostic.statistics.Interval` (``None`` bounds where
#: undefined) otherwise; ``[low, high]`` or ``null`` in ``results.json``.
Interval2 = Optional[Interval]


def _listed(ci: Interval2) -> Optional[list]:
    """An interval in its JSON form (``[low, high]`` or ``None``)."""
    return None if ci is None else Interval.from_list(ci).to_list()


@dataclass(frozen=True)
class Prediction:
    """spanthm's prediction for one probe degree: the ceiling ``dL`` and the recoverable
    target degrees ``<= lmax``."""

    d: int
    ceiling: int
    recoverable: Tuple[int, ...]

    def label(self, l: int) -> str:
        return "recoverable" if l in self.recoverable else "blind"

    def to_dict(self) -> Dict:
        return {"ceiling": int(self.ceiling), "recoverable": [int(x) for x in self.recoverable]}


@dataclass(frozen=True)
class ProbeRecord:
    """One backbone's held-out numbers for one ``(d, l)`` (``None`` where undefined)."""

    backbone: str
    d: int
    l: int
    rho: Optional[float]
    r2_inj: Optional[float]
    gain: Optional[float]

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One ``(d, l)`` cell pooled over backbones, beside spanthm's prediction."""

    d: int
    l: int
    predicted: str
    rho: Optional[float]
    rho_ci: Interval2
    r2_inj: Optional[float]
    measured: str
    agrees: Optional[bool]
    #: the status read from ``rho_ci`` (:func:`~empirical.diagnostic.cell_status`); derived
    #: from the interval and the prediction when not given (a schema 1 or 2 file)
    status: Optional[str] = None

    def __post_init__(self):
        if self.status is None:
            dl = self.l if self.predicted == RECOVERABLE else self.l - 1
            object.__setattr__(self, "status", cell_status(self.l, dl, self.rho_ci))

    def to_dict(self) -> Dict:
        return {**asdict(self), "rho_ci": _listed(self.rho_ci)}

    @classmethod
    def from_dict(cls, c: Dict) -> "Cell":
        return cls(**{**c, "rho_ci": Interval.from_list(c["rho_ci"])})


@dataclass(frozen=True)
class CapacityPoint:
    """One capacity-sweep point estimate (one backbone, width, ``d`` and ``l``)."""

    backbone: str
    channels_per_degree: int
    k: int
    monomials: int
    d: int
    l: int
    rho: Optional[float]

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass(frozen=True)
class CapacityStep:
    """One probe width tried at the boundary ``l = dL`` of a degree (``capacity="auto"``):
    width ``k`` (effective), rotations per configuration, solver, the pooled rho(dL), its
    95 % interval and its cell status."""

    k: int
    rotations_per_config: int
    solver: str
    rho: Optional[float]
    rho_ci: Interval2
    status: str
    #: per backbone, how a widened step's features were obtained (method, model runs,
    #: derived samples, the per-run check; docs/method.md §2.13); None for the run's own
    features: Optional[List[Optional[Dict]]] = None

    def to_dict(self) -> Dict:
        out = {**asdict(self), "rho_ci": _listed(self.rho_ci)}
        if self.features is None:
            out.pop("features")
        return out

    @classmethod
    def from_dict(cls, c: Dict) -> "CapacityStep":
        return cls(**{**c, "rho_ci": Interval.from_list(c["rho_ci"])})


def reported_step(capacity: Sequence[CapacityStep]) -> Optional[CapacityStep]:
    """The step of a capacity curve whose numbers a degree's summary reports
    (docs/method.md §2.6): the trained SPN where it is last and recovered the boundary,
    else the widest ridge step (``None`` for an empty curve)."""
    if not capacity:
        return None
    if capacity[-1].solver == "trained" and capacity[-1].status == "recovered":
        return capacity[-1]
    ridge = [c for c in capacity if c.solver != "trained"]
    return ridge[-1] if ridge else capacity[-1]


def probe_label(capacity: Sequence[CapacityStep]) -> str:
    """A table cell naming the probe behind a degree's numbers: ``"k x R"`` (width, rotations
    per configuration), ``", trained"`` for the trained SPN, ``" (widened)"`` when the
    capacity loop went past the run's width; ``"-"`` for no boundary measured."""
    step = reported_step(capacity)
    if step is None:
        return "-"
    return (f"{step.k} x {step.rotations_per_config}"
            + (", trained" if step.solver == "trained" else "")
            + (" (widened)" if len(capacity) > 1 else ""))


@dataclass(frozen=True)
class RefitSpread:
    """rho(dL) pooled over backbones, refitted under further splits of the configurations
    and cross-validation folds (the features and the width of the summary reused): ``rho``
    lists the run's own fit first, then one per further seed; ``spread`` is max - min and
    ``sd`` the sample standard deviation of the defined values (``None`` below two)."""

    k: int
    rotations_per_config: int
    seeds: int
    rho: List[Optional[float]]
    spread: Optional[float]
    sd: Optional[float]

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass(frozen=True)
class DegreeSummary:
    """Everything pooled for one probe degree ``d``; dictionaries are keyed by ``l``."""

    d: int
    ceiling: int
    measured_ceiling: Optional[int]
    rho: Dict[int, Optional[float]]
    rho_ci: Dict[int, Interval2]
    r2_inj: Dict[int, Optional[float]]
    r2_inj_ci: Dict[int, Interval2]
    gain: Dict[int, Optional[float]]
    gain_ci: Dict[int, Interval2]
    rho_boundary: Optional[float]
    rho_above: Optional[float]
    cliff_ratio: Optional[float]
    cliff_ratio_ci: Optional[Dict]
    delta_contrast: Optional[float]
    delta_contrast_ci: Interval2
    agreement: Optional[bool]      # None: the ceiling is untested (lmax <= dL)
    #: :func:`~empirical.diagnostic.degree_status`; derived from ``rho_ci`` when not given
    #: (a schema 1 or 2 file)
    status: Optional[str] = None
    #: the probe widths tried at the boundary ``l = dL`` (``capacity="auto"``), narrowest
    #: first; the summary's numbers are those of the widest (docs/method.md §2.6)
    capacity: List["CapacityStep"] = field(default_factory=list)
    #: rho(dL) under further splits and folds (features reused); ``None`` when not measured
    refit_spread: Optional["RefitSpread"] = None

    def __post_init__(self):
        if self.status is None:
            cells = {l: cell_status(l, self.ceiling, ci) for l, ci in self.rho_ci.items()
                     if l >= 1}
            object.__setattr__(self, "status", degree_status(cells, self.ceiling))

    @property
    def L(self) -> int:
        return self.ceiling // self.d

    def to_dict(self) -> Dict:
        def keyed(m, form=lambda v: v):
            return {str(l): form(v) for l, v in sorted(m.items())}
        return {"ceiling": self.ceiling, "measured_ceiling": self.measured_ceiling,
                "rho": keyed(self.rho), "rho_ci": keyed(self.rho_ci, _listed),
                "r2_inj": keyed(self.r2_inj), "r2_inj_ci": keyed(self.r2_inj_ci, _listed),
                "gain": keyed(self.gain), "gain_ci": keyed(self.gain_ci, _listed),
                "rho_boundary": self.rho_boundary, "rho_above": self.rho_above,
                "cliff_ratio": self.cliff_ratio, "cliff_ratio_ci": self.cliff_ratio_ci,
                "delta_contrast": self.delta_contrast,
                "delta_contrast_ci": _listed(self.delta_contrast_ci),
                "agreement": self.agreement, "status": self.status,
                "capacity": [c.to_dict() for c in self.capacity],
                "refit_spread": None if self.refit_spread is None else self.refit_spread.to_dict()}

    @classmethod
    def from_dict(cls, d: int, s: Dict) -> "DegreeSummary":
        def keyed(m, form=lambda v: v):
            return {int(l): form(v) for l, v in (m or {}).items()}
        ci = Interval.from_list
        return cls(d=int(d), ceiling=int(s["ceiling"]), measured_ceiling=s["measured_ceiling"],
                   rho=keyed(s["rho"]), rho_ci=keyed(s["rho_ci"], ci),
                   r2_inj=keyed(s["r2_inj"]), r2_inj_ci=keyed(s["r2_inj_ci"], ci),
                   gain=keyed(s["gain"]), gain_ci=keyed(s["gain_ci"], ci),
                   rho_boundary=s["rho_boundary"],
                   rho_above=s["rho_above"], cliff_ratio=s["cliff_ratio"],
                   cliff_ratio_ci=s["cliff_ratio_ci"], delta_contrast=s["delta_contrast"],
                   delta_contrast_ci=ci(s["delta_contrast_ci"]),
                   agreement=None if s["agreement"] is None else bool(s["agreement"]),
                   status=s.get("status"),
                   capacity=[CapacityStep.from_dict(c) for c in s.get("capacity") or []],
                   refit_spread=(None if s.get("refit_spread") is None else
                                 RefitSpread(**s["refit_spread"])))


@dataclass(frozen=True)
class BackboneRecord:
    """Where a backbone came from and what was measured about it besides the probes.
    ``extra`` holds adapter-specific keys (e.g. ``nequip_layer``), written as they are."""

    name: str
    source: str
    sha256: Optional[str]
    seed: int
    test_energy_mae_meV: Optional[float]
    test_force_mae_meV_per_A: Optional[float]
    irreps_out: str
    L: int
    dtype: str
    equivariance_error: Dict[str, float]
    equivariant: Optional[bool]
    eps_eV: Optional[float]
    energy_error_rmse_meV: Optional[float]
    rotations: Optional[Dict] = None
    cache: Optional[Dict] = None
    extra: Dict = field(default_factory=dict)

    _KEYS = ("name", "source", "sha256", "seed", "test_energy_mae_meV",
             "test_force_mae_meV_per_A", "irreps_out", "L", "dtype", "equivariance_error",
             "equivariant", "eps_eV", "energy_error_rmse_meV", "rotations", "cache")

    def to_dict(self) -> Dict:
        # rotations and cache: absent in files before schema 4, and cache without a cache
        out = {k: getattr(self, k) for k in self._KEYS
               if not (k in ("rotations", "cache") and getattr(self, k) is None)}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, b: Dict) -> "BackboneRecord":
        extra = {k: v for k, v in b.items() if k not in cls._KEYS}
        return cls(name=b["name"], source=b.get("source", ""), sha256=b.get("sha256"),
                   seed=int(b.get("seed", -1)), test_energy_mae_meV=b.get("test_energy_mae_meV"),
                   test_force_mae_meV_per_A=b.get("test_force_mae_meV_per_A"),
                   irreps_out=b.get("irreps_out", ""), L=int(b["L"]),
                   dtype=b.get("dtype", "unknown"),
                   equivariance_error=b.get("equivariance_error", {}),
                   equivariant=b.get("equivariant"), eps_eV=b.get("eps_eV"), energy_error_rmse_meV=b.get("energy_error_rmse_meV"),
                   rotations=b.get("rotations"), cache=b.get("cache"), extra=extra)


class DiagnoseResult(RunResult):
    """What :func:`empirical.diagnose` measured, as typed records.

    Attributes
    ----------
    config : dict
        The exact configuration (JSON-ready: options, seeds, dataset fingerprint, versions).
    backbones : list of BackboneRecord
    predicted : dict d -> Prediction
    probes : list of ProbeRecord
    summaries : dict d -> DegreeSummary
    cells : list of Cell
    k_sweep : list of CapacityPoint
    paper : dict (the paper's headline figures)
    warnings : list of str
    seconds : float (wall time, kept out of ``results.json``)
    """

    def __init__(self, config: Dict, backbones: List[BackboneRecord],
                 predicted: Dict[int, Prediction], probes: List[ProbeRecord],
                 summaries: Dict[int, DegreeSummary], cells: List[Cell],
                 k_sweep: List[CapacityPoint], paper: Dict, warnings: List[str],
                 seconds: float = 0.0, schema_version: int = SCHEMA_VERSION):
        #: the schema the record follows: a file of an older schema is written back as
        #: it was read (it lacks what newer schemas add)
        self.schema_version = int(schema_version)
        self.config = config
        self.backbones = list(backbones)
        self.predicted = dict(predicted)
        self.probes = list(probes)
        self.summaries = dict(summaries)
        self.cells = list(cells)
        self.k_sweep = list(k_sweep)
        self.paper = paper
        self.warnings = list(warnings)
        self.seconds = seconds

    def __repr__(self) -> str:
        return (f"DiagnoseResult(backbones={[b.name for b in self.backbones]}, "
                f"degrees={self.degrees}, agreement={self.agreement}, "
                f"seconds={self.seconds:.1f})")

    # -- views
    @property
    def degrees(self) -> List[int]:
        return sorted(self.summaries)

    @property
    def L(self) -> int:
        """The (common) highest feature degree of the pooled backbones."""
        return int(self.backbones[0].L)

    @property
    def lmax(self) -> int:
        return int(self.config["lmax"])

    def cells_of(self, d: int) -> List[Cell]:
        return [c for c in self.cells if c.d == d]

    @property
    def statuses(self) -> Dict[int, str]:
        """``{d: summary[d].status}`` (docs/method.md §2.8)."""
        return {d: s.status for d, s in sorted(self.summaries.items())}

    @property
    def agreement(self) -> Optional[bool]:
        """False if any probe degree's status is not ``agrees`` (and not ``untested``),
        else None if any is untested (lmax <= dL), else True."""
        values = [s.agreement for s in self.summaries.values()]
        if any(v is False for v in values):
            return False
        return None if any(v is None for v in values) else True

    # -- the file boundary
    def to_dict(self) -> Dict:
        """``results.json`` as a new dictionary (editing it leaves the result unchanged)."""
        return copy.deepcopy({
            "schema_version": self.schema_version,
            "config": self.config,
            "backbones": [b.to_dict() for b in self.backbones],
            "predicted": {str(d): p.to_dict() for d, p in sorted(self.predicted.items())},
            "probes": [p.to_dict() for p in self.probes],
            "summary": {str(d): s.to_dict() for d, s in sorted(self.summaries.items())},
            "cells": [c.to_dict() for c in self.cells],
            "k_sweep": [r.to_dict() for r in self.k_sweep],
            "paper": self.paper,
            "warnings": list(self.warnings),
        })

    @classmethod
    def from_dict(cls, payload: Dict) -> "DiagnoseResult":
        """Rebuild the records from a ``results.json`` dictionary; ``ValueError`` when it is
        not one (schema 1 files are read too: their cliff interval is a list)."""
        need = ("config", "backbones", "predicted", "summary", "cells")
        if not isinstance(payload, dict) or any(k not in payload for k in need):
            raise ValueError("not the results of empirical diagnose (missing "
                             + ", ".join(k for k in need if not isinstance(payload, dict)
                                         or k not in payload) + ")")
        try:
            return cls(
                config=payload["config"],
                backbones=[BackboneRecord.from_dict(b) for b in payload["backbones"]],
                predicted={int(d): Prediction(int(d), int(p["ceiling"]),
                                              tuple(int(x) for x in p["recoverable"]))
                           for d, p in payload["predicted"].items()},
                probes=[ProbeRecord(**p) for p in payload.get("probes", [])],
                summaries={int(d): DegreeSummary.from_dict(int(d), s)
                           for d, s in payload["summary"].items()},
                cells=[Cell.from_dict(c) for c in payload["cells"]],
                k_sweep=[CapacityPoint(**r) for r in payload.get("k_sweep", [])],
                paper=payload.get("paper", {}), warnings=payload.get("warnings", []),
                schema_version=int(payload.get("schema_version", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not the results of empirical diagnose ({exc})") from None

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """Write ``results.json``, ``report.md`` and the PNG plots into ``out_dir`` as one
        set (written beside it, then renamed into place). ``out_dir`` must not hold files
        unless ``overwrite`` (:class:`empirical.io.OutputExists`). Returns the paths."""
        from pathlib import Path

        from ._report import write_outputs
        return write_outputs(self, Path(out_dir), plots=plots, overwrite=overwrite)


# --------------------------------------------------------------------------------- schema

#: Every key of ``results.json``: (JSON path, type, unit, meaning). ``<d>`` and ``<l>`` are
#: probe and target degrees written as strings; ``[i]`` is a list element.
SCHEMA: Tuple[Tuple[str, str, str, str], ...] = (
    ("schema_version", "int", "", f"{SCHEMA_VERSION}"),
    ("config.dataset.source", "str", "", "where the data came from"),
    ("config.dataset.frames_total", "int", "frames", "frames in the dataset"),
    ("config.dataset.frames_used", "int", "frames", "frames used (a seeded subset or all)"),
    ("config.dataset.sha256", "str", "", "hash of positions, numbers, energies, forces"),
    ("config.marked_atoms", "[int, int]", "", "marked pair (a, b), 0-based"),
    ("config.marked_labels", "[str, str] | null", "", "their labels, when the data has them"),
    ("config.degrees", "[int]", "", "probe degrees d"),
    ("config.lmax", "int", "", "highest target degree l"),
    ("config.seed", "int", "", "run seed"),
    ("config.seed_streams", "{str: int | str}", "", "SeedSequence keys of every random stream"),
    ("config.test_fraction", "float", "", "held-out fraction of the configurations"),
    ("config.n_train", "int", "samples", "probe-training samples"),
    ("config.n_test", "int", "samples", "held-out samples"),
    ("config.configurations_train", "int", "configurations", "probe-training configurations"),
    ("config.configurations_test", "int", "configurations", "held-out configurations"),
    ("config.rotations_per_configuration", "int", "", "samples per configuration"),
    ("config.rotations", "str", "", "how rotations are drawn"),
    ("config.k_requested", "int | null", "", "SPN width asked for (null: automatic)"),
    ("config.k", "{<d>: int}", "", "effective SPN width per d"),
    ("config.k_rule", "str", "", "how k was chosen"),
    ("config.reduction", "str", "", "'irrep' or 'pca'"),
    ("config.spn", "str", "", "'ridge' or 'trained'"),
    ("config.folds", "int", "", "cross-validation folds (grouped by configuration)"),
    ("config.ridge_lambda_grid", "str", "", "ridge penalties"),
    ("config.n_boot", "int", "", "bootstrap resamples"),
    ("config.bootstrap", "str", "", "resampling scheme"),
    ("config.interval", "str", "", "interval of rho, R2_inj, gain and delta"),
    ("config.interval_cliff_ratio", "str", "", "confidence set of the cliff ratio"),
    ("config.eps", "float | null", "eV", "injection amplitude given (null: per backbone)"),
    ("config.eps_rule", "str", "", "how eps was chosen"),
    ("config.eps_definition", "str", "", "the definition of the default eps, in words"),
    ("config.thresholds", "{recoverable: float, blind: float}", "", "verdict thresholds on rho"),
    ("config.k_sweep_channels_per_degree", "[int]", "", "capacity sweep widths"),
    ("config.capacity", "{mode, max_rotations_per_config, max_channels_per_degree, "
     "saturation_gain, refit_seeds}", "", "the widening rule (docs/method.md §2.6)"),
    ("config.signal", "str", "", "the injected target"),
    ("config.coefficients", "{<l>: [float]}", "", "unit coefficient vector c of s_l"),
    ("config.versions", "{str: str}", "", "python and package versions"),
    ("config.device", "str | null", "", "device asked for (null: each backbone where it was)"),
    ("config.rotate", "str", "", "'auto' (further rotations derived by D(R'R^-1) when the "
     "equivariance check passes) or 'model' (docs/method.md §2.13)"),
    ("config.feature_cache", "{used, reused, written, damaged_recomputed, problem}", "",
     "what the run did with the feature cache (entries; no path; docs/method.md §2.12)"),
    ("backbones[i].name", "str", "", "backbone name (unique in a run)"),
    ("backbones[i].source", "str", "", "shipped name, path or python object"),
    ("backbones[i].sha256", "str | null", "", "hash of the checkpoint file"),
    ("backbones[i].seed", "int", "", "training seed (-1 unknown)"),
    ("backbones[i].test_energy_mae_meV", "float | null", "meV", "its own held-out energy MAE"),
    ("backbones[i].test_force_mae_meV_per_A", "float | null", "meV/A", "its held-out force MAE"),
    ("backbones[i].irreps_out", "str", "", "e3nn irreps of the per-atom features"),
    ("backbones[i].L", "int", "", "highest feature degree"),
    ("backbones[i].dtype", "str", "", "dtype the positions reached the model in"),
    ("backbones[i].equivariance_error", "{rotation: float, reflection: float}",
     "feature units", "max abs equivariance error of every atom's features over the "
     "check's sample (16 configurations, each under 2 rotations and 2 roto-reflections; "
     "one configuration before schema 4)"),
    ("backbones[i].rotations", "{mode, per_configuration, method, model_runs, derived, "
     "equivariance_sample, check, fallback?}", "",
     "how each configuration's further rotations were obtained: 'model' or 'equivariance' "
     "(D(R'R^-1) of the first rotation's features); check: the per-run comparison of "
     "derived samples with the model (samples, max_deviation, tolerance, passed); a widened "
     "step's are in summary.<d>.capacity[i].features (absent before schema 4)"),
    ("backbones[i].cache", "{reused: [str], written: [str], model_key: str | null}", "",
     "feature-cache entries (KIND/KEY) this backbone's features were read from and "
     "written to (absent: no cache)"),
    ("backbones[i].equivariant", "bool", "", "equivariance error within the tolerance of "
     "its dtype (relative to the largest feature; the rotation alone for an SO(3) model); "
     "false: outside the theorem's premise"),
    ("backbones[i].eps_eV", "float | null", "eV", "injection amplitude used"),
    ("backbones[i].energy_error_rmse_meV", "float | null", "meV",
     "RMSE of E_ref - E_backbone on the probe-training configurations"),
    ("backbones[i].layer", "str | null", "", "the layer whose features were read (null: "
     "the object names none)"),
    ("backbones[i].device", "str", "", "where the backbone ran (cpu, cuda:0)"),
    ("backbones[i].parity", "bool", "", "false: an SO(3) model (parity = False), judged "
     "equivariant on the rotation alone"),
    ("backbones[i].<adapter keys>", "any", "", "adapter-specific (e.g. nequip_layer, "
     "sevenn_modal, parameters)"),
    ("predicted.<d>.ceiling", "int", "", "spanthm's ceiling dL"),
    ("predicted.<d>.recoverable", "[int]", "", "predicted-recoverable l <= lmax"),
    ("probes[i].{backbone, d, l}", "str, int, int", "", "the probe"),
    ("probes[i].rho", "float | null", "", "held-out Pearson correlation with s_l"),
    ("probes[i].r2_inj", "float | null", "", "R2 against the injected part eps*s_l"),
    ("probes[i].gain", "float | null", "target^2", "raw gain over the training mean"),
    ("summary.<d>.ceiling", "int", "", "predicted ceiling dL"),
    ("summary.<d>.measured_ceiling", "int | null", "", "highest l with a recoverable verdict"),
    ("summary.<d>.rho", "{<l>: float | null}", "", "mean over backbones"),
    ("summary.<d>.rho_ci", "{<l>: [float, float] | null}", "", "95 % percentile interval"),
    ("summary.<d>.r2_inj", "{<l>: float | null}", "", "mean over backbones"),
    ("summary.<d>.r2_inj_ci", "{<l>: [float, float] | null}", "", "95 % percentile interval"),
    ("summary.<d>.gain", "{<l>: float | null}", "target^2", "mean raw gain"),
    ("summary.<d>.gain_ci", "{<l>: [float, float] | null}", "target^2", "interval"),
    ("summary.<d>.rho_boundary", "float | null", "", "rho(dL)"),
    ("summary.<d>.rho_above", "float | null", "", "rho(dL + 1)"),
    ("summary.<d>.cliff_ratio", "float | null", "", "rho(dL) / rho(dL + 1)"),
    ("summary.<d>.cliff_ratio_ci", "{kind, pieces, abs_lower_bound, level, method} | null",
     "", "Fieller-type confidence set (kind: interval, two_rays, ray or unbounded; pieces: "
         "[[low, high]], null = infinite)"),
    ("summary.<d>.delta_contrast", "float | null", "target^2", "G(dL) - G(dL + 1)"),
    ("summary.<d>.delta_contrast_ci", "[float, float] | null", "target^2", "interval"),
    ("summary.<d>.status", "str", "", "agrees (boundary recovered, every l > dL blind), "
     "violates (some l > dL exceeds), boundary_not_reached (every l > dL blind, boundary "
     "not recovered at the widest probe tried), undecided (intervals too wide) or untested "
     "(nothing above dL measured); docs/method.md §2.8"),
    ("summary.<d>.agreement", "bool | null", "", "status == agrees (for old readers); null "
     "when untested"),
    ("summary.<d>.capacity", "[object]", "", "the probe widths tried at the boundary "
     "l = dL (capacity auto: widened while not recovered), narrowest first; the summary's "
     "numbers are those of the widest ridge step, or of the trained SPN where it is last and "
     "recovered (`empirical.diagnostic.reported_step`; empty: no boundary measured)"),
    ("summary.<d>.capacity[i].{k, rotations_per_config}", "int, int", "",
     "the width (effective k) and rotations per configuration of one step"),
    ("summary.<d>.capacity[i].solver", "str", "", "ridge or trained"),
    ("summary.<d>.capacity[i].{rho, rho_ci}", "float | null, [float, float] | null", "",
     "rho(dL) and its 95% interval at that width"),
    ("summary.<d>.capacity[i].status", "str", "", "cell status of rho(dL) at that width"),
    ("summary.<d>.capacity[i].features", "[{method, model_runs, derived, check, "
     "fallback?}] (widened steps only)", "", "per backbone, how the widened step's "
     "rotations were obtained: 'equivariance' (derived by D(R'R^-1), with the per-run "
     "check) or 'model' (docs/method.md §2.13)"),
    ("summary.<d>.refit_spread", "object | null", "", "rho(dL) refitted under further "
     "splits and folds, features reused (null: no boundary measured)"),
    ("summary.<d>.refit_spread.{k, rotations_per_config, seeds}", "int, int, int", "",
     "the width refitted and the number of further seeds"),
    ("summary.<d>.refit_spread.rho", "[float | null]", "", "the run's fit, then one per seed"),
    ("summary.<d>.refit_spread.{spread, sd}", "float | null", "", "max - min and sample SD"),
    ("cells[i].{d, l}", "int, int", "", "the cell"),
    ("cells[i].predicted", "str", "", "'recoverable' or 'blind' (spanthm)"),
    ("cells[i].rho", "float | null", "", "mean held-out rho"),
    ("cells[i].rho_ci", "[float, float] | null", "", "its interval"),
    ("cells[i].r2_inj", "float | null", "", "mean R2_inj"),
    ("cells[i].measured", "str", "", "point-estimate label: recoverable, blind, ambiguous, "
     "undefined"),
    ("cells[i].agrees", "bool | null", "", "measured == predicted (null: undefined)"),
    ("cells[i].status", "str", "", "from the 95 % interval: l <= dL recovered (low >= 0.5), "
     "not_recovered (high < 0.5); l > dL blind (inside [-0.2, 0.2]), exceeds (wholly "
     "outside); else undecided"),
    ("k_sweep[i].{backbone, channels_per_degree, k, monomials, d, l}", "str, int, ...", "",
     "capacity sweep point"),
    ("k_sweep[i].rho", "float | null", "", "held-out rho at that width"),
    ("paper", "{rho, cliff_ratio, r2_inj}", "", "the paper's headline figures"),
    ("warnings", "[str]", "", "probe capacity warnings"),
)


#: The keys that survey, profile and sweep results add around their runs' diagnose files
#: (``key, type, unit, meaning``), documented beside :data:`SCHEMA`.
COLLECTION_SCHEMA = [
    ("config.seed", "int", "", "the run seed"),
    ("config.draws", "str", "", "`independent` (default: each model, backbone or group "
     "draws its own frames, split, rotations, folds and target from `stream(seed, 31, "
     "sha256(name)[:8])`, docs/method.md §2.10) or `paired` (`--paired`, TOML `paired = "
     "true`: every one uses the run seed)"),
    ("config.model_seeds", "{name: int}", "", "survey, profile: the plan seed each model's "
     "(backbone's) diagnosis used"),
    ("config.group_seeds", "{group: {seed: int}}", "", "sweep: the plan seed each group's "
     "run used, per listed seed"),
    ("config.capacity", "object or str", "", "the widening rule, as diagnose's "
     "`config.capacity` (sweep: the TOML's `capacity`, `auto` or `fixed`)"),
    ("config.rotate", "str", "", "survey, profile: `auto` or `model`, as diagnose's "
     "(docs/method.md §2.13); each nested run records its own"),
    ("config.feature_cache", "{used, reused, written, damaged_recomputed, problem}", "",
     "survey, profile: what the whole run did with the feature cache (docs/method.md "
     "§2.12; a sweep counts it in timings.json)"),
    ("rows[i].{d, L, predicted_ceiling, measured_ceiling}", "int", "",
     "as diagnose's summary (measured: null when none)"),
    ("rows[i].agreement", "bool | null", "", "true only for status `agrees`"),
    ("rows[i].status", "str", "", "`agrees`, `violates`, `boundary_not_reached`, "
     "`undecided` or `untested` (docs/method.md §2.8)"),
    ("rows[i].{rho_boundary, rho_above}", "float | null", "", "survey, sweep: rho(dL) (at "
     "the widest probe tried) and rho(dL + 1)"),
    ("rows[i].{rho_boundary_ci, rho_above_ci}", "[float | null, float | null]", "",
     "their 95 % intervals"),
    ("rows[i].rho, rows[i].rho_ci", "{l: float | null}, {l: [float, float]}", "",
     "profile: every degree of one layer"),
    ("runs.<name>", "object", "", "survey, sweep: that model's (run's) full diagnose "
     "results.json (the table above), with its `summary.<d>.capacity` and `refit_spread`"),
]


def _cell(text: str) -> str:
    """A Markdown table cell: a ``|`` (as in ``float | null``) escaped."""
    return text.replace("|", "\\|")


def schema_markdown() -> str:
    """``docs/results_schema.md``: :data:`SCHEMA` (and :data:`COLLECTION_SCHEMA`) as
    Markdown tables."""
    lines = ["# results.json of `empirical diagnose`", "",
             f"Schema version {SCHEMA_VERSION}; generated from "
             "`empirical.diagnostic._result.SCHEMA` (a test keeps this file in step). "
             "`<d>`, `<l>`: probe and target degrees as strings; `[i]`: list elements; "
             "`null` where a quantity is undefined (never NaN).", "",
             "| key | type | unit | meaning |", "|---|---|---|---|"]
    for key, typ, unit, meaning in SCHEMA:
        lines.append(f"| `{key}` | {_cell(typ)} | {unit} | {_cell(meaning)} |")
    doc = (__doc__ or "").split("Schema versions")[1].strip("-\n ")
    lines += ["", "## Versions", "", *[ln for ln in doc.splitlines()]]
    lines += ["", "# results.json of `empirical survey`, `empirical profile` and "
              "`empirical sweep`", "",
              "Each starts with `schema`: `spectral-ceilings-survey/2`, "
              "`spectral-ceilings-profile/2`, `spectral-ceilings-sweep/2` (version 1 is read "
              "too: its rows' `status` is derived from their intervals, and its `config` has "
              "no `draws`, which the report states as shared draws, as version 1 used). The "
              "headline keys of a row are those of diagnose's `summary.<d>`; "
              "generated from `empirical.diagnostic._result.COLLECTION_SCHEMA`.", "",
              "| key | type | unit | meaning |", "|---|---|---|---|"]
    for key, typ, unit, meaning in COLLECTION_SCHEMA:
        lines.append(f"| `{key}` | {_cell(typ)} | {unit} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ degree headline

def _interval_of(ci) -> Optional[Interval]:
    """An interval of a :class:`DegreeSummary` (a ``[low, high]`` list or an
    :class:`~empirical.diagnostic.statistics.Interval`) as an ``Interval``; ``None`` where
    the degree has none (not measured)."""
    if ci is None or isinstance(ci, Interval):
        return ci
    low, high = ci
    return Interval(low, high)


def _status_of_row(row: Dict) -> str:
    """The degree status of a headline row written before schema 3 (no ``status``): from
    its two intervals, as far as they go (``untested`` when ``rho(dL + 1)`` is absent)."""
    dl = int(row["predicted_ceiling"])
    if row.get("rho_above_ci") is None:
        return UNTESTED
    return degree_status({dl: cell_status(dl, dl, row.get("rho_boundary_ci")),
                          dl + 1: cell_status(dl + 1, dl, row["rho_above_ci"])}, dl)


@dataclass(frozen=True)
class DegreeHeadline:
    """The headline of one probe degree ``d`` (docs/method.md §2.8): the predicted ceiling
    ``dL`` beside the measured one, and rho at the boundary ``l = dL`` and just above it
    (``l = dL + 1``) with their 95 % intervals. One projection of :class:`DegreeSummary`,
    shared by the rows of the survey, the per-layer profile and the sweep.

    An interval is ``None`` where its degree was not measured (above ``lmax``), and an
    :class:`~empirical.diagnostic.statistics.Interval` with ``None`` bounds where the
    statistic is undefined.
    """

    d: int
    L: int
    predicted_ceiling: int
    measured_ceiling: Optional[int]
    agreement: Optional[bool]
    rho_boundary: Optional[float]
    rho_boundary_ci: Optional[Interval]
    rho_above: Optional[float]
    rho_above_ci: Optional[Interval]
    cliff_ratio: Optional[float]
    status: str = UNTESTED

    @classmethod
    def from_summary(cls, summary: DegreeSummary) -> "DegreeHeadline":
        s = summary
        return cls(d=s.d, L=s.L, predicted_ceiling=s.ceiling,
                   measured_ceiling=s.measured_ceiling, agreement=s.agreement,
                   rho_boundary=s.rho_boundary,
                   rho_boundary_ci=_interval_of(s.rho_ci.get(s.ceiling)),
                   rho_above=s.rho_above,
                   rho_above_ci=_interval_of(s.rho_ci.get(s.ceiling + 1)),
                   cliff_ratio=s.cliff_ratio, status=s.status)

    def to_dict(self) -> Dict:
        """The JSON keys, in this order (an interval ``[low, high]`` or ``null``)."""
        def listed(ci):
            return None if ci is None else ci.to_list()
        return {"d": self.d, "L": self.L, "predicted_ceiling": self.predicted_ceiling,
                "measured_ceiling": self.measured_ceiling, "agreement": self.agreement,
                "rho_boundary": self.rho_boundary,
                "rho_boundary_ci": listed(self.rho_boundary_ci),
                "rho_above": self.rho_above, "rho_above_ci": listed(self.rho_above_ci),
                "cliff_ratio": self.cliff_ratio, "status": self.status}

    @classmethod
    def from_dict(cls, row: Dict) -> "DegreeHeadline":
        """Read back from a row of ``results.json`` (keys absent there are ``None``)."""
        return cls(d=int(row["d"]), L=int(row["L"]),
                   predicted_ceiling=int(row["predicted_ceiling"]),
                   measured_ceiling=row.get("measured_ceiling"),
                   agreement=row.get("agreement"), rho_boundary=row.get("rho_boundary"),
                   rho_boundary_ci=_interval_of(row.get("rho_boundary_ci")),
                   rho_above=row.get("rho_above"),
                   rho_above_ci=_interval_of(row.get("rho_above_ci")),
                   cliff_ratio=row.get("cliff_ratio"),
                   status=row.get("status") or _status_of_row(row))
