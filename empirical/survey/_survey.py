"""The survey (docs/method.md §2.10): every model this environment can load, diagnosed on
the same data at ``d = 1, 2, 3``, one table row per model and ``d``.

``survey() -> SurveyResult``. The models: this package's four shipped aspirin backbones
(each on its own: the survey's unit is a model, not the pooled group of the main run),
every pretrained model an installed adapter can load without a download
(:func:`empirical.adapters.available`: SevenNet's shipped checkpoints with the
``[sevenn]`` extra), and any further specs given (``extra``: a nequip example checkpoint,
a MACE model file, ...; third-party files need ``trust_checkpoints``). Each is diagnosed by
:func:`empirical.diagnose` on the same data, no k sweep, and ``lmax = max(d) * L + 1``
(capped at 12), so every ceiling is tested; with its own plan seed drawn from the run seed
and its name (:func:`~._draws.model_seed`: its own split, rotations and signal, so the rows
are independent and adding a model changes no other row), or with the run seed shared by
every model when ``paired`` (CLI ``--paired``: a paired design for contrasts).

A model trained on another level of theory (SevenNet: PBE on materials; the data:
GFN2-xTB) enters only through eps and R2_inj (its energy error against the data's
energies is larger); rho is measured on an injected signal and does not depend on the
model's energies at all (docs/method.md §2.10).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .._result import TypedResult
from ..adapters import available, resolve_backbones
from ..backbone import shipped
from ..data import Dataset
from ..data import load as load_dataset
from ..diagnostic import DegreeHeadline, DiagnoseResult, diagnose
from ..cache import open_cache
from ..diagnostic import ROTATE_MODES
from ..runtime import max_l, place, resolve_device, versions
from ..diagnostic import MAX_LMAX, validate_options
from ..diagnostic import THRESHOLDS
from ._draws import check_paired, draws_of, model_seed

__all__ = ["SurveyRow", "SurveyResult", "survey", "survey_models", "survey_items",
           "SURVEY_SCHEMA"]

#: ``results.json["schema"]`` of a survey.
SURVEY_SCHEMA = "spectral-ceilings-survey/2"
#: Read too: version 1 (before interval verdicts and per-model draws).
SURVEY_SCHEMA_READS = ("spectral-ceilings-survey/1",)


@dataclass(frozen=True)
class SurveyRow:
    """One model at one probe degree: what the model is, and the headline of its ``d``.

    Attributes
    ----------
    model, source, irreps_out : the model's name, where it came from, the irreps read
    layer : the layer read (``None``: the model's own), layers: interaction layers with
        ``l > 0`` features (``None`` when the model does not name them)
    parameters : trainable parameters (``None`` when unknown)
    headline : ``d``, ``L``, ceilings, agreement, rho at ``dL`` and ``dL + 1``
    equivariance_error : max abs; the rotation alone for an SO(3) model
    parity : ``False`` for an SO(3) model (docs/method.md §2.2)
    equivariant, eps_eV, energy_error_rmse_meV : as in the model's diagnose record
    """

    model: str
    source: str
    irreps_out: str
    layer: Optional[str]
    layers: Optional[int]
    parameters: Optional[int]
    headline: DegreeHeadline
    equivariance_error: float
    parity: bool
    equivariant: Optional[bool]
    eps_eV: Optional[float]
    energy_error_rmse_meV: Optional[float]

    #: The keys of a row in ``results.json``, in order.
    KEYS = ("model", "source", "irreps_out", "L", "layer", "layers", "parameters", "d",
            "predicted_ceiling", "measured_ceiling", "agreement", "status", "rho_boundary",
            "rho_boundary_ci", "rho_above", "rho_above_ci", "equivariance_error", "parity",
            "equivariant", "eps_eV", "energy_error_rmse_meV")
    _OWN = ("model", "source", "irreps_out", "layer", "layers", "parameters",
            "equivariance_error", "parity", "equivariant", "eps_eV", "energy_error_rmse_meV")

    def to_dict(self) -> Dict:
        """The row of ``results.json``; an interval of an unmeasured degree is
        ``[null, null]``."""
        values = {**self.headline.to_dict(), **{k: getattr(self, k) for k in self._OWN}}
        for key in ("rho_boundary_ci", "rho_above_ci"):
            values[key] = values[key] or [None, None]
        return {k: values[k] for k in self.KEYS}

    @classmethod
    def from_dict(cls, row: Dict) -> "SurveyRow":
        return cls(headline=DegreeHeadline.from_dict(row), **{k: row[k] for k in cls._OWN})


@dataclass
class SurveyResult(TypedResult):
    """What :func:`survey` measured.

    Attributes
    ----------
    config : dict
        JSON-ready: ``dataset`` (source, frames, sha256), ``marked_atoms``, ``degrees``,
        ``lmax_rule``, ``seed``, ``draws`` (``"independent"`` or ``"paired"``),
        ``model_seeds`` (model name -> the plan seed its diagnosis used), ``n_boot``,
        ``capacity`` (the widening rule, as diagnose's ``config.capacity``),
        ``frames``, ``n_test``, ``models``, ``skipped`` (why a model or degree was left
        out), ``device``, ``thresholds``, ``versions`` (docs/results_schema.md).
    rows : list of SurveyRow
        One per model and ``d``, models in the order surveyed.
    runs : dict model name -> DiagnoseResult
        Each model's full diagnosis.
    seconds : float
        Wall time, kept out of ``results.json`` (a fixed seed gives an identical file).
    """

    config: Dict
    rows: List[SurveyRow]
    runs: Dict[str, DiagnoseResult]
    seconds: float = field(default=0.0, compare=False)

    SCHEMA = SURVEY_SCHEMA
    READS = SURVEY_SCHEMA_READS
    COMMAND = "survey"

    def to_dict(self) -> Dict:
        """``results.json``: ``schema``, ``config``, ``rows``, ``runs``."""
        return {"schema": SURVEY_SCHEMA, "config": copy.deepcopy(self.config),
                "rows": [r.to_dict() for r in self.rows],
                "runs": {name: run.to_dict() for name, run in self.runs.items()}}

    @classmethod
    def _from_payload(cls, payload: Dict) -> "SurveyResult":
        return cls(config=payload["config"],
                   rows=[SurveyRow.from_dict(r) for r in payload["rows"]],
                   runs={k: DiagnoseResult.from_dict(v) for k, v in payload["runs"].items()})

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """``results.json``, ``report.md`` and ``survey.png`` as one set."""
        from ._report import write_survey_outputs
        return write_survey_outputs(self, out_dir, plots=plots, overwrite=overwrite)


def survey_models(extra: Sequence[str] = (), include_shipped: bool = True,
                  include_available: bool = True) -> List[str]:
    """The models a survey diagnoses: the shipped backbones, every adapter's
    :func:`~empirical.adapters.available` spec, then ``extra`` (duplicates dropped)."""
    models: List[str] = []
    if include_shipped:
        models += [e["name"] for e in shipped(role="diagnostic")]
    if include_available:
        models += available()
    for m in extra:
        if m not in models:
            models.append(str(m))
    return models


def survey_items(models: Optional[Sequence] = None, extra: Sequence = ()) -> List:
    """The models a survey diagnoses: ``models`` (default :func:`survey_models`), then every
    spec of ``extra`` not already among them: ``extra`` adds to ``models`` too, it is never
    dropped (``empirical survey --models A --extra B`` surveys A and B)."""
    if models is None:
        return survey_models(extra)
    items = list(models)
    for m in extra:
        if m not in items:
            items.append(m)
    return items


def _premise_error(errors: Dict[str, float], parity: bool) -> float:
    """The equivariance error the premise is judged on: rotation and roto-reflection, or
    the rotation alone for an SO(3) model (``parity`` False)."""
    return float(max(errors.values()) if parity else errors["rotation"])


def _parameters(obj, info) -> Optional[int]:
    if isinstance(info.get("parameters"), int):
        return info["parameters"]
    params = getattr(obj, "parameters", None)
    if callable(params):
        try:
            return int(sum(p.numel() for p in params()))
        except TypeError:
            return None
    return None


def _rows_of(name: str, obj, info: Dict, res: DiagnoseResult, ds) -> List[SurveyRow]:
    """The rows of one model's diagnosis, one per ``d`` of ``ds``."""
    rec = res.backbones[0]
    layers = getattr(obj, "layers", None)
    return [SurveyRow(
        model=name, source=info.get("source", rec.source), irreps_out=rec.irreps_out,
        layer=rec.extra.get("layer"),
        layers=len(layers) if isinstance(layers, (tuple, list)) else None,
        parameters=_parameters(obj, info), headline=DegreeHeadline.from_summary(res.summaries[d]),
        equivariance_error=_premise_error(rec.equivariance_error, rec.extra.get("parity", True)),
        parity=bool(rec.extra.get("parity", True)),
        equivariant=rec.equivariant, eps_eV=rec.eps_eV,
        energy_error_rmse_meV=rec.energy_error_rmse_meV) for d in ds]


def _survey_plans(entries, degrees, skipped: List[str]) -> List:
    """``(name, obj, info, L, ds, lmax)`` of every model that can be diagnosed (every
    model's degrees and lmax, before any work); why the others are left out in
    ``skipped``."""
    plans = []
    for entry in entries:
        name, obj, info = entry.name, entry.backbone, entry.info()
        L = max_l(obj.irreps_out)
        ds = [d for d in degrees if d * L + 1 <= MAX_LMAX]
        if L < 1 or not ds:
            skipped.append(f"{name}: L = {L}: " + ("no l > 0 features" if L < 1 else
                           f"every ceiling is above lmax {MAX_LMAX}"))
            continue
        if len(ds) < len(degrees):
            skipped.append(f"{name}: d = {[d for d in degrees if d not in ds]} skipped "
                           f"(ceiling above lmax {MAX_LMAX})")
        plans.append((name, obj, info, L, ds, max(ds) * L + 1))
    if not plans:
        raise ValueError("no model can be diagnosed: " + "; ".join(skipped))
    return plans


def survey(models: Optional[Sequence] = None, extra: Sequence[str] = (),
           dataset="aspirin", degrees: Sequence[int] = (1, 2, 3),
           frames: Optional[int] = None, seed: int = 0, n_boot: int = 1000,
           trust_checkpoints: bool = False, device=None, progress=None,
           paired: bool = False, capacity: str = "auto", cache=False,
           rotate: str = "auto") -> SurveyResult:
    """Diagnose every model (``models``, default :func:`survey_models`, plus ``extra``:
    :func:`survey_items`) at ``degrees``.

    ``paired`` : False (default): each model's plan seed is :func:`~._draws.model_seed`
    of ``seed`` and its name (independent rows); True: every model uses ``seed`` (shared
    draws, for model-versus-model contrasts).
    ``capacity`` : ``"auto"`` (default) or ``"fixed"``, as for :func:`empirical.diagnose`.
    ``cache``, ``rotate`` : the feature cache and how further rotations are obtained, as
    for :func:`empirical.diagnose` (docs/method.md §2.12, §2.13); one cache serves every
    model, and ``config.feature_cache`` counts what the whole run reused and wrote.

    Each model is loaded (and refused, for bad input) before any is diagnosed, so a typo
    in the last spec costs nothing. Raises ``ValueError`` for bad input.
    """
    start = time.perf_counter()
    degrees = validate_options(degrees, 0, seed, n_boot, 0.2, 3, None, "irrep", "ridge", None,
                               capacity=capacity)
    check_paired(paired)
    if rotate not in ROTATE_MODES:
        raise ValueError(f"rotate must be 'auto' or 'model', got {rotate!r}")
    dev = resolve_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    items = survey_items(models, extra)
    if not items:
        raise ValueError("no models to survey")
    entries = resolve_backbones(items, trust_checkpoints=trust_checkpoints)
    place(entries, dev)
    store = open_cache(cache)
    rows: List[SurveyRow] = []
    runs: Dict[str, DiagnoseResult] = {}
    skipped: List[str] = []
    plans = _survey_plans(entries, degrees, skipped)
    seeds = {name: model_seed(seed, name, paired) for name, *_ in plans}
    for i, (name, obj, info, L, ds, lmax) in enumerate(plans):
        if progress is not False:
            print(f"[{i + 1}/{len(plans)}] {name}: L = {L}, d = {ds}, lmax = {lmax}",
                  file=sys.stderr, flush=True)
        res = diagnose(backbones=[obj], names=[name], dataset=data, degrees=ds, lmax=lmax,
                       seed=seeds[name], frames=frames, n_boot=n_boot, k_sweep=(),
                       progress=progress, capacity=capacity,
                       cache=store if store is not None else False, rotate=rotate)
        rows += _rows_of(name, obj, info, res, ds)
        runs[name] = res
    last = res.config
    config = {"dataset": last["dataset"], "marked_atoms": last["marked_atoms"],
              "degrees": list(degrees), "lmax_rule": f"max(d) * L + 1 (at most {MAX_LMAX})",
              "seed": seed, "draws": draws_of(paired), "model_seeds": seeds,
              "n_boot": n_boot, "capacity": last["capacity"], "frames": frames,
              "n_test": last["n_test"],
              "models": [entry.name for entry in entries], "skipped": skipped,
              "device": str(dev) if dev is not None else None,
              "thresholds": dict(THRESHOLDS), "versions": versions(), "rotate": rotate,
              "feature_cache": store.record() if store is not None else {"used": False}}
    return SurveyResult(config=config, rows=rows, runs=runs,
                        seconds=time.perf_counter() - start)
