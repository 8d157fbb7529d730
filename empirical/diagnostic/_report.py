"""Outputs of the spectral-injection diagnostic (docs/method.md §5): ``results.json``,
``report.md`` and the PNG plots of one :class:`~empirical.diagnostic.DiagnoseResult`.

Every function here reads the result's typed records (:mod:`empirical.diagnostic._result`:
``config``, ``backbones``, ``predicted``, ``probes``, ``summaries``, ``cells``,
``k_sweep``, ``paper``, ``warnings``), never the ``results.json`` dictionary; a result read
back from disk (``DiagnoseResult.from_dict(json.loads(text))``) renders the same report.

:func:`write_outputs` computes everything first (the report text and every PNG, rendered
into memory) and only then creates the directory and writes the files, each atomically
(:func:`spanthm.io.atomic_path`): an error in the content writes nothing, and an
interrupted write leaves no half-written file.

Files
-----
* ``results.json``: exactly :meth:`DiagnoseResult.to_json` (its :meth:`to_dict`).
* ``report.md``: what was run, the headline table per probe degree ``d``, the boundary
  figures, the paper comparison (``d = 2`` with ceiling 4), the capacity sweep, the
  per-backbone numbers, the verdict (each degree's status in words, docs/method.md §2.8:
  for ``violates`` the usual causes and the backbones whose equivariance check failed, for
  ``undecided`` what would decide it, for ``boundary_not_reached`` that the upper bound
  holds), warnings, bootstrap caveat, thresholds, versions and the plots. Deterministic given the records, except its last line (the run
  time, from ``result.seconds``). The cliff ratio is printed with its Fieller-type
  confidence set (docs/method.md §2.7), which may be unbounded, and is to be read with
  ``rho(dL + 1)`` and its interval.
* ``frequency_response_d{d}.png`` for every ``d``, ``frequency_response.png`` (all ``d``,
  one row each), ``k_sweep.png`` (when the result has capacity-sweep rows) and
  ``capacity.png`` (when a degree's boundary was refitted at several widths); written
  only with ``plots=True``. ``l = 0`` is left out of every plot: its target is constant
  and ``rho`` undefined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import write_file_set
from ..render import MISSING, interval, num, png_bytes, pyplot, table, with_interval
from ._verdict import (AGREES, BLIND, BLIND_BAND, BOUNDARY_NOT_REACHED, STATUS_WORDS,
                       THRESHOLDS, UNDECIDED, UNTESTED, VIOLATES, verdict)
from .statistics import Interval, RatioConfidenceSet

__all__ = ["write_outputs", "render_report", "render_plots", "plot_names",
           "frequency_response_figure", "k_sweep_figure", "capacity_figure", "ratio_set",
           "cliff_ratio_text"]

#: Change of the mean boundary rho between the two largest sweep widths below which the
#: probe's capacity is called saturated.
SATURATION_TOL = 0.05
#: Lower limit of the R2_inj axis (R2_inj is unbounded below).
R2_FLOOR = -1.5


# --------------------------------------------------------------------------- formatting

def _ci_defined(ci) -> bool:
    """An interval with both bounds (an :class:`Interval` or a ``[low, high]`` pair)."""
    return ci is not None and len(ci) == 2 and Interval.from_list(ci).defined


def _mean_defined(values: Sequence) -> Optional[float]:
    """Mean of ``values``; ``None`` when empty or any value is undefined."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


def _sig(x: float) -> str:
    """``x`` to 4 significant digits, as the ends of a :class:`RatioConfidenceSet`."""
    return f"{float(x):.4g}"


# --------------------------------------------------------------------------- cliff ratio

def ratio_set(ci) -> Optional[RatioConfidenceSet]:
    """The :class:`~empirical.diagnostic.statistics.RatioConfidenceSet` of a
    ``summary[d].cliff_ratio_ci`` entry (schema 2); ``None`` for ``None`` or a schema 1
    ``[low, high]`` list.

    >>> s = ratio_set({"kind": "two_rays", "pieces": [[None, -583.0], [20.4, None]],
    ...                "abs_lower_bound": 20.4, "level": 0.95, "method": "Fieller"})
    >>> s.kind, str(s)
    ('two_rays', '(-inf, -583] U [20.4, inf)')
    >>> ratio_set([1.0, 2.0]) is None
    True
    """
    if not isinstance(ci, dict):
        return None
    return RatioConfidenceSet(kind=ci["kind"], pieces=tuple(tuple(p) for p in ci["pieces"]),
                              level=float(ci.get("level", 0.95)),
                              abs_lower_bound=float(ci["abs_lower_bound"]))


def _level(s: RatioConfidenceSet) -> str:
    return f"{100 * s.level:g} %"


def _pieces(s: RatioConfidenceSet) -> str:
    """The pieces of ``s`` as text (``str(s)``; the whole line as ``(-inf, inf)``)."""
    return "(-inf, inf)" if s.kind == "unbounded" else str(s)


