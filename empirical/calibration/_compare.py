"""Calibration versus aspirin (docs/method.md §5): one overlay per probe degree, a table,
a paragraph.

:func:`compare` reads a C5 run (:func:`run_c5`) and an aspirin diagnostic
(:func:`empirical.diagnose`), as records or as their ``results.json``, and sets, for the
aspirin backbones' ``L`` and every ``d`` of the diagnostic, the C5 axis-probe rho(l) of
every C5 feature source beside the aspirin mean rho(l) (with its bootstrap interval) and
the predicted step (1 up to ``dL``, 0 above).

Both are validated first (:func:`validate_c5_results`,
:func:`validate_diagnose_results`): the schema versions this code reads, every key the
comparison and the reports use with its type, and the values that follow from the file's
own content (a ceiling is ``d * L``; a verdict follows from its rho and prediction; a
correlation lies in [-1, 1] or is null). A file that fails gets one ``ValueError`` naming
the key and the problem, before anything is written. The report and figures are
rendered with :mod:`empirical.render`.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..checks import is_int
from ..diagnostic import (AMBIGUOUS, BLIND, CELL_STATUSES, DEGREE_STATUSES, MAX_LMAX,
                          RECOVERABLE, STATUS_WORDS, UNDEFINED, DiagnoseResult, agreement_of,
                          agrees, cell_status, degree_status, measured_ceiling, verdict)
from ..diagnostic import SCHEMA_VERSION as DIAGNOSE_SCHEMA_VERSION
from ..io import write_file_set, write_files
from ..render import png_bytes, pyplot, table, with_interval, num
from ._c5 import RING_DEGREE, SOURCES, C5Cell, C5Result
from ._c5 import SCHEMA_VERSION as C5_SCHEMA_VERSION

__all__ = ["compare", "write_compare_outputs", "validate_c5_results",
           "validate_diagnose_results", "C5_SCHEMAS", "DIAGNOSE_SCHEMAS", "MAX_DEGREES"]

#: ``schema_version`` of a C5 ``results.json`` this comparison reads.
C5_SCHEMAS = (C5_SCHEMA_VERSION,)
#: ``schema_version`` of a diagnose ``results.json`` this comparison reads (1: the cliff
#: ratio's interval was a list; :meth:`DiagnoseResult.from_dict` reads both).
DIAGNOSE_SCHEMAS = tuple(range(1, DIAGNOSE_SCHEMA_VERSION + 1))
#: Most probe degrees ``d`` one results file may hold: the comparison draws one figure per
#: ``d``, so this bounds its output (the shipped runs use d = 1, 2, 3).
MAX_DEGREES = 12
#: How far a stored correlation may lie outside [-1, 1] (floating-point rounding of a
#: Pearson coefficient), and nothing more.
RHO_SLACK = 1e-9

_PREDICTED = (RECOVERABLE, BLIND)


# ------------------------------------------------------------------------------ validation

def _is_num(x) -> bool:
    return (isinstance(x, numbers.Real) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def _show(x) -> str:
    """``repr`` of a value, cut short (a message stays one readable line)."""
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _need_dict(x, key: str) -> Dict:
    if not isinstance(x, dict):
        raise ValueError(f"{key}: expected an object, got {type(x).__name__} {_show(x)}")
    return x


def _need_list(x, key: str) -> list:
    if not isinstance(x, (list, tuple)):
        raise ValueError(f"{key}: expected a list, got {type(x).__name__} {_show(x)}")
    return list(x)


def _need_keys(m: Dict, keys: Sequence[str], key: str) -> None:
    missing = [k for k in keys if k not in m]
    if missing:
        raise ValueError(f"{key}: missing {', '.join(missing)}")


def _need_int(x, key: str, low: Optional[int] = None, high: Optional[int] = None,
              null: bool = False) -> Optional[int]:
    if x is None and null:
        return None
    if not is_int(x) or (low is not None and x < low) or (high is not None and x > high):
        bounds = ("" if low is None and high is None else
                  f" >= {low}" if high is None else f" in [{low}, {high}]")
        raise ValueError(f"{key}: expected an integer{bounds}{' or null' if null else ''}, "
                         f"got {_show(x)}")
    return int(x)


def _need_num(x, key: str, low: Optional[float] = None, high: Optional[float] = None,
              null: bool = True) -> Optional[float]:
    if x is None and null:
        return None
    if (not _is_num(x) or (low is not None and x < low) or (high is not None and x > high)):
        bounds = "" if low is None else f" in [{low:g}, {high:g}]"
        raise ValueError(f"{key}: expected a finite number{bounds}{' or null' if null else ''}"
                         f", got {_show(x)}")
    return float(x)


def _need_rho(x, key: str) -> Optional[float]:
    if x is not None and _is_num(x) and abs(x) <= 1 + RHO_SLACK:
        return float(x)
    return _need_num(x, key, -1.0, 1.0)


def _need_bool(x, key: str, null: bool = True) -> Optional[bool]:
    if x is None and null:
        return None
    if not isinstance(x, bool):
        raise ValueError(f"{key}: expected true or false{' or null' if null else ''}, "
                         f"got {_show(x)}")
    return x


def _need_choice(x, choices: Sequence[str], key: str) -> str:
    if not isinstance(x, str) or x not in choices:
        raise ValueError(f"{key}: expected one of {', '.join(choices)}, got {_show(x)}")
    return x


def _need_str(x, key: str, null: bool = False) -> Optional[str]:
    if x is None and null:
        return None
    if not isinstance(x, str):
        raise ValueError(f"{key}: expected a string, got {type(x).__name__} {_show(x)}")
    return x


def _degree_list(x, key: str, most: Optional[int] = None) -> List[int]:
    """A non-empty list of distinct integers >= 1 (at most ``most``)."""
    values = _need_list(x, key)
    if not values:
        raise ValueError(f"{key}: empty")
    if most is not None and len(values) > most:
        raise ValueError(f"{key}: {len(values)} entries, at most {most} are read")
    out = [_need_int(v, f"{key}[{i}]", 1) for i, v in enumerate(values)]
    if len(set(out)) != len(out):
        raise ValueError(f"{key}: repeats a value: {out}")
    return out


def _degree_key(k, key: str, high: Optional[int] = None) -> int:
    """A JSON object key that is a degree written the way this package writes it
    (``"2"``; not ``"02"``, ``" 2"`` or ``"2.0"``, which would collide)."""
    if not isinstance(k, str) or not k.isdigit() or str(int(k)) != k:
        raise ValueError(f"{key}: the key {_show(k)} is not a degree (a non-negative "
                         f"integer written as a string)")
    value = int(k)
    if high is not None and value > high:
        raise ValueError(f"{key}.{k}: degree {value} is above {high}")
    return value


def _interval(x, key: str, rho: bool) -> None:
    """``null`` or ``[low, high]`` (each a number or null, ``low <= high``)."""
    if x is None:
        return
    pair = _need_list(x, key)
    if len(pair) != 2:
        raise ValueError(f"{key}: expected [low, high] or null, got {_show(x)}")
    check = _need_rho if rho else _need_num
    lo, hi = (check(v, f"{key}[{i}]") for i, v in enumerate(pair))
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{key}: low {lo:g} is above high {hi:g}")


def _check_schema(payload: Dict, known: Tuple[int, ...]) -> None:
    version = payload["schema_version"]
    if not is_int(version) or version not in known:
        raise ValueError(f"schema_version: {_show(version)} is not one this version of "
                         f"empirical reads ({', '.join(map(str, known))})")


def _thresholds(x, key: str) -> Dict[str, float]:
    m = _need_dict(x, key)
    _need_keys(m, ("recoverable", "blind"), key)
    rec = _need_num(m["recoverable"], f"{key}.recoverable", 0.0, 1.0, null=False)
    blind = _need_num(m["blind"], f"{key}.blind", 0.0, 1.0, null=False)
    if not blind < rec:
        raise ValueError(f"{key}: blind {blind:g} must lie below recoverable {rec:g}")
    return {"recoverable": rec, "blind": blind}


def validate_c5_results(payload) -> Dict[Tuple, Dict]:
    """Check a C5 ``results.json`` dictionary (:func:`run_c5`'s payload); ``ValueError``
    naming the first bad key. Returns its axis cells keyed ``(source, L, d, l)``."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    if "probes" in payload and "backbones" in payload:
        raise ValueError("this is a results.json of empirical diagnose, not of empirical c5")
    _need_keys(payload, ("schema_version", "config", "cells", "summary", "training",
                         "agreement"), "top level")
    _check_schema(payload, C5_SCHEMAS)
    cfg = _c5_config(_need_dict(payload["config"], "config"))
    cells = _need_list(payload["cells"], "cells")
    axis: Dict[Tuple, Dict] = {}
    seen = set()
    counts = {src: {"cells": 0, "agree": 0, "meet_bar": 0} for src in cfg["sources"]}
    for i, c in enumerate(cells):
        key = f"cells[{i}]"
        ident, rho = _c5_cell(c, key, cfg)
        if ident in seen:
            src, L, d, probe, l = ident
            raise ValueError(f"{key}: a second cell for source {src}, L = {L}, d = {d}, "
                             f"{probe} probe, l = {l}")
        seen.add(ident)
        src, L, d, probe, l = ident
        if probe == "axis":
            axis[(src, L, d, l)] = c
        if rho is not None:
            counts[src]["cells"] += 1
            counts[src]["agree"] += bool(c["agrees"])
            counts[src]["meet_bar"] += bool(c["meets_bar"])
    _c5_summary(_need_dict(payload["summary"], "summary"), cfg["sources"], counts)
    for i, t in enumerate(_need_list(payload["training"], "training")):
        _need_dict(t, f"training[{i}]")
    agreement = _need_bool(payload["agreement"], "agreement", null=False)
    want = all(c["agrees"] for c in cells if c["agrees"] is not None)
    if agreement != want:
        raise ValueError(f"agreement: {agreement}, but the cells give {want}")
    return axis


def _c5_config(cfg: Dict) -> Dict:
    """The checked parts of a C5 ``config``: Ls, degrees, lmax, sources, the thresholds,
    the calibration bar and the ring's target degree."""
    _need_keys(cfg, ("Ls", "degrees", "lmax", "sources", "thresholds", "calibration_bar"),
               "config")
    out = {"Ls": _degree_list(cfg["Ls"], "config.Ls"),
           "degrees": _degree_list(cfg["degrees"], "config.degrees", MAX_DEGREES),
           "lmax": _need_int(cfg["lmax"], "config.lmax", 0, MAX_LMAX)}
    sources = _need_list(cfg["sources"], "config.sources")
    if not sources:
        raise ValueError("config.sources: empty")
    for i, src in enumerate(sources):
        _need_choice(src, SOURCES, f"config.sources[{i}]")
    if len(set(sources)) != len(sources):
        raise ValueError(f"config.sources: repeats a source: {sources}")
    out["sources"] = sources
    out["thresholds"] = _thresholds(cfg["thresholds"], "config.thresholds")
    out["bar"] = _thresholds(cfg["calibration_bar"], "config.calibration_bar")
    for k in ("n_structures", "n_train", "n_test", "seed", "channels", "folds"):
        if k in cfg:
            _need_int(cfg[k], f"config.{k}", 0)
    out["ring_degree"] = cfg.get("ring_target_degree", RING_DEGREE)
    _need_int(out["ring_degree"], "config.ring_target_degree", 0)
    return out


def _c5_cell(c, key: str, cfg: Dict) -> Tuple[Tuple, Optional[float]]:
    """Check one C5 cell against the config and the theorem's rule; returns its identity
    ``(source, L, d, probe, l)`` and its rho."""
    _need_dict(c, key)
    _need_keys(c, ("features", "source", "L", "d", "probe", "l", "rho", "predicted",
                   "agrees", "meets_bar", "k"), key)
    src = _need_choice(c["source"], cfg["sources"], f"{key}.source")
    L = _need_choice_int(c["L"], cfg["Ls"], f"{key}.L", "config.Ls")
    d = _need_choice_int(c["d"], cfg["degrees"], f"{key}.d", "config.degrees")
    probe = _need_choice(c["probe"], ("axis", "ring"), f"{key}.probe")
    ring_degree = cfg["ring_degree"]
    if probe == "axis":
        l = _need_int(c["l"], f"{key}.l", 0, cfg["lmax"])
    else:
        l = _need_choice_int(c["l"], [ring_degree], f"{key}.l", "config.ring_target_degree")
    label = "ideal" if src == "ideal" else f"L{L}-{src}"
    if c["features"] != label:
        raise ValueError(f"{key}.features: {_show(c['features'])}, but source {src} at "
                         f"L = {L} is {label!r}")
    rho = _need_rho(c["rho"], f"{key}.rho")
    predicted = _need_choice(c["predicted"], _PREDICTED, f"{key}.predicted")
    ceiling = d * L
    seen_by_theorem = (l <= ceiling) if probe == "axis" else (ceiling >= ring_degree)
    if (predicted == RECOVERABLE) != seen_by_theorem:
        raise ValueError(f"{key}.predicted: {predicted} at l = {l}, but the ceiling d * L "
                         f"= {d} * {L} = {ceiling} makes it "
                         f"{RECOVERABLE if seen_by_theorem else BLIND}")
    for flag, th in (("agrees", cfg["thresholds"]), ("meets_bar", cfg["bar"])):
        got = _need_bool(c[flag], f"{key}.{flag}")
        want = agrees(rho, predicted, th)
        if got != want:
            raise ValueError(f"{key}.{flag}: {_show(got)}, but rho {_show(rho)} with "
                             f"prediction {predicted} gives {_show(want)}")
    _need_int(c["k"], f"{key}.k", 1)
    return (src, L, d, probe, l), rho


def _c5_summary(summary: Dict, sources, counts: Dict) -> None:
    """Each source's counts in ``summary`` equal those the cells give."""
    for src in sources:
        if src not in summary:
            raise ValueError(f"summary: no entry for source {src!r}")
        entry = _need_dict(summary[src], f"summary.{src}")
        _need_keys(entry, ("cells", "agree", "meet_bar"), f"summary.{src}")
        for k, want in counts[src].items():
            got = _need_int(entry[k], f"summary.{src}.{k}", 0)
            if got != want:
                raise ValueError(f"summary.{src}.{k}: {got}, but the cells give {want}")
    extra = sorted(set(summary) - set(sources))
    if extra:
        raise ValueError(f"summary: sources {extra} are not in config.sources")


def _need_choice_int(x, allowed: Sequence[int], key: str, where: str) -> int:
    value = _need_int(x, key)
    if value not in allowed:
        raise ValueError(f"{key}: {value} is not in {where} {list(allowed)}")
    return value


_SUMMARY_KEYS = ("ceiling", "measured_ceiling", "rho", "rho_ci", "r2_inj", "r2_inj_ci",
                 "gain", "gain_ci", "rho_boundary", "rho_above", "cliff_ratio",
                 "cliff_ratio_ci", "delta_contrast", "delta_contrast_ci", "agreement")
_CELL_KEYS = ("d", "l", "predicted", "rho", "rho_ci", "r2_inj", "measured", "agrees")
_PROBE_KEYS = ("backbone", "d", "l", "rho", "r2_inj", "gain")
_SWEEP_KEYS = ("backbone", "channels_per_degree", "k", "monomials", "d", "l", "rho")


def _exact_keys(m: Dict, keys: Sequence[str], key: str) -> None:
    _need_keys(m, keys, key)
    extra = sorted(set(m) - set(keys))
    if extra:
        raise ValueError(f"{key}: unknown keys {', '.join(map(str, extra))}")


def _by_degree(m, key: str, lmax: int, check) -> Dict[int, object]:
    """An object keyed by target degree ``l <= lmax``, each value checked by ``check``."""
    out = {}
    for k, v in _need_dict(m, key).items():
        l = _degree_key(k, key, lmax)
        out[l] = check(v, f"{key}.{k}")
    return out


def _backbone_L(b: Dict, key: str) -> int:
    L = _need_int(b["L"], f"{key}.L", 1)
    irreps = b.get("irreps_out")
    if irreps not in (None, ""):
        from e3nn import o3

        _need_str(irreps, f"{key}.irreps_out")
        try:
            ls = [ir.l for _, ir in o3.Irreps(irreps)]
        except (ValueError, AssertionError, TypeError):
            raise ValueError(f"{key}.irreps_out: {_show(irreps)} is not an e3nn Irreps") from None
        if max(ls, default=0) != L:
            raise ValueError(f"{key}.L: {L}, but irreps_out {_show(irreps)} has highest "
                             f"degree {max(ls, default=0)}")
    return L


def validate_diagnose_results(payload) -> None:
    """Check a diagnose ``results.json`` dictionary (docs/results_schema.md) as far as the
    comparison and :meth:`DiagnoseResult.from_dict` read it; ``ValueError`` naming the first
    bad key."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    if "training" in payload and "backbones" not in payload:
        raise ValueError("this is a results.json of empirical c5, not of empirical diagnose")
    _need_keys(payload, ("schema_version", "config", "backbones", "predicted", "summary",
                         "cells"), "top level")
    _check_schema(payload, DIAGNOSE_SCHEMAS)
    cfg = _need_dict(payload["config"], "config")
    _need_keys(cfg, ("degrees", "lmax"), "config")
    degrees = _degree_list(cfg["degrees"], "config.degrees", MAX_DEGREES)
    lmax = _need_int(cfg["lmax"], "config.lmax", 0, MAX_LMAX)
    L = _diagnose_backbones(_need_list(payload["backbones"], "backbones"))
    for part in ("predicted", "summary"):
        m = _need_dict(payload[part], part)
        got = sorted(_degree_key(k, part) for k in m)
        if got != sorted(degrees):
            raise ValueError(f"{part}: probe degrees {got}, but config.degrees is "
                             f"{sorted(degrees)}")
    recoverable = {int(k): _diagnose_prediction(p, f"predicted.{k}", int(k), L, lmax)
                   for k, p in payload["predicted"].items()}
    for k, s in payload["summary"].items():
        _diagnose_summary(s, f"summary.{k}", int(k), L, lmax, recoverable[int(k)],
                          payload["schema_version"])
    seen = set()
    for i, c in enumerate(_need_list(payload["cells"], "cells")):
        ident = _diagnose_cell(c, f"cells[{i}]", degrees, lmax, recoverable,
                               payload["schema_version"])
        if ident in seen:
            raise ValueError(f"cells[{i}]: a second cell for d = {ident[0]}, l = {ident[1]}")
        seen.add(ident)
    for part, keys in (("probes", _PROBE_KEYS), ("k_sweep", _SWEEP_KEYS)):
        for i, r in enumerate(_need_list(payload.get(part, []), part)):
            _diagnose_row(r, f"{part}[{i}]", keys, degrees, lmax)
    _need_dict(payload.get("paper", {}), "paper")
    for i, w in enumerate(_need_list(payload.get("warnings", []), "warnings")):
        _need_str(w, f"warnings[{i}]")


def _diagnose_backbones(backbones: List) -> int:
    """Check each backbone record; returns their common L (a run pools one L)."""
    if not backbones:
        raise ValueError("backbones: empty")
    Ls = []
    for i, b in enumerate(backbones):
        key = f"backbones[{i}]"
        _need_dict(b, key)
        _need_keys(b, ("name", "L"), key)
        _need_str(b["name"], f"{key}.name")
        Ls.append(_backbone_L(b, key))
        for k in ("source", "dtype"):
            if k in b:
                _need_str(b[k], f"{key}.{k}")
        if "sha256" in b:
            _need_str(b["sha256"], f"{key}.sha256", null=True)
        if "seed" in b:
            _need_int(b["seed"], f"{key}.seed", -1)
        for k in ("test_energy_mae_meV", "test_force_mae_meV_per_A", "eps_eV",
                  "energy_error_rmse_meV"):
            if k in b:
                _need_num(b[k], f"{key}.{k}", 0.0, math.inf)
        if "equivariance_error" in b:
            for k, v in _need_dict(b["equivariance_error"], f"{key}.equivariance_error").items():
                _need_num(v, f"{key}.equivariance_error.{k}", 0.0, math.inf, null=False)
        if "equivariant" in b:
            _need_bool(b["equivariant"], f"{key}.equivariant")
    if len(set(Ls)) != 1:
        raise ValueError(f"backbones: the run mixes backbone degrees L = {sorted(set(Ls))}")
    return Ls[0]


def _diagnose_prediction(p, key: str, d: int, L: int, lmax: int) -> set:
    """Check one ``predicted`` entry (its ceiling is d * L); returns its recoverable set."""
    _need_dict(p, key)
    _need_keys(p, ("ceiling", "recoverable"), key)
    _ceiling(p["ceiling"], f"{key}.ceiling", d, L)
    rec = [_need_int(v, f"{key}.recoverable[{i}]", 0, min(lmax, d * L))
           for i, v in enumerate(_need_list(p["recoverable"], f"{key}.recoverable"))]
    if len(set(rec)) != len(rec):
        raise ValueError(f"{key}.recoverable: repeats a degree: {rec}")
    return set(rec)


def _diagnose_summary(s, key: str, d: int, L: int, lmax: int, recoverable: set,
                      schema: int) -> None:
    """Check one probe degree's summary: types, intervals, and every figure that follows
    from its own rho (measured ceiling, boundary and above-boundary rho, agreement)."""
    _need_dict(s, key)
    _need_keys(s, _SUMMARY_KEYS, key)
    ceiling = _ceiling(s["ceiling"], f"{key}.ceiling", d, L)
    rho = _by_degree(s["rho"], f"{key}.rho", lmax, _need_rho)
    ci = _by_degree(s["rho_ci"], f"{key}.rho_ci", lmax,
                    lambda v, kk: _interval(v, kk, rho=True))
    if sorted(ci) != sorted(rho):
        raise ValueError(f"{key}.rho_ci: degrees {sorted(ci)}, but rho has {sorted(rho)}")
    for name in ("r2_inj", "gain"):
        _by_degree(s[name], f"{key}.{name}", lmax, _need_num)
        _by_degree(s[f"{name}_ci"], f"{key}.{name}_ci", lmax,
                   lambda v, kk: _interval(v, kk, rho=False))
    got = _need_int(s["measured_ceiling"], f"{key}.measured_ceiling", 0, lmax, null=True)
    want = measured_ceiling(rho)
    if got != want:
        raise ValueError(f"{key}.measured_ceiling: {got}, but its rho gives {want}")
    for name, l in (("rho_boundary", ceiling), ("rho_above", ceiling + 1)):
        v = _need_rho(s[name], f"{key}.{name}")
        if v != rho.get(l):
            raise ValueError(f"{key}.{name}: {_show(v)}, but rho at l = {l} is "
                             f"{_show(rho.get(l))}")
    _need_num(s["cliff_ratio"], f"{key}.cliff_ratio")
    if s["cliff_ratio_ci"] is not None and not isinstance(s["cliff_ratio_ci"], (dict, list)):
        raise ValueError(f"{key}.cliff_ratio_ci: expected an object or null, got "
                         f"{_show(s['cliff_ratio_ci'])}")
    _need_num(s["delta_contrast"], f"{key}.delta_contrast")
    _interval(s["delta_contrast_ci"], f"{key}.delta_contrast_ci", rho=False)
    agreement = _need_bool(s["agreement"], f"{key}.agreement")
    if schema >= 3:      # the status from the intervals; agreement follows it
        _diagnose_status(s, key, ceiling, {int(l): v for l, v in s["rho_ci"].items()},
                         agreement)
    elif schema >= 2:    # schema 1 had no null (untested) agreement
        want = _agreement(rho, recoverable, ceiling, lmax)
        if agreement != want:
            raise ValueError(f"{key}.agreement: {_show(agreement)}, but its rho and "
                             f"prediction give {_show(want)}")


def _diagnose_status(s, key: str, ceiling: int, ci: Dict, agreement) -> None:
    """A schema 3 summary's ``status``: a degree status, the one its intervals give
    (docs/method.md §2.8), with ``agreement`` true exactly for ``agrees``."""
    _need_keys(s, ("status",), key)
    status = _need_choice(s["status"], DEGREE_STATUSES, f"{key}.status")
    cells = {l: cell_status(l, ceiling, v) for l, v in ci.items() if l >= 1}
    want = degree_status(cells, ceiling)
    if status != want:
        raise ValueError(f"{key}.status: {status}, but its rho intervals give {want}")
    if agreement != agreement_of(status):
        raise ValueError(f"{key}.agreement: {_show(agreement)}, but its status {status} "
                         f"gives {_show(agreement_of(status))}")


def _diagnose_cell(c, key: str, degrees, lmax: int, recoverable: Dict[int, set],
                   schema: int = DIAGNOSE_SCHEMA_VERSION) -> Tuple:
    """Check one (d, l) cell: its prediction against ``predicted``, its verdict against its
    rho (and, from schema 3, its status against its interval); returns ``(d, l)``."""
    _exact_keys(_need_dict(c, key), _CELL_KEYS + (("status",) if schema >= 3 else ()), key)
    d = _need_choice_int(c["d"], degrees, f"{key}.d", "config.degrees")
    l = _need_int(c["l"], f"{key}.l", 0, lmax)
    predicted = _need_choice(c["predicted"], _PREDICTED, f"{key}.predicted")
    if predicted != (RECOVERABLE if l in recoverable[d] else BLIND):
        raise ValueError(f"{key}.predicted: {predicted} at l = {l}, but predicted.{d}"
                         f".recoverable is {sorted(recoverable[d])}")
    rho = _need_rho(c["rho"], f"{key}.rho")
    _interval(c["rho_ci"], f"{key}.rho_ci", rho=True)
    _need_num(c["r2_inj"], f"{key}.r2_inj")
    measured = _need_choice(c["measured"], (RECOVERABLE, BLIND, AMBIGUOUS, UNDEFINED),
                            f"{key}.measured")
    if measured != verdict(rho):
        raise ValueError(f"{key}.measured: {measured}, but rho {_show(rho)} gives "
                         f"{verdict(rho)}")
    got = _need_bool(c["agrees"], f"{key}.agrees")
    if got != (None if measured == UNDEFINED else measured == predicted):
        raise ValueError(f"{key}.agrees: {_show(got)}, but measured {measured} against "
                         f"predicted {predicted}")
    if schema >= 3:
        status = _need_choice(c["status"], CELL_STATUSES, f"{key}.status")
        want = cell_status(l, l if predicted == RECOVERABLE else l - 1, c["rho_ci"])
        if status != want:
            raise ValueError(f"{key}.status: {status}, but its interval {_show(c['rho_ci'])} "
                             f"gives {want}")
    return d, l


def _diagnose_row(r, key: str, keys: Sequence[str], degrees, lmax: int) -> None:
    """Check one ``probes`` or ``k_sweep`` row (exactly ``keys``)."""
    _exact_keys(_need_dict(r, key), keys, key)
    _need_str(r["backbone"], f"{key}.backbone")
    _need_choice_int(r["d"], degrees, f"{key}.d", "config.degrees")
    _need_int(r["l"], f"{key}.l", 0, lmax)
    _need_rho(r["rho"], f"{key}.rho")
    for k in keys:
        if k in ("r2_inj", "gain"):
            _need_num(r[k], f"{key}.{k}")
        elif k in ("channels_per_degree", "k", "monomials"):
            _need_int(r[k], f"{key}.{k}", 1)


def _agreement(rho: Dict[int, Optional[float]], recoverable: set, ceiling: int,
               lmax: int) -> Optional[bool]:
    """A summary's ``agreement`` as the diagnostic computes it: False if a defined verdict
    contradicts the prediction, None when no degree above the ceiling was measured."""
    agree = all(verdict(r) in (UNDEFINED, RECOVERABLE if l in recoverable else BLIND)
                for l, r in rho.items())
    return None if agree and ceiling + 1 > lmax else agree


def _ceiling(x, key: str, d: int, L: int) -> int:
    value = _need_int(x, key, 0)
    if value != d * L:
        raise ValueError(f"{key}: {value}, but d * L = {d} * {L} = {d * L} (the file's own "
                         f"d and backbone L)")
    return value


# ------------------------------------------------------------------------------ comparison

def _c5_result(c5: Union[C5Result, Dict]) -> C5Result:
    """``c5`` as checked records (``ValueError`` starting ``"C5 results: "``)."""
    try:
        if isinstance(c5, C5Result):
            validate_c5_results(c5.to_dict())
            return c5
        return C5Result.from_dict(c5)
    except ValueError as exc:
        raise ValueError(f"C5 results: {exc}") from None


def _aspirin_result(aspirin: Union[DiagnoseResult, Dict]) -> DiagnoseResult:
    """``aspirin`` as checked records (``ValueError`` starting ``"aspirin results: "``)."""
    try:
        validate_diagnose_results(aspirin.to_dict() if isinstance(aspirin, DiagnoseResult)
                                  else aspirin)
    except ValueError as exc:
        raise ValueError(f"aspirin results: {exc}") from None
    return aspirin if isinstance(aspirin, DiagnoseResult) else DiagnoseResult.from_dict(aspirin)


def _rows_of_degree(s, axis: Dict[Tuple, C5Cell], sources: List[str], L: int
                    ) -> Tuple[List[Dict], List[str]]:
    """The rows of one probe degree (``s``: the aspirin summary at ``d``) and the cells
    that do not meet the prediction, named. The aspirin cell is judged by its status
    (its 95 % interval, docs/method.md §2.8): ``aspirin_agrees`` is true for recovered or
    blind as predicted, false for not_recovered or exceeds, null when undecided; each C5
    cell by the calibration's own rule."""
    rows, bad = [], []
    meets = {"recovered": True, "blind": True, "not_recovered": False, "exceeds": False}
    for l, rho in sorted(s.rho.items()):
        if l == 0:
            continue
        predicted = "recoverable" if l <= s.ceiling else "blind"
        status = cell_status(l, s.ceiling, s.rho_ci[l])
        row = {"d": s.d, "l": l, "predicted": predicted, "aspirin_rho": rho,
               "aspirin_rho_ci": None if s.rho_ci[l] is None else s.rho_ci[l].to_list(),
               "aspirin_status": status, "aspirin_agrees": meets.get(status)}
        for src in sources:
            cell = axis.get((src, L, s.d, l))
            row[f"c5_{src}_rho"] = None if cell is None else cell.rho
            row[f"c5_{src}_agrees"] = None if cell is None else cell.agrees
        rows.append(row)
        bad += [f"{key.replace('c5_', 'C5 ')} at l = {l}"
                for key in ["aspirin"] + [f"c5_{src}" for src in sources]
                if row[f"{key}_agrees"] is False]
    return rows, bad


def compare(c5: Union[C5Result, Dict], aspirin: Union[DiagnoseResult, Dict]) -> Dict:
    """The comparison as a JSON-ready dict: ``rows`` (d, l, predicted, C5 rho per source,
    aspirin rho and interval, agreement flags) and ``paragraph``. ``c5`` is a
    :class:`C5Result` or its ``results.json`` dictionary, ``aspirin`` a
    :class:`DiagnoseResult` or its. Both are validated first (``ValueError`` naming the bad
    key: ``"C5 results: ..."``, ``"aspirin results: ..."``); ``ValueError`` too when the C5
    run lacks the aspirin backbones' ``L``."""
    c5 = _c5_result(c5)
    aspirin = _aspirin_result(aspirin)
    L = aspirin.L
    if L not in c5.config.Ls:
        raise ValueError(f"the C5 run has no L = {L} (it has {c5.config.Ls}): rerun "
                         f"empirical c5 with --L {L}")
    sources = list(c5.config.sources)
    axis = {(c.source, c.L, c.d, c.l): c for c in c5.cells if c.probe == "axis"}
    rows: List[Dict] = []
    sentences: List[str] = []
    for d, s in sorted(aspirin.summaries.items()):
        if d not in c5.config.degrees:
            continue
        mine, bad = _rows_of_degree(s, axis, sources, L)
        rows += mine
        words = STATUS_WORDS.get(s.status, s.status)
        if bad:
            sentences.append(f"d = {d} (ceiling {s.ceiling}): aspirin {words}; the "
                             f"prediction is not met by: {'; '.join(bad)}.")
        elif s.status != "agrees":
            sentences.append(f"d = {d} (ceiling {s.ceiling}): the C5 calibration "
                             f"({', '.join(sources)} features) meets the prediction at every "
                             f"l; aspirin {words} (status from its 95 % intervals).")
        else:
            sentences.append(f"d = {d} (ceiling {s.ceiling}): the C5 calibration "
                             f"({', '.join(sources)} features), aspirin and the theorem agree "
                             f"at every l: recovered up to l = {s.ceiling}, blind above.")
    if not rows:
        raise ValueError(f"the C5 run (d = {list(c5.config.degrees)}) and the aspirin "
                         f"run (d = {aspirin.degrees}) share no probe degree with l > 0: "
                         f"nothing to compare")
    return {"L": L, "sources": sources, "rows": rows, "paragraph": " ".join(sentences),
            "agreement": all(r[k] is not False for r in rows for k in r if k.endswith("agrees"))
            and all(s.status in ("agrees", "untested") for d, s in aspirin.summaries.items()
                    if d in c5.config.degrees)}


def _figure(cmp: Dict, d: int) -> bytes:
    """The overlay of one probe degree: the predicted step, every C5 source's rho(l) and
    the aspirin mean rho(l) with its bootstrap interval."""
    plt = pyplot()
    rows = [r for r in cmp["rows"] if r["d"] == d]
    ls = [r["l"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    try:
        step = [1.0 if r["predicted"] == "recoverable" else 0.0 for r in rows]
        ax.step(ls, step, where="mid", color="k", lw=1.2, ls="--", label="predicted (spanthm)")
        markers = {"ideal": "s", "random": "v", "trained": "^"}
        for src in cmp["sources"]:
            ys = [r[f"c5_{src}_rho"] for r in rows]
            ax.plot(ls, [float("nan") if y is None else y for y in ys],
                    marker=markers.get(src, "o"), lw=0.8, alpha=0.8, label=f"C5 {src}")
        ys = [float("nan") if r["aspirin_rho"] is None else r["aspirin_rho"] for r in rows]
        lo = [y - (r["aspirin_rho_ci"][0] if r["aspirin_rho_ci"] and r["aspirin_rho_ci"][0]
                   is not None else y) for y, r in zip(ys, rows)]
        hi = [(r["aspirin_rho_ci"][1] if r["aspirin_rho_ci"] and r["aspirin_rho_ci"][1]
               is not None else y) - y for y, r in zip(ys, rows)]
        ax.errorbar(ls, ys, yerr=[[max(v, 0) for v in lo], [max(v, 0) for v in hi]], fmt="o",
                    color="C3", ms=6, capsize=3, label="aspirin (mean, 95 % CI)")
        ax.set_xlabel("target degree l")
        ax.set_ylabel("held-out rho")
        ax.set_ylim(-0.3, 1.1)
        ax.set_title(f"calibration vs aspirin, L = {cmp['L']}, d = {d}")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return png_bytes(fig)


def _report(cmp: Dict) -> str:
    srcs = cmp["sources"]
    rows = [[r["d"], r["l"], r["predicted"]] + [num(r[f"c5_{s}_rho"]) for s in srcs]
            + [with_interval(r["aspirin_rho"], r["aspirin_rho_ci"])
               + (f" {r['aspirin_status']}" if r.get("aspirin_status") else "")]
            for r in cmp["rows"]]
    ds = sorted({r["d"] for r in cmp["rows"]})
    lines = ["# Calibration versus aspirin", "", cmp["paragraph"], "",
             table(["d", "l", "predicted"] + [f"C5 {s}" for s in srcs]
                   + ["aspirin mean rho [95 % CI] status"], rows), ""]
    lines += [f"![d = {d}](compare_d{d}.png)" for d in ds]
    return "\n".join(lines) + "\n"


def write_compare_outputs(cmp: Dict, out_dir: Path, overwrite: bool = False,
                          as_set: bool = True, inputs=(), render_only: bool = False):
    """``compare.json``, ``compare.md`` and ``compare_d{d}.png``: as one set into
    ``out_dir`` (which must not hold files unless ``overwrite``, nor be or hold any of
    ``inputs``), or, with ``as_set=False``, each file atomically beside others; with
    ``render_only``, returned as ``{name: bytes}`` unwritten (the reproduction's index
    folder writes them with its own files)."""
    ds = sorted({r["d"] for r in cmp["rows"]})
    files = {f"compare_d{d}.png": _figure(cmp, d) for d in ds}
    files["compare.md"] = _report(cmp).encode()
    files["compare.json"] = (json.dumps(cmp, indent=1) + "\n").encode()
    if render_only:
        return files
    if as_set:
        return write_file_set(out_dir, files, overwrite=overwrite, inputs=inputs)
    return write_files(out_dir, files)
