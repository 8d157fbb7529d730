"""Reports of the per-layer profile and the survey: report.md, a figure, results.json,
written as one set (:func:`empirical.io.write_file_set`)."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..diagnostic import STATUS_WORDS, VIOLATES, probe_label
from ..io import write_run_set
from ..render import MISSING, interval, num, pyplot, table
from ._draws import draws_sentence

__all__ = ["render_profile_report", "profile_figure", "write_profile_outputs",
           "render_survey_report", "survey_figure", "write_survey_outputs", "survey_table"]


def _agree(status: str) -> str:
    """A degree status in words (docs/method.md §2.8); a violation in bold."""
    words = STATUS_WORDS.get(status, status)
    return f"**{words}**" if status == VIOLATES else words


def _status_counts(rows) -> Dict[str, int]:
    """How many rows have each degree status."""
    return {st: sum(r.headline.status == st for r in rows) for st in STATUS_WORDS}


def _text(x) -> str:
    """A count or label as written, :data:`~empirical.render.MISSING` when absent."""
    return MISSING if x is None else str(x)


def _data_line(c: Dict) -> str:
    """The data, the split and the bootstrap of a profile or a survey."""
    ds = c["dataset"]
    return (f"Data: {ds['source']} ({ds['frames_used']} of {ds['frames_total']} frames, "
            f"{c['n_test']} held-out rotated configurations), marked atoms "
            f"{c['marked_atoms']}, seed {c['seed']}, {c['n_boot']} bootstrap resamples")


def _versions_line(config: Dict) -> str:
    v = config.get("versions", {})
    return ", ".join(f"{k} {v[k]}" for k in sorted(v))


# -- profile -------------------------------------------------------------------------------

def _profile_table(result, backbone: str) -> str:
    """One backbone's layers: rho at every ``l`` (bold: ``l <= dL``, predicted
    recoverable), beside the layer's predicted and measured ceilings."""
    lmax = result.config["lmax"]
    header = (["layer", "irreps", "L", "ceiling dL", "measured"]
              + [f"l={l}" for l in range(lmax + 1)] + [""])
    rows = []
    for r in (r for r in result.rows if r.backbone == backbone):
        h = r.headline
        cells = []
        for l in range(lmax + 1):
            v = r.rho.get(l)
            text = num(v, 2)
            cells.append(f"**{text}**" if l <= h.predicted_ceiling and v is not None else text)
        rows.append([r.layer, r.irreps_out, h.L, h.predicted_ceiling,
                     _text(h.measured_ceiling), *cells, _agree(h.status)])
    return table(header, rows)


def render_profile_report(result, plot_files: Sequence[str] = ()) -> str:
    c = result.config
    out = [f"# Per-layer spectral profile (d = {c['d']})", "",
           _data_line(c) + ". Each layer is diagnosed on its own, with its backbone's plan "
           "(the layers of one backbone share its frames, split, rotations and signal); its "
           "predicted ceiling is d x (its own L). Bold: rho of the predicted-recoverable "
           "degrees l <= dL.", "", draws_sentence(c, "model"), ""]
    for name in plot_files:
        out += [f"![per-layer profile]({name})", ""]
    for b in result.backbones:
        out += [f"## {b.name}", "", f"Source: {b.source}", "",
                _profile_table(result, b.name), ""]
    out += ["## Reproduce", "", f"Versions: {_versions_line(c)}.", ""]
    return "\n".join(out) + "\n"