def cliff_ratio_text(x: Optional[float], ci) -> str:
    """The cliff ratio ``x`` with its confidence set ``ci`` (a ``cliff_ratio_ci`` entry:
    the schema 2 dictionary, a schema 1 ``[low, high]`` list, or ``None``), for running
    text: the point estimate to 1 decimal, the set's ends to 4 significant digits; an
    unbounded set (two rays, one ray or the whole line) says so, with the lower bound on
    ``|ratio|`` that it supports.

    >>> cliff_ratio_text(11.3, {"kind": "interval", "pieces": [[6.1, 40.2]],
    ...                         "abs_lower_bound": 6.1, "level": 0.95})
    '11.3, 95 % confidence set [6.1, 40.2]'
    >>> cliff_ratio_text(120.7, {"kind": "two_rays", "pieces": [[None, -58.0], [2.4, None]],
    ...                          "abs_lower_bound": 2.4, "level": 0.95})
    '120.7 (95 % confidence set (-inf, -58] U [2.4, inf): unbounded; |ratio| >= 2.4 is supported)'
    >>> cliff_ratio_text(3.0, {"kind": "unbounded", "pieces": [[None, None]],
    ...                        "abs_lower_bound": 0.0, "level": 0.95})
    '3.0 (95 % confidence set (-inf, inf): unbounded; no lower bound on |ratio| is supported)'
    >>> cliff_ratio_text(None, None)
    'undefined'
    """
    if x is None:
        return MISSING
    if ci is None:
        return f"{num(x, 1)}, confidence set {MISSING}"
    if not isinstance(ci, dict):   # schema 1: percentile interval of per-resample ratios
        return (f"{num(x, 1)}, 95 % percentile interval {interval(ci, 1)} (a schema 1 file: "
                "not a valid interval when rho(dL + 1)'s interval contains 0)")
    s = ratio_set(ci)
    if s.kind == "interval":
        return f"{num(x, 1)}, {_level(s)} confidence set {_pieces(s)}"
    if s.abs_lower_bound > 0:
        bound = f"|ratio| >= {_sig(s.abs_lower_bound)} is supported"
    else:
        bound = "no lower bound on |ratio| is supported"
    return f"{num(x, 1)} ({_level(s)} confidence set {_pieces(s)}: unbounded; {bound})"


def _cliff_cell(x: Optional[float], ci) -> str:
    """The cliff ratio with its set for a Markdown table cell (no ``|``)."""
    if x is None:
        return MISSING
    s = ratio_set(ci)
    if s is None:
        return with_interval(x, ci, 1)
    return f"{num(x, 1)} {_pieces(s)}" + ("" if s.kind == "interval" else " (unbounded)")


# --------------------------------------------------------------------------- result views

def _backbone_names(result) -> List[str]:
    names = [b.name for b in result.backbones]
    for p in result.probes:
        if p.backbone not in names:
            names.append(p.backbone)
    return names


def _thresholds(result) -> Dict[str, float]:
    th = result.config.get("thresholds") or THRESHOLDS
    return {"recoverable": float(th["recoverable"]), "blind": float(th["blind"])}


def _sweep_table(result):
    """Capacity sweep: ``(widths, cols, mean, per)`` with ``widths`` the sorted
    ``(channels_per_degree, k)``, ``cols`` the sorted ``(d, l)``, ``mean[(m, d, l)]`` the
    mean rho over backbones and ``per[(m, d, l)]`` the per-backbone ``(name, rho)``."""
    per: Dict[Tuple[int, int, int], List] = {}
    k_of: Dict[int, int] = {}
    for row in result.k_sweep:
        m, d, l = int(row.channels_per_degree), int(row.d), int(row.l)
        k_of.setdefault(m, int(row.k))
        per.setdefault((m, d, l), []).append((row.backbone, row.rho))
    widths = sorted(k_of.items())
    cols = sorted({(d, l) for (_, d, l) in per})
    mean = {key: _mean_defined([r for _, r in rows]) for key, rows in per.items()}
    return widths, cols, mean, per


# --------------------------------------------------------------------------- report.md

def _run_paragraph(result) -> str:
    c = result.config
    ds = c.get("dataset", {})
    parts = []
    parts.append(f"Dataset: {ds.get('source', MISSING)}, {ds.get('frames_used', '?')} of "
                 f"{ds.get('frames_total', '?')} frames used (sha256 "
                 f"{str(ds.get('sha256', MISSING))[:12]}...).")
    atoms = c.get("marked_atoms")
    labels = c.get("marked_labels")
    if atoms is not None:
        lab = f" ({labels[0]}, {labels[1]})" if labels else ""
        parts.append(f"Marked atoms {atoms[0]}, {atoms[1]} (0-based){lab}; the marked "
                     "direction points from the first to the second.")
    bbs = []
    for b in result.backbones:
        desc = f"{b.name} (L = {b.L}"
        e_mae, f_mae = b.test_energy_mae_meV, b.test_force_mae_meV_per_A
        if e_mae is not None or f_mae is not None:
            desc += (f"; held-out energy MAE {num(e_mae, 2)} meV, force MAE "
                     f"{num(f_mae, 2)} meV/A")
        desc += ")"
        bbs.append(desc)
    parts.append(f"{len(bbs)} backbone(s): {', '.join(bbs)}.")
    k = c.get("k", {}) or {}
    k_txt = ", ".join(f"k = {k[str(d)]} for d = {d}" for d in result.degrees if str(d) in k)
    degs = ", ".join(str(d) for d in c.get("degrees", result.degrees))
    parts.append(f"Probe degrees d = {degs}; "
                 f"target degrees l = 0..{result.lmax}; SPN width {k_txt or MISSING} "
                 f"({c.get('k_rule', 'rule not recorded')}).")
    if c.get("spn", "ridge") == "ridge":
        fit = (f"closed-form ridge, penalty chosen by {c.get('folds', '?')}-fold grouped "
               "cross-validation")
    else:
        fit = (f"gradient-trained ({c.get('spn')}: reduction and coefficients learned, early "
               "stopping on a grouped validation part)")
    parts.append(f"Reduction: {c.get('reduction', MISSING)}; SPN fit: {fit}.")
    R = int(c.get("rotations_per_configuration", 1) or 1)
    if R == 1:
        parts.append(f"Samples: n_train = {c.get('n_train', '?')}, n_test = "
                     f"{c.get('n_test', '?')} (held out) configurations, one Haar-random "
                     "rotation each.")
    else:
        parts.append(f"Samples: n_train = {c.get('n_train', '?')}, n_test = "
                     f"{c.get('n_test', '?')} (held out): {c.get('configurations_train', '?')} "
                     f"and {c.get('configurations_test', '?')} configurations, {R} "
                     "Haar-random rotations each (all rotations of a configuration on one "
                     "side of the split).")
    parts.append(f"Bootstrap: {c.get('n_boot', '?')} resamples "
                 f"({c.get('bootstrap', 'hierarchical')}, {c.get('interval', '95% percentile')}"
                 f" intervals); seed {c.get('seed', '?')}.")
    eps = []
    for b in result.backbones:
        e = b.eps_eV
        eps.append(f"{b.name} {num(1e3 * e, 1)} meV" if e is not None
                   else f"{b.name} none (no energy)")
    parts.append(f"Injection amplitude eps: {c.get('eps_rule', MISSING)}; "
                 f"{'; '.join(eps) if eps else MISSING}.")
    return " ".join(parts)


