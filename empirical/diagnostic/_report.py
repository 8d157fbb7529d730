"""Outputs of the spectral-injection diagnostic (DESIGN §5): ``results.json``, ``report.md``
and the PNG plots of one :class:`~empirical.diagnostic.DiagnoseResult`.

:func:`write_outputs` computes everything first (the report text and every PNG, rendered
into memory) and only then creates the directory and writes the files, each atomically
(:func:`empirical._io.atomic_path`): an error in the content writes nothing, and an
interrupted write leaves no half-written file.

Files
-----
* ``results.json``: exactly :meth:`DiagnoseResult.to_json`.
* ``report.md``: what was run, the headline table per probe degree ``d``, the boundary
  figures, the paper comparison (``d = 2`` with ceiling 4), the capacity sweep, the
  per-backbone numbers, the agreement verdicts, warnings, bootstrap caveat, thresholds,
  versions and the plots. Deterministic given the payload, except its last line (the run
  time, from ``result.seconds``).
* ``frequency_response_d{d}.png`` for every ``d``, ``frequency_response.png`` (all ``d``,
  one row each) and ``k_sweep.png`` (when the payload has capacity-sweep rows); written
  only with ``plots=True``. ``l = 0`` is left out of every plot: its target is constant
  and ``rho`` undefined.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .._io import write_files

__all__ = ["write_outputs", "render_report", "render_plots", "plot_names",
           "frequency_response_figure", "k_sweep_figure"]

#: Resolution of the PNG plots.
DPI = 110
#: PNG metadata: no "Software" entry (matplotlib's version), so re-runs are byte-identical.
PNG_METADATA = {"Software": None}
#: Change of the mean boundary rho between the two largest sweep widths below which the
#: probe's capacity is called saturated.
SATURATION_TOL = 0.05
#: Lower limit of the R2_inj axis (R2_inj is unbounded below).
R2_FLOOR = -1.5

UNDEFINED = "undefined"


# --------------------------------------------------------------------------- formatting

def _num(x, decimals: int = 3, signed: bool = False) -> str:
    """``x`` with ``decimals`` decimals (a leading ``+`` with ``signed``), ``"undefined"``
    for ``None``; a value that rounds to zero is written without a minus sign."""
    if x is None:
        return UNDEFINED
    x = float(x)
    if round(x, decimals) == 0:
        x = 0.0
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def _ci(ci, decimals: int = 3) -> str:
    """``[low, high]``, or ``[undefined]`` when the interval (or a bound) is undefined."""
    if not ci or ci[0] is None or ci[1] is None:
        return f"[{UNDEFINED}]"
    return f"[{_num(ci[0], decimals)}, {_num(ci[1], decimals)}]"


def _with_ci(x, ci, decimals: int = 3) -> str:
    if x is None:
        return UNDEFINED
    return f"{_num(x, decimals)} {_ci(ci, decimals)}"


def _ci_defined(ci) -> bool:
    return bool(ci) and ci[0] is not None and ci[1] is not None


def _mean_defined(values: Sequence) -> Optional[float]:
    """Mean of ``values``; ``None`` when empty or any value is undefined."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


# --------------------------------------------------------------------------- payload views

def _degrees(payload: Dict) -> List[int]:
    return sorted(int(d) for d in payload["summary"])


def _lmax(payload: Dict) -> int:
    config = payload.get("config", {})
    if "lmax" in config:
        return int(config["lmax"])
    return max(int(l) for s in payload["summary"].values() for l in s["rho"])


def _feature_L(payload: Dict, d: int) -> int:
    Ls = sorted({int(b["L"]) for b in payload.get("backbones", []) if b.get("L") is not None})
    if Ls:
        return Ls[-1]
    return int(payload["summary"][str(d)]["ceiling"]) // d


def _backbone_names(payload: Dict) -> List[str]:
    names = [b["name"] for b in payload.get("backbones", [])]
    for p in payload.get("probes", []):
        if p["backbone"] not in names:
            names.append(p["backbone"])
    return names


def _thresholds(payload: Dict) -> Dict[str, float]:
    th = payload.get("config", {}).get("thresholds") or {"recoverable": 0.5, "blind": 0.2}
    return {"recoverable": float(th["recoverable"]), "blind": float(th["blind"])}


