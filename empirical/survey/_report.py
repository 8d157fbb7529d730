"""Reports of the per-layer profile and the survey: report.md, a figure, results.json,
written as one set (:func:`empirical.io.write_file_set`)."""

from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence

from ..io import write_file_set

__all__ = ["render_profile_report", "profile_figure", "write_profile_outputs",
           "render_survey_report", "survey_figure", "write_survey_outputs", "survey_table"]


def _num(x, decimals: int = 3) -> str:
    return "-" if x is None else f"{x:.{decimals}f}"


def _ci(ci, decimals: int = 2) -> str:
    if ci is None or any(v is None for v in ci):
        return ""
    return f" [{ci[0]:.{decimals}f}, {ci[1]:.{decimals}f}]"


def _agree(a: Optional[bool]) -> str:
    return {True: "agrees", False: "**disagrees**", None: "untested"}[a]


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _versions_line(config: Dict) -> str:
    v = config.get("versions", {})
    return ", ".join(f"{k} {v[k]}" for k in sorted(v))


# -- profile -------------------------------------------------------------------------------

def render_profile_report(result, plot_files: Sequence[str] = ()) -> str:
    c = result.payload["config"]
    rows = result.rows
    lmax = c["lmax"]
    out = [f"# Per-layer spectral profile (d = {c['d']})", "",
           f"Data: {c['dataset']['source']} ({c['dataset']['frames_used']} of "
           f"{c['dataset']['frames_total']} frames, {c['n_test']} held-out rotated "
           f"configurations), marked atoms {c['marked_atoms']}, seed {c['seed']}, "
           f"{c['n_boot']} bootstrap resamples. Each layer is diagnosed on its own with the "
           "same plan; its predicted ceiling is d x (its own L). Bold: rho of the "
           "predicted-recoverable degrees l <= dL.", ""]
    for name in plot_files:
        out += [f"![per-layer profile]({name})", ""]
    for b in result.payload["backbones"]:
        out += [f"## {b['name']}", "", f"Source: {b['source']}", ""]
        head = "| layer | irreps | L | ceiling dL | measured | " + " | ".join(
            f"l={l}" for l in range(lmax + 1)) + " | |"
        out += [head, "|" + "---|" * (lmax + 7)]
        for r in (r for r in rows if r["backbone"] == b["name"]):
            cells = []
            for l in range(lmax + 1):
                v = r["rho"].get(str(l))
                text = _num(v, 2)
                cells.append(f"**{text}**" if l <= r["predicted_ceiling"] and v is not None
                             else text)
            out.append(f"| {r['layer']} | {r['irreps_out']} | {r['L']} | "
                       f"{r['predicted_ceiling']} | {r['measured_ceiling']} | "
                       + " | ".join(cells) + f" | {_agree(r['agreement'])} |")
        out.append("")
    out += ["## Reproduce", "", f"Versions: {_versions_line(c)}.", ""]
    return "\n".join(out) + "\n"