def _headline(result, d: int) -> List[str]:
    s = result.summaries[d]
    cells = {c.l: c for c in result.cells_of(d)}
    prediction = result.predicted.get(d)
    lines = [f"### d = {d} (L = {result.L}, predicted ceiling dL = "
             f"{s.ceiling}, measured ceiling {num(s.measured_ceiling, 0)})", "",
             f"Status: **{STATUS_WORDS.get(s.status, s.status)}** (`{s.status}`).", "",
             "| l | predicted | mean rho [95 % CI] | R2_inj [95 % CI] | gain [95 % CI] | "
             "measured | status |",
             "|---|---|---|---|---|---|---|"]
    for l in sorted(s.rho):
        cell = cells.get(l)
        if cell is not None:
            predicted, measured = cell.predicted, cell.measured
            status = cell.status if l >= 1 else MISSING
        else:
            predicted = prediction.label(l) if prediction is not None else "blind"
            measured, status = MISSING, MISSING
        lines.append(
            f"| {l} | {predicted} | {with_interval(s.rho[l], s.rho_ci.get(l))} | "
            f"{with_interval(s.r2_inj.get(l), s.r2_inj_ci.get(l))} | "
            f"{with_interval(s.gain.get(l), s.gain_ci.get(l))} | "
            f"{measured} | {status} |")
    lines.append("")
    lines.append("l = 0: the target is constant, so rho, R2_inj and the gain are undefined "
                 "and the cell takes no part in the verdict.")
    return lines


def _boundary(result, d: int) -> List[str]:
    s = result.summaries[d]
    dl = int(s.ceiling)
    lmax = result.lmax
    lines = [f"**d = {d}, boundary dL = {dl}.**", ""]
    if not 1 <= dl <= lmax:
        lines.append(f"The boundary degree {dl} lies outside the measured range l = 1..{lmax}: "
                     "no boundary figures.")
        return lines
    above = dl + 1
    lines.append(f"- rho({dl}) = {with_interval(s.rho.get(dl), s.rho_ci.get(dl))}; "
                 f"rho({above}) = "
                 + (with_interval(s.rho.get(above), s.rho_ci.get(above))
                    if above in s.rho else f"not measured (lmax = {lmax})") + ".")
    if above not in s.rho:
        return lines
    lines.append(f"- Cliff ratio rho({dl}) / rho({above}) = "
                 f"{cliff_ratio_text(s.cliff_ratio, s.cliff_ratio_ci)}. Read it together "
                 f"with rho({above}) and its interval, which is the figure to read: the ratio "
                 f"of a large number to one at the noise floor is unstable (its size and sign "
                 f"follow the noise).")
    ci = s.delta_contrast_ci
    if _ci_defined(ci):
        excl = ("excludes 0" if ci[0] > 0 or ci[1] < 0 else "does not exclude 0")
    else:
        excl = "is undefined"
    lines.append(f"- Raw-gain delta contrast G({dl}) - G({above}) = "
                 f"{with_interval(s.delta_contrast, ci)}; the interval {excl}.")
    return lines


def _paper(result) -> List[str]:
    lines = ["## Paper vs this run", ""]
    s = result.summaries.get(2)
    paper = result.paper or {}
    if s is None or int(s.ceiling) != 4:
        lines.append("The paper's headline figures are for d = 2 with ceiling dL = 4 (L = 2); "
                     "this run has no such cell, so there is no comparison.")
        return lines
    p_rho, p_r2 = paper.get("rho", {}) or {}, paper.get("r2_inj", {}) or {}
    rows = [("rho(4)", num(p_rho.get("4")), with_interval(s.rho.get(4), s.rho_ci.get(4))),
            ("rho(5)", num(p_rho.get("5")), with_interval(s.rho.get(5), s.rho_ci.get(5))),
            ("cliff ratio rho(4)/rho(5)", num(paper.get("cliff_ratio"), 1),
             _cliff_cell(s.cliff_ratio, s.cliff_ratio_ci)),
            ("R2_inj(4)", num(p_r2.get("4")), with_interval(s.r2_inj.get(4), s.r2_inj_ci.get(4))),
            ("R2_inj(5)", num(p_r2.get("5")), with_interval(s.r2_inj.get(5), s.r2_inj_ci.get(5)))]
    lines += ["The paper's figures: d = 2 probes of L = 2 NequIP backbones on aspirin.", "",
              "| quantity | paper | this run: mean [95 % CI] |", "|---|---|---|"]
    for name, p, x in rows:
        lines.append(f"| {name} | {p} | {x} |")
    lines += ["", "The cliff ratio's set is its 95 % Fieller-type confidence set (unbounded "
              "when rho(5) is not significantly non-zero); read it with rho(5) and its "
              "interval."]
    return lines