def _sweep_table(payload: Dict):
    """Capacity sweep: ``(widths, cols, mean, per)`` with ``widths`` the sorted
    ``(channels_per_degree, k)``, ``cols`` the sorted ``(d, l)``, ``mean[(m, d, l)]`` the
    mean rho over backbones and ``per[(m, d, l)]`` the per-backbone ``(name, rho)``."""
    per: Dict[Tuple[int, int, int], List] = {}
    k_of: Dict[int, int] = {}
    for row in payload.get("k_sweep", []) or []:
        m, d, l = int(row["channels_per_degree"]), int(row["d"]), int(row["l"])
        k_of.setdefault(m, int(row["k"]))
        per.setdefault((m, d, l), []).append((row["backbone"], row["rho"]))
    widths = sorted(k_of.items())
    cols = sorted({(d, l) for (_, d, l) in per})
    mean = {key: _mean_defined([r for _, r in rows]) for key, rows in per.items()}
    return widths, cols, mean, per


# --------------------------------------------------------------------------- report.md

def _run_paragraph(payload: Dict) -> str:
    c = payload.get("config", {})
    ds = c.get("dataset", {})
    parts = []
    parts.append(f"Dataset: {ds.get('source', UNDEFINED)}, {ds.get('frames_used', '?')} of "
                 f"{ds.get('frames_total', '?')} frames used (sha256 "
                 f"{str(ds.get('sha256', UNDEFINED))[:12]}...).")
    atoms = c.get("marked_atoms")
    labels = c.get("marked_labels")
    if atoms is not None:
        lab = f" ({labels[0]}, {labels[1]})" if labels else ""
        parts.append(f"Marked atoms {atoms[0]}, {atoms[1]} (0-based){lab}; the marked "
                     "direction points from the first to the second.")
    bbs = []
    for b in payload.get("backbones", []):
        desc = f"{b['name']} (L = {b.get('L', '?')}"
        e_mae, f_mae = b.get("test_energy_mae_meV"), b.get("test_force_mae_meV_per_A")
        if e_mae is not None or f_mae is not None:
            desc += (f"; held-out energy MAE {_num(e_mae, 2)} meV, force MAE "
                     f"{_num(f_mae, 2)} meV/A")
        desc += ")"
        bbs.append(desc)
    parts.append(f"{len(bbs)} backbone(s): {', '.join(bbs)}.")
    k = c.get("k", {}) or {}
    k_txt = ", ".join(f"k = {k[str(d)]} for d = {d}" for d in _degrees(payload) if str(d) in k)
    degs = ", ".join(str(d) for d in c.get("degrees", _degrees(payload)))
    parts.append(f"Probe degrees d = {degs}; "
                 f"target degrees l = 0..{_lmax(payload)}; SPN width {k_txt or UNDEFINED} "
                 f"({c.get('k_rule', 'rule not recorded')}).")
    if c.get("spn", "ridge") == "ridge":
        fit = (f"closed-form ridge, penalty chosen by {c.get('folds', '?')}-fold grouped "
               "cross-validation")
    else:
        fit = (f"gradient-trained ({c.get('spn')}: reduction and coefficients learned, early "
               "stopping on a grouped validation part)")
    parts.append(f"Reduction: {c.get('reduction', UNDEFINED)}; SPN fit: {fit}.")
    parts.append(f"Configurations: n_train = {c.get('n_train', '?')}, n_test = "
                 f"{c.get('n_test', '?')} (held out), one Haar-random rotation each.")
    parts.append(f"Bootstrap: {c.get('n_boot', '?')} resamples "
                 f"({c.get('bootstrap', 'hierarchical')}, {c.get('interval', '95% percentile')}"
                 f" intervals); seed {c.get('seed', '?')}.")
    eps = []
    for b in payload.get("backbones", []):
        e = b.get("eps_eV")
        eps.append(f"{b['name']} {_num(None if e is None else 1e3 * e, 1)} meV"
                   if e is not None else f"{b['name']} none (no energy)")
    parts.append(f"Injection amplitude eps: {c.get('eps_rule', UNDEFINED)}; "
                 f"{'; '.join(eps) if eps else UNDEFINED}.")
    return " ".join(parts)


