"""Outputs of the C5 calibration: ``results.json``, ``report.md``, ``c5_heatmap.png``.

Everything is rendered in memory first, then written file by file atomically
(:func:`empirical.io.atomic_path`), so an error in the content writes nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List

from ..io import write_file_set

__all__ = ["write_c5_outputs", "render_c5_report", "c5_heatmap_png"]


def _num(x) -> str:
    if x is None:
        return "undefined"
    x = 0.0 if round(float(x), 3) == 0 else float(x)
    return f"{x:.3f}"


def _groups(cells: List[Dict]) -> List[tuple]:
    """``(features, L)`` labels in run order."""
    out = []
    for c in cells:
        key = (c["features"], c["L"], c["source"])
        if key not in out:
            out.append(key)
    return out


def render_c5_report(result) -> str:
    p = result.payload
    cfg = p["config"]
    cells = p["cells"]
    lmax = cfg["lmax"]
    lines = ["# C5 calibration", "",
             f"{cfg['structures']}: {cfg['n_structures']} structures (centre, five identical "
             f"ring atoms, apex of another species), each under its own Haar-random rotation; "
             f"probe training on {cfg['n_train']}, held-out {cfg['n_test']}. Feature sources: "
             f"{', '.join(cfg['sources'])}; L = {', '.join(map(str, cfg['Ls']))}; probe degrees "
             f"d = {', '.join(map(str, cfg['degrees']))}. Axis probe: targets s_l (l = 0..{lmax}) "
             f"of the centre -> apex direction, predicted recoverable iff l <= dL "
             f"(spanthm.recoverable_degrees). Ring probe: t = sum_k c . Y_5(v_k), the SPN "
             f"polynomial applied to each ring atom and summed over the ring, predicted with "
             f"spanthm.ring_recoverable (recoverable iff dL >= 5). Seed {cfg['seed']}.", "",
             f"Verdict thresholds: recoverable rho >= {cfg['thresholds']['recoverable']}, blind "
             f"|rho| <= {cfg['thresholds']['blind']}; calibration bar: rho >= "
             f"{cfg['calibration_bar']['recoverable']} where recoverable, |rho| <= "
             f"{cfg['calibration_bar']['blind']} where blind (cells below it are marked *).", ""]
    for features, L, source in _groups(cells):
        mine = [c for c in cells if c["features"] == features and c["L"] == L]
        lines += [f"## {features} (L = {L})", "",
                  "| d | " + " | ".join(f"axis l={l}" for l in range(1, lmax + 1))
                  + " | ring l=5 | k |",
                  "|---" * (lmax + 3) + "|"]
        for d in cfg["degrees"]:
            row = []
            for l in range(1, lmax + 1):
                c = next(c for c in mine if c["d"] == d and c["probe"] == "axis" and c["l"] == l)
                row.append(_fmt_cell(c))
            ring = next(c for c in mine if c["d"] == d and c["probe"] == "ring")
            k = next(c for c in mine if c["d"] == d and c["probe"] == "axis")["k"]
            lines.append(f"| {d} | " + " | ".join(row) + f" | {_fmt_cell(ring)} | {k} |")
        lines += ["", "Bold: predicted recoverable; plain: predicted blind; "
                  "DISAGREES marks a cell whose verdict contradicts the prediction.", ""]
    lines += ["## Agreement", ""]
    for source, s in p["summary"].items():
        lines.append(f"- {source}: {s['agree']} of {s['cells']} defined cells agree with the "
                     f"prediction; {s['meet_bar']} meet the calibration bar.")
    lines.append(f"- overall: {'every cell agrees' if p['agreement'] else 'some cells disagree'}.")
    if p["training"]:
        lines += ["", "## Briefly trained backbones", "",
                  "| features | epochs | training structures | held-out energy MAE [meV] | "
                  "force MAE [meV/A] |", "|---|---|---|---|---|"]
        for t in p["training"]:
            lines.append(f"| {t['features']} | {t['epochs']} | {t['frames']} | "
                         f"{t['test_energy_mae_meV']:.2f} | {t['test_force_mae_meV_per_A']:.2f} |")
    lines += ["", "![C5 heat map](c5_heatmap.png)", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in cfg["versions"].items()) + ".",
              "", f"Run time: {result.seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def _fmt_cell(c: Dict) -> str:
    text = _num(c["rho"])
    if c["predicted"] == "recoverable":
        text = f"**{text}**"
    if c["agrees"] is False:
        text += " DISAGREES"
    elif c["meets_bar"] is False:
        text += "*"
    return text


def c5_heatmap_png(payload: Dict) -> bytes:
    """One panel per feature source: rows (L, d), columns axis l = 1..lmax and the ring;
    colour = held-out rho; the predicted-blind cells are hatched."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg, cells = payload["config"], payload["cells"]
    lmax = cfg["lmax"]
    sources = cfg["sources"]
    rows = [(L, d) for L in cfg["Ls"] for d in cfg["degrees"]]
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources) + 1, 0.45 * len(rows) + 2),
                             squeeze=False)
    try:
        for ax, source in zip(axes[0], sources):
            M = np.full((len(rows), lmax + 1), np.nan)
            blind = np.zeros_like(M, dtype=bool)
            for i, (L, d) in enumerate(rows):
                for c in cells:
                    if c["source"] != source or c["L"] != L or c["d"] != d:
                        continue
                    j = c["l"] - 1 if c["probe"] == "axis" else lmax
                    if c["probe"] == "axis" and c["l"] == 0:
                        continue
                    M[i, j] = np.nan if c["rho"] is None else c["rho"]
                    blind[i, j] = c["predicted"] == "blind"
            im = ax.imshow(M, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
            for i in range(M.shape[0]):
                for j in range(M.shape[1]):
                    if blind[i, j]:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                   hatch="///", edgecolor="0.5", lw=0))
                    if np.isfinite(M[i, j]):
                        ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=6.5)
            ax.set_xticks(range(lmax + 1))
            ax.set_xticklabels([str(l) for l in range(1, lmax + 1)] + ["ring\n5"], fontsize=8)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([f"L={L}, d={d}" for L, d in rows], fontsize=8)
            ax.axvline(lmax - 0.5, color="k", lw=1.2)
            ax.set_xlabel("axis probe target degree l  |  ring probe")
            ax.set_title(f"{source} features", fontsize=10)
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="held-out rho")
        fig.suptitle("C5 calibration: measured rho; hatched = predicted blind (spanthm)",
                     fontsize=11)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def write_c5_outputs(result, out_dir: Path, plots: bool = True,
                     overwrite: bool = False) -> List[Path]:
    """Write ``results.json``, ``report.md`` and (with ``plots``) ``c5_heatmap.png`` as one
    set (:func:`empirical.io.write_file_set`)."""
    files = {"results.json": result.to_json().encode(),
             "report.md": render_c5_report(result).encode()}
    if plots:
        files["c5_heatmap.png"] = c5_heatmap_png(result.payload)
    return write_file_set(out_dir, {name: files[name] for name in
                                    sorted(files, key=lambda n: n == "results.json")},
                          overwrite=overwrite)