def _capacity(result) -> List[str]:
    widths, cols, mean, per = _sweep_table(result)
    lines = ["## Capacity (k sweep)", ""]
    if not widths:
        lines.append("No capacity sweep was run.")
        return lines
    th = _thresholds(result)
    ceilings = {d: int(s.ceiling) for d, s in result.summaries.items()}
    head = "| channels per degree (k) | " + " | ".join(
        f"d = {d}, l = {l}" + (" (dL)" if l == ceilings.get(d) else " (dL+1)") for d, l in cols)
    lines += [head + " |", "|---|" + "---|" * len(cols)]
    for m, k in widths:
        vals = [(num(mean[(m, d, l)]) if (m, d, l) in mean else "not fitted") for d, l in cols]
        lines.append(f"| {m} ({k}) | " + " | ".join(vals) + " |")
    lines.append("")
    lines.append("Mean rho over backbones; \"not fitted\": that width has more monomials than "
                 "half the training samples.")
    lines.append("")
    for d in sorted({d for d, _ in cols}):
        dl = ceilings.get(d)
        bnd = [(m, k, mean[(m, d, dl)]) for m, k in widths
               if (m, d, dl) in mean and mean[(m, d, dl)] is not None]
        if len(bnd) >= 2:
            (_, k1, r1), (_, k2, r2) = bnd[-2], bnd[-1]
            change = r2 - r1
            sat = (f"rho({dl}) changes by {num(change, signed=True)} between the two largest "
                   f"widths (k = {k1} and {k2}): "
                   + ("saturated" if abs(change) < SATURATION_TOL else "not saturated, a wider "
                      "probe might recover more")
                   + f" (tolerance {SATURATION_TOL})")
        elif len(bnd) == 1:
            sat = (f"rho({dl}) was measured at one width only (k = {bnd[0][1]}): saturation "
                   "cannot be judged")
        else:
            sat = f"rho({dl}) is not defined at any width"
        above = [(m, k, mean[(m, d, dl + 1)]) for m, k in widths if (m, d, dl + 1) in mean]
        if not above:
            blind = f"rho({dl + 1}) was not measured"
        else:
            out = [k for m, k, r in above if verdict(r, th) != BLIND]
            if out:
                blind = (f"rho({dl + 1}) leaves the blind threshold (|rho| <= {th['blind']}) "
                         f"at k = {', '.join(str(k) for k in out)}")
            else:
                blind = (f"rho({dl + 1}) stays within the blind threshold (|rho| <= "
                         f"{th['blind']}) at every k")
        lines.append(f"d = {d}: {sat}; {blind}.")
    return lines


def _probe_widening(result) -> List[str]:
    """The capacity curve of every degree's boundary (``summary[d].capacity``) and its
    refit spread beside the bootstrap interval (docs/method.md §2.6)."""
    mode = (result.config.get("capacity") or {}).get("mode", "fixed")
    lines = ["## Probe widening at the boundary (capacity " + mode + ")", "",
             "rho(dL) at every probe width tried (capacity auto: widened, with more rotations "
             "per configuration where the sample budget needs them, while the boundary is not "
             "recovered; the trained SPN where the widest ridge probe falls short). The "
             "degree's numbers above are those of the widest step. Refit spread: rho(dL) "
             "under further splits of the configurations and cross-validation folds, the "
             "features reused (the bootstrap interval does not cover the probe fit's "
             "variance).", ""]
    measured = [d for d in result.degrees if result.summaries[d].capacity]
    if not measured:
        return lines + ["No boundary was measured with a capacity record."]
    for d in measured:
        s = result.summaries[d]
        rows = [[st.k, st.rotations_per_config, st.solver, with_interval(st.rho, st.rho_ci),
                 st.status] for st in s.capacity]
        lines += [f"d = {d}, boundary l = {s.ceiling}:", "",
                  table(["k", "rotations per configuration", "solver", "rho(dL) [95 %]",
                         "status"], rows, align="rrlll"), ""]
        spread = s.refit_spread
        if spread is not None:
            lines += [f"Refit spread (k = {spread.k}, {spread.seeds} further seeds): rho(dL) = "
                      + ", ".join(num(r) for r in spread.rho)
                      + f" (the run's first); max - min {num(spread.spread)}, SD "
                      f"{num(spread.sd)}; bootstrap interval "
                      f"{interval(s.rho_ci.get(s.ceiling))}.", ""]
    return lines


def _per_backbone(result) -> List[str]:
    lines = ["<details>", "<summary>Per-backbone numbers (held-out rho, R2_inj, raw gain)"
             "</summary>", "",
             "| backbone | d | l | rho | R2_inj | gain |", "|---|---|---|---|---|---|"]
    for p in result.probes:
        lines.append(f"| {p.backbone} | {p.d} | {p.l} | {num(p.rho)} | "
                     f"{num(p.r2_inj)} | {num(p.gain)} |")
    lines += ["", "</details>"]
    return lines


def _g(x) -> str:
    """A small positive number in two significant digits (``-`` for none)."""
    return "-" if x is None else f"{x:.2g}"