def _headline(payload: Dict, d: int) -> List[str]:
    s = payload["summary"][str(d)]
    cells = {int(c["l"]): c for c in payload.get("cells", []) if int(c["d"]) == d}
    rec = set(payload.get("predicted", {}).get(str(d), {}).get("recoverable", []))
    lines = [f"### d = {d} (L = {_feature_L(payload, d)}, predicted ceiling dL = "
             f"{s['ceiling']}, measured ceiling {_num(s.get('measured_ceiling'), 0)})", "",
             "| l | predicted | mean rho [95 % CI] | R2_inj [95 % CI] | gain [95 % CI] | "
             "measured | agrees |",
             "|---|---|---|---|---|---|---|"]
    for key in sorted(s["rho"], key=int):
        l = int(key)
        cell = cells.get(l, {})
        predicted = cell.get("predicted", "recoverable" if l in rec else "blind")
        agrees = cell.get("agrees")
        agrees_txt = UNDEFINED if agrees is None else ("yes" if agrees else "no")
        lines.append(
            f"| {l} | {predicted} | {_with_ci(s['rho'][key], s['rho_ci'].get(key))} | "
            f"{_with_ci(s['r2_inj'].get(key), s['r2_inj_ci'].get(key))} | "
            f"{_with_ci(s['gain'].get(key), s['gain_ci'].get(key))} | "
            f"{cell.get('measured', UNDEFINED)} | {agrees_txt} |")
    lines.append("")
    lines.append("l = 0: the target is constant, so rho, R2_inj and the gain are undefined "
                 "and the cell takes no part in the agreement.")
    return lines


def _boundary(payload: Dict, d: int) -> List[str]:
    s = payload["summary"][str(d)]
    dl = int(s["ceiling"])
    lmax = _lmax(payload)
    lines = [f"**d = {d}, boundary dL = {dl}.**", ""]
    if not 1 <= dl <= lmax:
        lines.append(f"The boundary degree {dl} lies outside the measured range l = 1..{lmax}: "
                     "no boundary figures.")
        return lines
    b_key, a_key = str(dl), str(dl + 1)
    lines.append(f"- rho({dl}) = {_with_ci(s['rho'].get(b_key), s['rho_ci'].get(b_key))}; "
                 f"rho({dl + 1}) = "
                 + (_with_ci(s["rho"].get(a_key), s["rho_ci"].get(a_key))
                    if a_key in s["rho"] else f"not measured (lmax = {lmax})") + ".")
    if a_key not in s["rho"]:
        return lines
    lines.append(f"- Cliff ratio rho({dl}) / rho({dl + 1}) = "
                 f"{_with_ci(s.get('cliff_ratio'), s.get('cliff_ratio_ci'), 1)}. The ratio of a "
                 f"large number to one at the noise floor is unstable (its size and sign follow "
                 f"the noise): rho({dl + 1}) with its interval is the figure to read.")
    ci = s.get("delta_contrast_ci")
    if _ci_defined(ci):
        excl = ("excludes 0" if ci[0] > 0 or ci[1] < 0 else "does not exclude 0")
    else:
        excl = "is undefined"
    lines.append(f"- Raw-gain delta contrast G({dl}) - G({dl + 1}) = "
                 f"{_with_ci(s.get('delta_contrast'), ci)}; the interval {excl}.")
    return lines


def _paper(payload: Dict) -> List[str]:
    lines = ["## Paper vs this run", ""]
    s = payload["summary"].get("2")
    paper = payload.get("paper") or {}
    if s is None or int(s["ceiling"]) != 4:
        lines.append("The paper's headline figures are for d = 2 with ceiling dL = 4 (L = 2); "
                     "this run has no such cell, so there is no comparison.")
        return lines
    p_rho, p_r2 = paper.get("rho", {}) or {}, paper.get("r2_inj", {}) or {}
    rows = [("rho(4)", p_rho.get("4"), s["rho"].get("4"), s["rho_ci"].get("4"), 3),
            ("rho(5)", p_rho.get("5"), s["rho"].get("5"), s["rho_ci"].get("5"), 3),
            ("cliff ratio rho(4)/rho(5)", paper.get("cliff_ratio"), s.get("cliff_ratio"),
             s.get("cliff_ratio_ci"), 1),
            ("R2_inj(4)", p_r2.get("4"), s["r2_inj"].get("4"), s["r2_inj_ci"].get("4"), 3),
            ("R2_inj(5)", p_r2.get("5"), s["r2_inj"].get("5"), s["r2_inj_ci"].get("5"), 3)]
    lines += ["The paper's figures: d = 2 probes of L = 2 NequIP backbones on aspirin.", "",
              "| quantity | paper | this run: mean [95 % CI] |", "|---|---|---|"]
    for name, p, x, ci, dec in rows:
        lines.append(f"| {name} | {_num(p, dec)} | {_with_ci(x, ci, dec)} |")
    return lines