def profile_figure(result):
    """One heatmap per backbone: layers (rows) x target degree l (columns), colour rho;
    the black step marks each layer's predicted ceiling dL (recoverable to its left)."""
    import numpy as np

    plt = _pyplot()
    c = result.payload["config"]
    lmax = c["lmax"]
    backbones = result.payload["backbones"]
    heights = [max(1, sum(r["backbone"] == b["name"] for r in result.rows)) for b in backbones]
    fig, axes = plt.subplots(len(backbones), 1, squeeze=False,
                             figsize=(3.5 + 0.55 * (lmax + 1), 1.4 + 0.6 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, b in zip(axes[:, 0], backbones):
        rows = [r for r in result.rows if r["backbone"] == b["name"]]
        grid = np.full((len(rows), lmax + 1), np.nan)
        for i, r in enumerate(rows):
            for l in range(lmax + 1):
                v = r["rho"].get(str(l))
                grid[i, l] = np.nan if v is None else v
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, r in enumerate(rows):
            x = r["predicted_ceiling"] + 0.5
            ax.plot([x, x], [i - 0.5, i + 0.5], color="k", lw=2)
            for l in range(lmax + 1):
                if not np.isnan(grid[i, l]):
                    ax.text(l, i, f"{grid[i, l]:.2f}", ha="center", va="center", fontsize=7,
                            color="w" if grid[i, l] < 0.6 else "k")
        ax.set_yticks(range(len(rows)), [f"{r['layer']} (L={r['L']})" for r in rows],
                      fontsize=8)
        ax.set_xticks(range(lmax + 1))
        ax.set_title(f"{b['name']}: rho(l) per layer, d = {c['d']}\n(black line: predicted "
                     "ceiling dL; recoverable to its left)", fontsize=9)
    axes[-1, 0].set_xlabel("target degree l")
    fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.9, label="held-out rho")
    return fig


def write_profile_outputs(result, out_dir, plots: bool = True, overwrite: bool = False):
    files: Dict[str, bytes] = {}
    if plots:
        files["profile.png"] = _png(profile_figure(result))
    files["report.md"] = render_profile_report(result, [n for n in files]).encode()
    files["results.json"] = result.to_json().encode()
    return write_file_set(out_dir, files, overwrite=overwrite)


# -- survey --------------------------------------------------------------------------------

def survey_table(rows: Sequence[Dict]) -> List[str]:
    """The survey's markdown table (also the README's)."""
    out = ["| model | L | layers | parameters | d | ceiling dL | measured | rho(dL) [95% CI] "
           "| rho(dL+1) [95% CI] | equivariance error | |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        params = "-" if r["parameters"] is None else f"{r['parameters'] / 1e6:.2f} M"
        out.append(
            f"| {r['model']} | {r['L']} | {r['layers'] if r['layers'] is not None else '-'} | "
            f"{params} | {r['d']} | {r['predicted_ceiling']} | {r['measured_ceiling']} | "
            f"{_num(r['rho_boundary'])}{_ci(r['rho_boundary_ci'])} | "
            f"{_num(r['rho_above'])}{_ci(r['rho_above_ci'])} | "
            f"{r['equivariance_error']:.1e}{'' if r.get('parity', True) else ' (SO(3))'} | "
            f"{_agree(r['agreement'])} |")
    return out


def render_survey_report(result, plot_files: Sequence[str] = ()) -> str:
    c = result.payload["config"]
    rows = result.rows
    agree = sum(r["agreement"] is True for r in rows)
    out = ["# Survey: the spectral ceiling of every model available here", "",
           f"Data: {c['dataset']['source']} ({c['dataset']['frames_used']} of "
           f"{c['dataset']['frames_total']} frames, {c['n_test']} held-out rotated "
           f"configurations), marked atoms {c['marked_atoms']}, seed {c['seed']}, "
           f"{c['n_boot']} bootstrap resamples, lmax {c['lmax_rule']}. Every model is "
           "diagnosed on its own (no pooling) with the same plan. "
           f"**{agree} of {len(rows)}** (model, d) rows agree with spanthm's ceiling.", ""]
    for name in plot_files:
        out += [f"![survey]({name})", ""]
    out += survey_table(rows) + [""]
    out += ["Columns: L and the irreps are those of the layer read (the last with l > 0 "
            "unless the spec names one); layers: interaction layers with l > 0 features; "
            "equivariance error: max abs over one rotation and one roto-reflection of one "
            "configuration, in the model's dtype; (SO(3)): a model without parity (SevenNet), "
            "judged on the rotation alone, its reflection error recorded in `runs`.", ""]
    out += ["## Models", "", "| model | irreps read | layer | source | eps (eV) | "
            "energy-error RMSE (meV) |", "|---|---|---|---|---|---|"]
    seen = set()
    for r in rows:
        if r["model"] in seen:
            continue
        seen.add(r["model"])
        out.append(f"| {r['model']} | {r['irreps_out']} | {r['layer'] or '-'} | "
                   f"{r['source']} | {_num(r['eps_eV'], 4)} | "
                   f"{_num(r['energy_error_rmse_meV'], 1)} |")
    out.append("")
    warnings = [(m, w) for m, run in result.payload["runs"].items()
                for w in run.get("warnings", [])]
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
    plt = _pyplot()
    rows = result.rows
    degrees = sorted({r["d"] for r in rows})
    runs = result.payload["runs"]
    fig, axes = plt.subplots(1, len(degrees), squeeze=False, sharey=True,
                             figsize=(4.2 * len(degrees), 3.8))
    models = list(dict.fromkeys(r["model"] for r in rows))
    cmap = plt.get_cmap("tab10")
    for ax, d in zip(axes[0], degrees):
        for j, m in enumerate(models):
            s = runs[m]["summary"].get(str(d))
            if s is None:
                continue
            ceiling = s["ceiling"]
            ls = sorted(int(l) for l, v in s["rho"].items() if v is not None)
            ax.plot([l - ceiling for l in ls], [s["rho"][str(l)] for l in ls], marker="o",
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
    files: Dict[str, bytes] = {}
    if plots:
        files["survey.png"] = _png(survey_figure(result))
    files["report.md"] = render_survey_report(result, [n for n in files]).encode()
    files["results.json"] = result.to_json().encode()
    return write_file_set(out_dir, files, overwrite=overwrite)