def _features_section(result) -> List[str]:
    """Where each backbone's features came from (docs/method.md §2.12, §2.13): model runs,
    derived rotations and their per-run check, the equivariance check, cache entries."""
    lines = ["| backbone | model runs | derived (D(R'R^-1)) | per-run check: max deviation "
             "/ tolerance | equivariance error (rotation, reflection) | cache: reused / "
             "written |", "|---|---|---|---|---|---|"]
    for b in result.backbones:
        rot = b.rotations or {}
        check = rot.get("check")
        checked = (f"{_g(check['max_deviation'])} / {_g(check['tolerance'])} "
                   f"({check['samples']} samples)" if check else "-")
        if rot.get("fallback"):
            checked += f"; {rot['fallback']}: the model ran on every rotation"
        err = b.equivariance_error or {}
        cache = (f"{len(b.cache['reused'])} / {len(b.cache['written'])}" if b.cache
                 else "no cache")
        lines.append(f"| {b.name} | {rot.get('model_runs', '-')} | {rot.get('derived', '-')} "
                     f"| {checked} | {_g(err.get('rotation'))}, "
                     f"{_g(err.get('reflection'))} | {cache} |")
    used = result.config.get("feature_cache") or {}
    if used.get("problem"):
        lines += ["", f"Cache: {used['problem']}."]
    if used.get("damaged_recomputed"):
        lines += ["", f"{used['damaged_recomputed']} damaged cache entries were recomputed."]
    return lines


def _width(ci) -> str:
    """The width of an interval, or "undefined"."""
    return num(ci[1] - ci[0]) if _ci_defined(ci) else "undefined"


def _violates(result, d: int, s) -> List[str]:
    """What a contradiction of the upper bound means, and the checks that tell its usual
    causes apart (the equivariance record per backbone named)."""
    out = [c for c in result.cells_of(d) if c.status == "exceeds"]
    failed = [b for b in result.backbones if b.equivariant is False]
    eq = ("; ".join(f"{b.name} (max error {num(max(b.equivariance_error.values()), 3)}, "
                    f"{b.dtype})" for b in failed if b.equivariance_error)
          or "; ".join(b.name for b in failed))
    lines = [f"- d = {d}: **violates** the upper bound: "
             + "; ".join(f"rho({c.l}) = {with_interval(c.rho, c.rho_ci)} lies wholly outside "
                         f"[-{BLIND_BAND}, {BLIND_BAND}]" for c in out)
             + f", above the predicted ceiling dL = {s.ceiling}. The theorem is contradicted "
             "for these features; the usual causes, and the checks that tell them apart:",
             "  - a model that is not equivariant: the equivariance error recorded per "
             "backbone (backbones[i].equivariance_error, equivariant). "
             + (f"**The equivariance check failed for: {eq}.**" if failed else
                "Every backbone passed the equivariance check."),
             "  - declared irreps that are not the real content (a degree above the declared "
             "L, e.g. a lab-frame quantity declared as scalars): the equivariance check of "
             "each irrep copy (`empirical.testing.assert_equivariant_features`) names the "
             "copy that does not transform as declared.",
             "  - target leakage (the marked pair's direction reaching the features other "
             "than through the configuration): rerun with another marked pair or seed; a "
             "leak follows the target, a model defect does not."]
    return lines


def _undecided(result, d: int, s) -> List[str]:
    """What would decide an undecided degree, with the interval widths that left it open."""
    open_cells = [c for c in result.cells_of(d) if c.l >= 1 and c.status == UNDECIDED]
    widths = "; ".join(f"rho({c.l}) = {with_interval(c.rho, c.rho_ci)} (width "
                       f"{_width(c.rho_ci)})" for c in open_cells) or "none"
    c = result.config
    return [f"- d = {d}: **undecided**: the intervals are too wide to decide ({widths}). "
            f"What would decide it: more frames (this run used "
            f"{c.get('configurations_test', MISSING)} held-out configurations of "
            f"{(c.get('dataset') or {}).get('frames_used', MISSING)} frames) or more "
            f"rotations per configuration (this run: "
            f"{c.get('rotations_per_configuration', MISSING)}); the interval width shrinks "
            "about as one over the square root of the held-out samples."]


def _degree_verdict(result, d: int) -> List[str]:
    s = result.summaries[d]
    dl = s.ceiling
    bnd = with_interval(s.rho.get(dl), s.rho_ci.get(dl))
    if s.status == AGREES:
        return [f"- d = {d}: **agrees**: rho({dl}) = {bnd} is recovered (its interval lies "
                f"above {_thresholds(result)['recoverable']}) and every l > {dl} is blind "
                f"(its interval inside [-{BLIND_BAND}, {BLIND_BAND}])."]
    if s.status == VIOLATES:
        return _violates(result, d, s)
    if s.status == BOUNDARY_NOT_REACHED:
        return [f"- d = {d}: **boundary not reached**: every l > {dl} is blind, so the "
                f"upper bound holds; rho({dl}) = {bnd} is not recovered at the widest probe "
                f"tried: the features do not carry degree {dl} to this probe. This "
                "contradicts nothing: the theorem says what a degree-d probe can reach, not "
                "that a backbone's features carry it."]
    if s.status == UNTESTED:
        return [f"- d = {d}: **untested**: no degree above the predicted ceiling {dl} was "
                f"measured (lmax = {result.lmax}); use lmax >= {dl + 1}."]
    return _undecided(result, d, s)