def _capacity(payload: Dict) -> List[str]:
    widths, cols, mean, per = _sweep_table(payload)
    lines = ["## Capacity (k sweep)", ""]
    if not widths:
        lines.append("No capacity sweep was run.")
        return lines
    th = _thresholds(payload)
    ceilings = {d: int(payload["summary"][str(d)]["ceiling"]) for d in _degrees(payload)}
    head = "| channels per degree (k) | " + " | ".join(
        f"d = {d}, l = {l}" + (" (dL)" if l == ceilings.get(d) else " (dL+1)") for d, l in cols)
    lines += [head + " |", "|---|" + "---|" * len(cols)]
    for m, k in widths:
        vals = [(_num(mean[(m, d, l)]) if (m, d, l) in mean else "not fitted") for d, l in cols]
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
            sat = (f"rho({dl}) changes by {_num(change, signed=True)} between the two largest "
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
            out = [k for m, k, r in above if r is None or abs(r) > th["blind"]]
            if out:
                blind = (f"rho({dl + 1}) leaves the blind threshold (|rho| <= {th['blind']}) "
                         f"at k = {', '.join(str(k) for k in out)}")
            else:
                blind = (f"rho({dl + 1}) stays within the blind threshold (|rho| <= "
                         f"{th['blind']}) at every k")
        lines.append(f"d = {d}: {sat}; {blind}.")
    return lines


def _per_backbone(payload: Dict) -> List[str]:
    lines = ["<details>", "<summary>Per-backbone numbers (held-out rho, R2_inj, raw gain)"
             "</summary>", "",
             "| backbone | d | l | rho | R2_inj | gain |", "|---|---|---|---|---|---|"]
    for p in payload.get("probes", []):
        lines.append(f"| {p['backbone']} | {p['d']} | {p['l']} | {_num(p.get('rho'))} | "
                     f"{_num(p.get('r2_inj'))} | {_num(p.get('gain'))} |")
    lines += ["", "</details>"]
    return lines


def _verdicts(payload: Dict) -> List[str]:
    th = _thresholds(payload)
    lines = ["## Agreement with the prediction", ""]
    bad_d = []
    for d in _degrees(payload):
        s = payload["summary"][str(d)]
        cells = [c for c in payload.get("cells", []) if int(c["d"]) == d]
        defined = [c for c in cells if c.get("agrees") is not None]
        wrong = [c for c in defined if not c["agrees"]]
        ok = bool(s.get("agreement", not wrong)) and not wrong
        if ok:
            lines.append(f"- d = {d}: all {len(defined)} defined cells agree with the prediction "
                         f"(predicted ceiling {s['ceiling']}, measured ceiling "
                         f"{_num(s.get('measured_ceiling'), 0)}).")
        else:
            bad_d.append(d)
            detail = "; ".join(f"l = {c['l']} predicted {c['predicted']}, measured "
                               f"{c['measured']} (rho {_num(c.get('rho'))})" for c in wrong)
            lines.append(f"- d = {d}: {len(wrong)} of {len(defined)} defined cells disagree with "
                         f"the prediction (predicted ceiling {s['ceiling']}, measured ceiling "
                         f"{_num(s.get('measured_ceiling'), 0)}): {detail}.")
    lines.append("")
    if not bad_d:
        lines.append(f"Overall: the measurement agrees with spanthm's prediction at every probe "
                     f"degree (recoverable: mean rho >= {th['recoverable']}; blind: |mean rho| "
                     f"<= {th['blind']}).")
    else:
        lines.append(f"Overall: the measurement disagrees with spanthm's prediction at "
                     f"d = {', '.join(str(d) for d in bad_d)} (recoverable: mean rho >= "
                     f"{th['recoverable']}; blind: |mean rho| <= {th['blind']}).")
    return lines


def _bootstrap_note(payload: Dict) -> List[str]:
    n = len(_backbone_names(payload))
    n_boot = payload.get("config", {}).get("n_boot", "?")
    text = (f"The intervals are 95 % percentile intervals of a hierarchical cluster bootstrap "
            f"({n_boot} resamples; backbones are the clusters, then held-out samples within "
            f"each; one resampling plan for every cell, so contrasts and ratios are paired). "
            f"With n = {n} backbone(s) the level is nominal: the spread between backbones is "
            f"estimated from {n} value(s), and with as few as 4 clusters the percentile interval "
            f"undercovers (simulated coverage about 0.80-0.85 at nominal 0.95).")
    if n == 1:
        text += (" With a single backbone the interval reflects only the held-out sampling, "
                 "not the variation between independently trained backbones.")
    return ["## Bootstrap", "", text]


def render_report(result, plot_files: Sequence[str] = ()) -> str:
    """The text of ``report.md`` for ``result`` (a :class:`DiagnoseResult`); ``plot_files``
    are the PNG names to embed. Deterministic given the payload except the last line (the
    run time)."""
    payload = result.payload
    degrees = _degrees(payload)
    th = _thresholds(payload)
    out: List[str] = ["# Spectral-injection diagnostic", ""]
    out += ["## What was run", "", _run_paragraph(payload), ""]
    out += ["## Headline: predicted vs measured, per probe degree", "",
            f"Predicted from spanthm's recoverable degrees; measured: recoverable when the mean "
            f"held-out rho >= {th['recoverable']}, blind when |mean rho| <= {th['blind']}, "
            f"ambiguous in between. Gain: raw gain G = mean(e0 - e1), in units of the "
            f"(unit-power) target. Intervals: 95 % cluster-bootstrap percentile.", ""]
    for d in degrees:
        out += _headline(payload, d) + [""]
    out += ["## Boundary figures", ""]
    for d in degrees:
        out += _boundary(payload, d) + [""]
    out += _paper(payload) + [""]
    out += _capacity(payload) + [""]
    out += ["## Per backbone", ""] + _per_backbone(payload) + [""]
    out += _verdicts(payload) + [""]
    warnings = payload.get("warnings") or []
    out += ["## Warnings", ""]
    out += [f"- {w}" for w in warnings] if warnings else ["None."]
    out += [""]
    out += _bootstrap_note(payload) + [""]
    out += ["## Thresholds", "",
            f"Recoverable: mean rho >= {th['recoverable']}; blind: |mean rho| <= "
            f"{th['blind']}; between them: ambiguous (counts as disagreement).", ""]
    versions = payload.get("config", {}).get("versions") or {}
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

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _draw_response(ax, payload: Dict, d: int, metric: str) -> None:
    """One frequency-response panel: ``metric`` (``"rho"`` or ``"r2_inj"``) vs ``l >= 1``
    for probe degree ``d``: per-backbone values faint, the mean over backbones with its
    95 % interval, the predicted ceiling (dashed) and recoverable region (shaded)."""
    s = payload["summary"][str(d)]
    lmax = _lmax(payload)
    dl = int(s["ceiling"])
    th = _thresholds(payload)
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

    names = _backbone_names(payload)
    means = s["rho"] if metric == "rho" else s["r2_inj"]
    cis = s["rho_ci"] if metric == "rho" else s["r2_inj_ci"]
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
        defined = [v for k, v in means.items() if int(k) >= 1 and v is not None]
        if not defined:
            ax.set_ylim(-0.1, 1.05)
            ax.text(0.5, 0.5, "no energy: R2_inj undefined", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="0.3")
            return

    # per-backbone values, small deterministic offsets so they do not overlap
    nb = max(len(names), 1)
    offsets = {name: (i - (nb - 1) / 2) * (0.25 / nb) for i, name in enumerate(names)}
    xs, ys = [], []
    for p in payload.get("probes", []):
        v = p.get(metric)
        if int(p["d"]) == d and int(p["l"]) >= 1 and v is not None:
            xs.append(int(p["l"]) + offsets.get(p["backbone"], 0.0))
            ys.append(float(v))
    if xs:
        ax.plot(xs, ys, ls="none", marker="o", ms=3, color="0.35", alpha=0.35,
                label="per backbone")
    mx, my = [], []
    for key in sorted(means, key=int):
        l, v = int(key), means[key]
        if l < 1 or v is None:
            continue
        mx.append(l)
        my.append(float(v))
        ci = cis.get(key)
        if _ci_defined(ci):
            ax.vlines(l, ci[0], ci[1], color="tab:blue", lw=1.6)
            ax.plot([l, l], [ci[0], ci[1]], ls="none", marker="_", ms=8, color="tab:blue")
    if mx:
        ax.plot(mx, my, ls="none", marker="o", ms=6, color="tab:blue",
                label=f"mean over {len(names)} backbone(s), 95 % CI")
    values = ys + my + [c for key in cis if int(key) >= 1 and _ci_defined(cis[key])
                        for c in cis[key]]
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


def _panel_title(payload: Dict, d: int) -> str:
    s = payload["summary"][str(d)]
    return (f"d = {d}, L = {_feature_L(payload, d)}, predicted ceiling dL = {s['ceiling']}, "
            f"n = {len(_backbone_names(payload))} backbones")


def frequency_response_figure(payload: Dict, degrees: Optional[Sequence[int]] = None):
    """Matplotlib figure of the frequency response: one row per ``d`` (all of the summary
    by default), rho(l) left and R2_inj(l) right."""
    plt = _pyplot()
    degrees = list(degrees) if degrees is not None else _degrees(payload)
    fig, axes = plt.subplots(len(degrees), 2, figsize=(11, 4.0 * len(degrees) + 0.7),
                             squeeze=False)
    try:
        for row, d in enumerate(degrees):
            _draw_response(axes[row][0], payload, d, "rho")
            _draw_response(axes[row][1], payload, d, "r2_inj")
            axes[row][0].set_title(f"rho(l): {_panel_title(payload, d)}", fontsize=9)
            axes[row][1].set_title(f"R2_inj(l): d = {d}", fontsize=9)
        fig.suptitle("Frequency response (l = 0: constant target, undefined, not shown)",
                     fontsize=10)
        _bottom_legend(fig, [ax for row in axes for ax in row], 4.0 * len(degrees) + 0.7)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def k_sweep_figure(payload: Dict):
    """Matplotlib figure of the capacity sweep (one panel per ``d``): mean rho over
    backbones at ``l = dL`` and ``l = dL + 1`` vs the SPN width ``k``, per-backbone faint."""
    plt = _pyplot()
    widths, cols, mean, per = _sweep_table(payload)
    ds = sorted({d for d, _ in cols})
    th = _thresholds(payload)
    fig, axes = plt.subplots(1, len(ds), figsize=(4.8 * len(ds), 4.4), squeeze=False)
    try:
        for ax, d in zip(axes[0], ds):
            dl = int(payload["summary"][str(d)]["ceiling"])
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


def plot_names(payload: Dict) -> List[str]:
    """File names of the plots :func:`render_plots` makes for ``payload``, in order."""
    names = [f"frequency_response_d{d}.png" for d in _degrees(payload)]
    names.append("frequency_response.png")
    if payload.get("k_sweep"):
        names.append("k_sweep.png")
    return names


def _png_bytes(fig) -> bytes:
    plt = _pyplot()
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
        return buf.getvalue()
    finally:
        plt.close(fig)


def render_plots(payload: Dict) -> Dict[str, bytes]:
    """Every plot of ``payload`` rendered to PNG bytes, by file name (see :func:`plot_names`)."""
    out: Dict[str, bytes] = {}
    for d in _degrees(payload):
        out[f"frequency_response_d{d}.png"] = _png_bytes(frequency_response_figure(payload, [d]))
    out["frequency_response.png"] = _png_bytes(frequency_response_figure(payload))
    if payload.get("k_sweep"):
        out["k_sweep.png"] = _png_bytes(k_sweep_figure(payload))
    return out


# --------------------------------------------------------------------------- writing

def write_outputs(result, out_dir: Path, plots: bool = True) -> List[Path]:
    """Write ``results.json``, ``report.md`` and (with ``plots``) the PNGs of ``result``
    into ``out_dir`` (created) and return their paths (``results.json``, ``report.md``,
    then the PNGs in :func:`plot_names` order).

    All content is computed before the directory is created or any file written, so an
    error in it writes nothing; each file is then written atomically (plots first,
    ``results.json`` last)."""
    results_text = result.to_json()
    pngs = render_plots(result.payload) if plots else {}
    report_text = render_report(result, list(pngs))
    written = write_files(out_dir, {**pngs, "report.md": report_text.encode("utf-8"),
                                    "results.json": results_text.encode("utf-8")})
    return written[-1:] + written[-2:-1] + written[:-2]