def profile_figure(result):
    """One heatmap per backbone: layers (rows) x target degree l (columns), colour rho;
    the black step marks each layer's predicted ceiling dL (recoverable to its left)."""
    import numpy as np

    plt = pyplot()
    c = result.config
    lmax = c["lmax"]
    backbones = result.backbones
    heights = [max(1, sum(r.backbone == b.name for r in result.rows)) for b in backbones]
    fig, axes = plt.subplots(len(backbones), 1, squeeze=False,
                             figsize=(3.5 + 0.55 * (lmax + 1), 1.4 + 0.6 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, b in zip(axes[:, 0], backbones):
        rows = [r for r in result.rows if r.backbone == b.name]
        grid = np.full((len(rows), lmax + 1), np.nan)
        for i, r in enumerate(rows):
            for l in range(lmax + 1):
                v = r.rho.get(l)
                grid[i, l] = np.nan if v is None else v
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, r in enumerate(rows):
            x = r.headline.predicted_ceiling + 0.5
            ax.plot([x, x], [i - 0.5, i + 0.5], color="k", lw=2)
            for l in range(lmax + 1):
                if not np.isnan(grid[i, l]):
                    ax.text(l, i, f"{grid[i, l]:.2f}", ha="center", va="center", fontsize=7,
                            color="w" if grid[i, l] < 0.6 else "k")
        ax.set_yticks(range(len(rows)), [f"{r.layer} (L={r.headline.L})" for r in rows],
                      fontsize=8)
        ax.set_xticks(range(lmax + 1))
        ax.set_title(f"{b.name}: rho(l) per layer, d = {c['d']}\n(black line: predicted "
                     "ceiling dL; recoverable to its left)", fontsize=9)
    axes[-1, 0].set_xlabel("target degree l")
    fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.9, label="held-out rho")
    return fig


def write_profile_outputs(result, out_dir, plots: bool = True, overwrite: bool = False):
    """``profile.png`` (with ``plots``), ``report.md`` and ``results.json`` as one set."""
    return write_run_set(out_dir, result, render_profile_report,
                         {"profile.png": profile_figure} if plots else None, overwrite)


# -- survey --------------------------------------------------------------------------------

def _rho_cell(x, ci) -> str:
    """rho (3 decimals) and its 95 % interval (2)."""
    return f"{num(x)} {interval(ci, 2)}"


def survey_table(rows: Sequence, runs: Optional[Dict] = None) -> List[str]:
    """The survey's markdown table (also the README's), one line per element; with the
    models' ``runs`` (name -> DiagnoseResult) a column names the probe behind rho(dL)
    (:func:`~empirical.diagnostic.probe_label`)."""
    header = ["model", "L", "layers", "parameters", "d", "ceiling dL", "measured",
              "probe at dL (k x rotations)", "rho(dL) [95% CI]", "rho(dL+1) [95% CI]",
              "equivariance error", ""]
    cells = []
    for r in rows:
        h = r.headline
        params = MISSING if r.parameters is None else f"{r.parameters / 1e6:.2f} M"
        run = (runs or {}).get(r.model)
        probe = MISSING if run is None or h.d not in run.summaries else \
            probe_label(run.summaries[h.d].capacity)
        cells.append([r.model, h.L, _text(r.layers), params, h.d, h.predicted_ceiling,
                      _text(h.measured_ceiling), probe,
                      _rho_cell(h.rho_boundary, h.rho_boundary_ci),
                      _rho_cell(h.rho_above, h.rho_above_ci),
                      f"{r.equivariance_error:.1e}" + ("" if r.parity else " (SO(3))"),
                      _agree(h.status)])
    return table(header, cells).split("\n")


def _models_table(rows: Sequence) -> List[str]:
    """One line per model: what was read, where it came from, eps and its energy error."""
    seen: Dict[str, object] = {}
    for r in rows:
        seen.setdefault(r.model, r)
    cells = [[r.model, r.irreps_out, _text(r.layer), r.source, num(r.eps_eV, 4),
              num(r.energy_error_rmse_meV, 1)] for r in seen.values()]
    return table(["model", "irreps read", "layer", "source", "eps (eV)",
                  "energy-error RMSE (meV)"], cells).split("\n")


def render_survey_report(result, plot_files: Sequence[str] = ()) -> str:
    c = result.config
    rows = result.rows
    agree = sum(r.headline.agreement is True for r in rows)
    out = ["# Survey: the spectral ceiling of every model available here", "",
           _data_line(c) + f", lmax {c['lmax_rule']}. Every model is diagnosed on its own "
           "(no pooling). "
           f"**{agree} of {len(rows)}** (model, d) rows agree with spanthm's ceiling (status "
           "from the 95 % intervals, docs/method.md §2.8); "
           + "; ".join(f"{n} {STATUS_WORDS[st]}" for st, n in _status_counts(rows).items()
                       if st != "agrees") + ".", "",
           draws_sentence(c, "model"), ""]
    for name in plot_files:
        out += [f"![survey]({name})", ""]
    out += survey_table(rows, result.runs) + [""]
    out += ["Columns: L and the irreps are those of the layer read (the last with l > 0 "
            "unless the spec names one); layers: interaction layers with l > 0 features; "
            "equivariance error: max abs over one rotation and one roto-reflection of one "
            "configuration, in the model's dtype; (SO(3)): a model without parity (SevenNet), "
            "judged on the rotation alone, its reflection error recorded in `runs`.", ""]
    out += ["## Models", ""] + _models_table(rows) + [""]
    warnings = [(m, w) for m, run in result.runs.items() for w in run.warnings]
    if c.get("skipped") or warnings:
        out += ["## Notes", ""]
        out += [f"- skipped: {s}" for s in c.get("skipped", [])]
        out += [f"- {m}: {w}" for m, w in warnings]
        out.append("")
    out += ["## Reproduce", "", f"Versions: {_versions_line(c)}.", ""]
    return "\n".join(out) + "\n"


def survey_figure(result):
    """rho against ``l - dL`` (the offset from each model's predicted ceiling) for every
    model, one panel per d: the theorem puts every curve's cliff between 0 and 1."""
    plt = pyplot()
    rows = result.rows
    degrees = sorted({r.headline.d for r in rows})
    fig, axes = plt.subplots(1, len(degrees), squeeze=False, sharey=True,
                             figsize=(4.2 * len(degrees), 3.8))
    models = list(dict.fromkeys(r.model for r in rows))
    cmap = plt.get_cmap("tab10")
    for ax, d in zip(axes[0], degrees):
        for j, m in enumerate(models):
            s = result.runs[m].summaries.get(d)
            if s is None:
                continue
            ls = sorted(l for l, v in s.rho.items() if v is not None)
            ax.plot([l - s.ceiling for l in ls], [s.rho[l] for l in ls], marker="o",
                    ms=3, lw=1.2, color=cmap(j % 10), label=m)
        ax.axvline(0.5, color="k", lw=1, ls="--")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_title(f"d = {d}", fontsize=10)
        ax.set_xlabel("l - dL (target degree minus predicted ceiling)")
    axes[0, 0].set_ylabel("held-out rho")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    rows_needed = (len(labels) + 4) // 5
    fig.tight_layout(rect=(0, 0.06 * rows_needed + 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, frameon=False)
    return fig


def write_survey_outputs(result, out_dir, plots: bool = True, overwrite: bool = False):
    """``survey.png`` (with ``plots``), ``report.md`` and ``results.json`` as one set."""
    return write_run_set(out_dir, result, render_survey_report,
                         {"survey.png": survey_figure} if plots else None, overwrite)