def _verdicts(result) -> List[str]:
    lines = ["## Verdict", "",
             "One status per probe degree, read from the 95 % intervals (docs/method.md "
             "§2.8), never from point estimates alone.", ""]
    for d in result.degrees:
        lines += _degree_verdict(result, d)
    statuses = result.statuses
    lines += ["", "Overall: " + "; ".join(f"d = {d} {STATUS_WORDS.get(st, st)}"
                                          for d, st in statuses.items()) + "."]
    return lines


def _bootstrap_note(result) -> List[str]:
    n = len(_backbone_names(result))
    n_boot = result.config.get("n_boot", "?")
    text = (f"The intervals are 95 % percentile intervals of a hierarchical cluster bootstrap "
            f"({n_boot} resamples; backbones are the clusters, then held-out samples within "
            f"each; one resampling plan for every cell, so contrasts and ratios are paired). "
            f"With n = {n} backbone(s) the level is nominal: the spread between backbones is "
            f"estimated from {n} value(s), and with as few as 4 clusters the percentile interval "
            f"undercovers (simulated coverage about 0.80-0.85 at nominal 0.95).")
    if n == 1:
        text += (" With a single backbone the interval reflects only the held-out sampling, "
                 "not the variation between independently trained backbones.")
    text += (" The cliff ratio rho(dL) / rho(dL + 1) has no percentile interval: its set is a "
             "Fieller-type confidence set from the bootstrap covariance of rho(dL) and "
             "rho(dL + 1), a bounded interval when rho(dL + 1) is significantly non-zero and "
             "otherwise unbounded (two rays or the whole line).")
    return ["## Bootstrap", "", text]


def render_report(result, plot_files: Sequence[str] = ()) -> str:
    """The text of ``report.md`` for ``result`` (a :class:`DiagnoseResult`, read through
    its typed records); ``plot_files`` are the PNG names to embed. Deterministic given the
    records except the last line (the run time); a result and its ``results.json`` read
    back (:meth:`DiagnoseResult.from_dict`) give the same text."""
    degrees = result.degrees
    th = _thresholds(result)
    out: List[str] = ["# Spectral-injection diagnostic", ""]
    out += ["## What was run", "", _run_paragraph(result), ""]
    out += ["## Headline: predicted vs measured, per probe degree", "",
            f"Predicted from spanthm's recoverable degrees; status from the 95 % interval of "
            f"rho: for l <= dL recovered (lower end >= {th['recoverable']}), not_recovered "
            f"(upper end < {th['recoverable']}); for l > dL blind (inside [-{BLIND_BAND}, "
            f"{BLIND_BAND}]), exceeds (wholly outside); else undecided. measured: the point "
            f"estimate's label (recoverable >= {th['recoverable']}, blind |rho| <= "
            f"{th['blind']}, ambiguous between). Gain: raw gain G = mean(e0 - e1), in units of the "
            f"(unit-power) target. Intervals: 95 % cluster-bootstrap percentile.", ""]
    for d in degrees:
        out += _headline(result, d) + [""]
    out += ["## Boundary figures", ""]
    for d in degrees:
        out += _boundary(result, d) + [""]
    out += _paper(result) + [""]
    out += _capacity(result) + [""]
    out += _probe_widening(result) + [""]
    out += ["## Per backbone", ""] + _per_backbone(result) + [""]
    if any(b.rotations is not None for b in result.backbones):
        out += ["## Features: model runs, derived rotations, cache", ""]
        out += _features_section(result) + [""]
    out += _verdicts(result) + [""]
    warnings = result.warnings
    out += ["## Warnings", ""]
    out += [f"- {w}" for w in warnings] if warnings else ["None."]
    out += [""]
    out += _bootstrap_note(result) + [""]
    out += ["## Thresholds", "",
            f"Cell status (95 % interval): recovered when its lower end >= "
            f"{th['recoverable']}, not_recovered when its upper end < {th['recoverable']}; "
            f"above the ceiling blind when it lies inside [-{BLIND_BAND}, {BLIND_BAND}], "
            f"exceeds when wholly outside; otherwise undecided. Point-estimate label "
            f"(measured): recoverable rho >= {th['recoverable']}, blind |rho| <= "
            f"{th['blind']}, ambiguous between.", ""]
    versions = result.config.get("versions") or {}
    out += ["## Versions", "",
            (", ".join(f"{k} {v}" for k, v in versions.items()) or "not recorded") + "", ""]
    out += ["## Plots", ""]
    if plot_files:
        for name in plot_files:
            out += [f"![{name}]({name})", ""]
    else:
        out += ["No plots were written.", ""]
    out.append(f"Run time: {float(result.seconds):.1f} s.")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plots

def _draw_response(ax, result, d: int, metric: str) -> None:
    """One frequency-response panel: ``metric`` (``"rho"`` or ``"r2_inj"``) vs ``l >= 1``
    for probe degree ``d``: per-backbone values faint, the mean over backbones with its
    95 % interval, the predicted ceiling (dashed) and recoverable region (shaded)."""
    s = result.summaries[d]
    lmax = result.lmax
    dl = int(s.ceiling)
    th = _thresholds(result)
    xmin, xmax = 0.5, lmax + 0.5
    ax.axvspan(xmin, min(dl + 0.5, xmax), color="tab:green", alpha=0.08, lw=0,
               label="predicted recoverable")
    if dl + 0.5 < xmax:
        ax.axvline(dl + 0.5, color="k", ls="--", lw=1.0, label="predicted ceiling (at dL + 0.5)")
    else:
        ax.text(0.98, 0.5, f"predicted ceiling dL = {dl}\nbeyond lmax = {lmax}",
                transform=ax.transAxes, ha="right", va="center", fontsize=8, color="0.3")
    ax.set_xlim(xmin, xmax)
    ax.set_xticks(list(range(1, lmax + 1)))
    ax.set_xlabel("target degree l (l = 0 undefined, not shown)")
    ax.grid(True, alpha=0.25)

    names = _backbone_names(result)
    means = s.rho if metric == "rho" else s.r2_inj
    cis = s.rho_ci if metric == "rho" else s.r2_inj_ci
    if metric == "rho":
        ax.set_ylabel("rho(l), held-out Pearson")
        ax.axhline(th["recoverable"], color="tab:green", ls=":", lw=1.0,
                   label=f"recoverable threshold {th['recoverable']}")
        for sign in (1, -1):
            ax.axhline(sign * th["blind"], color="tab:red", ls=":", lw=1.0,
                       label=f"blind threshold +-{th['blind']}" if sign == 1 else None)
    else:
        ax.set_ylabel("R2_inj(l)")
        ax.axhline(0.0, color="0.5", ls=":", lw=1.0)
        defined = [v for l, v in means.items() if l >= 1 and v is not None]
        if not defined:
            ax.set_ylim(-0.1, 1.05)
            ax.text(0.5, 0.5, "no energy: R2_inj undefined", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="0.3")
            return

    # per-backbone values, small deterministic offsets so they do not overlap
    nb = max(len(names), 1)
    offsets = {name: (i - (nb - 1) / 2) * (0.25 / nb) for i, name in enumerate(names)}
    xs, ys = [], []
    for p in result.probes:
        v = getattr(p, metric)
        if p.d == d and p.l >= 1 and v is not None:
            xs.append(p.l + offsets.get(p.backbone, 0.0))
            ys.append(float(v))
    if xs:
        ax.plot(xs, ys, ls="none", marker="o", ms=3, color="0.35", alpha=0.35,
                label="per backbone")
    mx, my = [], []
    for l in sorted(means):
        v = means[l]
        if l < 1 or v is None:
            continue
        mx.append(l)
        my.append(float(v))
        ci = cis.get(l)
        if _ci_defined(ci):
            ax.vlines(l, ci[0], ci[1], color="tab:blue", lw=1.6)
            ax.plot([l, l], [ci[0], ci[1]], ls="none", marker="_", ms=8, color="tab:blue")
    if mx:
        ax.plot(mx, my, ls="none", marker="o", ms=6, color="tab:blue",
                label=f"mean over {len(names)} backbone(s), 95 % CI")
    values = ys + my + [c for l in cis if l >= 1 and _ci_defined(cis[l]) for c in cis[l]]
    low = min(values + [0.0])
    if metric == "rho":
        ax.set_ylim(min(-0.3, low - 0.05), 1.05)
    else:
        bottom = max(R2_FLOOR, min(-0.1, low - 0.05))
        ax.set_ylim(bottom, 1.05)
        if low < R2_FLOOR:
            ax.text(0.02, 0.02, f"values below {R2_FLOOR} not shown", transform=ax.transAxes,
                    fontsize=7, color="0.3")


def _bottom_legend(fig, axes, height_in: float, ncol: int = 3) -> None:
    """One legend for all ``axes`` (each label once) below the panels of ``fig``, then a
    tight layout above it."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = (len(handles) + ncol - 1) // ncol
    fig.tight_layout(rect=(0, min(0.4, (0.15 + 0.2 * rows) / height_in), 1, 1))


def _panel_title(result, d: int) -> str:
    s = result.summaries[d]
    return (f"d = {d}, L = {result.L}, predicted ceiling dL = {s.ceiling}, "
            f"n = {len(_backbone_names(result))} backbones")


def frequency_response_figure(result, degrees: Optional[Sequence[int]] = None):
    """Matplotlib figure of the frequency response of ``result`` (a
    :class:`DiagnoseResult`): one row per ``d`` (every summarized ``d`` by default),
    rho(l) left and R2_inj(l) right."""
    plt = pyplot()
    degrees = list(degrees) if degrees is not None else result.degrees
    fig, axes = plt.subplots(len(degrees), 2, figsize=(11, 4.0 * len(degrees) + 0.7),
                             squeeze=False)
    try:
        for row, d in enumerate(degrees):
            _draw_response(axes[row][0], result, d, "rho")
            _draw_response(axes[row][1], result, d, "r2_inj")
            axes[row][0].set_title(f"rho(l): {_panel_title(result, d)}", fontsize=9)
            axes[row][1].set_title(f"R2_inj(l): d = {d}", fontsize=9)
        fig.suptitle("Frequency response (l = 0: constant target, undefined, not shown)",
                     fontsize=10)
        _bottom_legend(fig, [ax for row in axes for ax in row], 4.0 * len(degrees) + 0.7)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def k_sweep_figure(result):
    """Matplotlib figure of the capacity sweep of ``result`` (one panel per ``d``): mean
    rho over backbones at ``l = dL`` and ``l = dL + 1`` vs the SPN width ``k``,
    per-backbone faint."""
    plt = pyplot()
    widths, cols, mean, per = _sweep_table(result)
    ds = sorted({d for d, _ in cols})
    th = _thresholds(result)
    fig, axes = plt.subplots(1, len(ds), figsize=(4.8 * len(ds), 4.4), squeeze=False)
    try:
        for ax, d in zip(axes[0], ds):
            dl = int(result.summaries[d].ceiling)
            for l, color in ((dl, "tab:blue"), (dl + 1, "tab:orange")):
                pts = [(k, mean[(m, d, l)]) for m, k in widths
                       if (m, d, l) in mean and mean[(m, d, l)] is not None]
                faint = [(k, r) for m, k in widths for _, r in per.get((m, d, l), [])
                         if r is not None]
                tag = "l = dL (boundary)" if l == dl else "l = dL + 1 (above)"
                if faint:
                    ax.plot([k for k, _ in faint], [r for _, r in faint], ls="none",
                            marker="o", ms=3, color=color, alpha=0.3,
                            label=f"{tag}, per backbone")
                if pts:
                    ax.plot([k for k, _ in pts], [r for _, r in pts], marker="o", ms=6,
                            color=color, label=f"{tag}, mean over backbones")
            ax.axhline(th["recoverable"], color="tab:green", ls=":", lw=1.0)
            ax.axhline(th["blind"], color="tab:red", ls=":", lw=1.0)
            ax.axhline(-th["blind"], color="tab:red", ls=":", lw=1.0)
            ax.set_xticks([k for _, k in widths])
            ax.set_xticklabels([f"{k}\n({m}/degree)" for m, k in widths], fontsize=8)
            ax.set_xlabel("SPN width k (channels per feature degree)")
            ax.set_ylabel("held-out rho")
            low = min([r for _, rows in per.items() for _, r in rows if r is not None] + [0.0])
            ax.set_ylim(min(-0.3, low - 0.05), 1.05)
            ax.grid(True, alpha=0.25)
            ax.set_title(f"d = {d}: dL = {dl}, dL + 1 = {dl + 1}", fontsize=9)
        fig.suptitle("Capacity sweep (faint: per backbone; dotted: thresholds "
                     f"{th['recoverable']} and +-{th['blind']})", fontsize=10)
        _bottom_legend(fig, list(axes[0]), 4.4, ncol=2)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def capacity_figure(result):
    """Matplotlib figure of the capacity curves (one panel per degree whose boundary was
    refitted at several widths): rho(dL) with its 95 % interval against the step."""
    plt = pyplot()
    ds = _widened(result)
    th = _thresholds(result)
    fig, axes = plt.subplots(1, len(ds), figsize=(4.8 * len(ds), 4.0), squeeze=False)
    try:
        for ax, d in zip(axes[0], ds):
            steps = result.summaries[d].capacity
            xs = list(range(len(steps)))
            for x, st in zip(xs, steps):
                color = "tab:purple" if st.solver == "trained" else "tab:blue"
                if st.rho is not None:
                    ax.plot([x], [st.rho], marker="o", color=color)
                if _ci_defined(st.rho_ci):
                    ci = Interval.from_list(st.rho_ci)
                    ax.plot([x, x], [ci.low, ci.high], color=color, lw=2)
            ax.axhline(th["recoverable"], color="tab:green", ls=":", lw=1.0)
            ax.set_xticks(xs)
            ax.set_xticklabels([f"k={st.k}\nR={st.rotations_per_config}"
                                + ("\ntrained" if st.solver == "trained" else "")
                                for st in steps], fontsize=8)
            ax.set_ylim(-0.3, 1.05)
            ax.set_ylabel(f"held-out rho(dL = {result.summaries[d].ceiling})")
            ax.grid(True, alpha=0.25)
            ax.set_title(f"d = {d}", fontsize=9)
        fig.suptitle("Probe widening at the boundary (bars: 95 % intervals; dotted: "
                     f"{th['recoverable']})", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _widened(result) -> List[int]:
    """Degrees whose capacity curve has more than one step."""
    return [d for d in result.degrees if len(result.summaries[d].capacity) > 1]


def plot_names(result) -> List[str]:
    """File names of the plots :func:`render_plots` makes for ``result``, in order."""
    names = [f"frequency_response_d{d}.png" for d in result.degrees]
    names.append("frequency_response.png")
    if result.k_sweep:
        names.append("k_sweep.png")
    if _widened(result):
        names.append("capacity.png")
    return names


def render_plots(result) -> Dict[str, bytes]:
    """Every plot of ``result`` rendered to PNG bytes, by file name (see :func:`plot_names`)."""
    out: Dict[str, bytes] = {}
    for d in result.degrees:
        out[f"frequency_response_d{d}.png"] = png_bytes(frequency_response_figure(result, [d]))
    out["frequency_response.png"] = png_bytes(frequency_response_figure(result))
    if result.k_sweep:
        out["k_sweep.png"] = png_bytes(k_sweep_figure(result))
    if _widened(result):
        out["capacity.png"] = png_bytes(capacity_figure(result))
    return out


# --------------------------------------------------------------------------- writing

def write_outputs(result, out_dir: Path, plots: bool = True,
                  overwrite: bool = False) -> List[Path]:
    """Write ``results.json``, ``report.md`` and (with ``plots``) the PNGs of ``result``
    (a :class:`DiagnoseResult`) into ``out_dir`` (created) and return their paths
    (``results.json``, ``report.md``, then the PNGs in :func:`plot_names` order).

    All content is computed before the directory is created or any file written, so an
    error in it writes nothing; the files are then written as one set
    (:func:`empirical.io.write_file_set`): ``out_dir`` must not hold files unless
    ``overwrite``, which replaces the earlier directory as a whole."""
    results_text = result.to_json()
    pngs = render_plots(result) if plots else {}
    report_text = render_report(result, list(pngs))
    written = write_file_set(out_dir, {**pngs, "report.md": report_text.encode("utf-8"),
                                       "results.json": results_text.encode("utf-8")},
                             overwrite=overwrite)
    return written[-1:] + written[-2:-1] + written[:-2]
