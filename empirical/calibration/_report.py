"""Outputs of the C5 calibration (docs/method.md §3): ``results.json``, ``report.md``,
``c5_heatmap.png``.

Numbers, tables and the figure go through :mod:`empirical.render`. Everything is rendered in
memory first, then written file by file atomically (:func:`empirical.io.write_file_set`),
so an error in the content writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from ..io import write_file_set
from ..render import num, png_bytes, pyplot, table
from ._c5 import C5Cell, C5Result

__all__ = ["write_c5_outputs", "render_c5_report", "c5_heatmap_png"]


def _groups(cells: List[C5Cell]) -> List[Tuple[str, int, str]]:
    """``(features, L, source)`` labels in run order."""
    out = []
    for c in cells:
        key = (c.features, c.L, c.source)
        if key not in out:
            out.append(key)
    return out


def _introduction(result: C5Result) -> List[str]:
    """What was run: the structures, the probes and their predictions, the thresholds."""
    cfg = result.config
    return [f"{cfg.structures}: {cfg.n_structures} structures (centre, five identical "
            f"ring atoms, apex of another species), each under its own Haar-random rotation; "
            f"probe training on {cfg.n_train}, held-out {cfg.n_test}. Feature sources: "
            f"{', '.join(cfg.sources)}; L = {', '.join(map(str, cfg.Ls))}; probe degrees "
            f"d = {', '.join(map(str, cfg.degrees))}. Axis probe: targets s_l (l = 0..{cfg.lmax})"
            f" of the centre -> apex direction, predicted recoverable iff l <= dL "
            f"(spanthm.recoverable_degrees). Ring probe: t = sum_k c . Y_5(v_k), the SPN "
            f"polynomial applied to each ring atom and summed over the ring, predicted with "
            f"spanthm.ring_recoverable (recoverable iff dL >= 5). Seed {cfg.seed}.", "",
            f"Verdict thresholds: recoverable rho >= {cfg.thresholds['recoverable']}, blind "
            f"|rho| <= {cfg.thresholds['blind']}; calibration bar: rho >= "
            f"{cfg.calibration_bar['recoverable']} where recoverable, |rho| <= "
            f"{cfg.calibration_bar['blind']} where blind (cells below it are marked *).", ""]


def _source_table(result: C5Result, features: str, L: int) -> List[str]:
    """One (features, L): a row per probe degree, the axis cells, the ring cell and k."""
    lmax = result.config.lmax
    mine = {(c.d, c.probe, c.l): c for c in result.cells
            if c.features == features and c.L == L}
    header = (["d"] + [f"axis l={l}" for l in range(1, lmax + 1)] + ["ring l=5", "k"])
    rows = []
    for d in result.config.degrees:
        ring = next(c for (dd, probe, _), c in mine.items() if dd == d and probe == "ring")
        rows.append([d] + [_fmt_cell(mine[(d, "axis", l)]) for l in range(1, lmax + 1)]
                    + [_fmt_cell(ring), mine[(d, "axis", 0)].k])
    return [f"## {features} (L = {L})", "", table(header, rows), "",
            "Bold: predicted recoverable; plain: predicted blind; MISSES marks a cell "
            "whose point-estimate verdict (C5 cells have no interval) is not the predicted "
            "one.", ""]


def render_c5_report(result: C5Result) -> str:
    """``report.md`` of a C5 run."""
    lines = ["# C5 calibration", ""] + _introduction(result)
    for features, L, _ in _groups(result.cells):
        lines += _source_table(result, features, L)
    lines += ["## Agreement", ""]
    for source, s in result.summary.items():
        lines.append(f"- {source}: {s.agree} of {s.cells} defined cells agree with the "
                     f"prediction; {s.meet_bar} meet the calibration bar.")
    lines.append("- overall: "
                 f"{'every cell agrees' if result.agreement else 'some cells miss the prediction'}.")
    if result.training:
        rows = [[t.features, t.epochs, t.frames, num(t.test_energy_mae_meV, 2),
                 num(t.test_force_mae_meV_per_A, 2)] for t in result.training]
        lines += ["", "## Briefly trained backbones", "",
                  table(["features", "epochs", "training structures",
                         "held-out energy MAE [meV]", "force MAE [meV/A]"], rows)]
    lines += ["", "![C5 heat map](c5_heatmap.png)", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in result.config.versions.items())
              + ".", "", f"Run time: {num(result.seconds, 0)} s."]
    return "\n".join(lines) + "\n"


def _fmt_cell(c: C5Cell) -> str:
    text = num(c.rho)
    if c.predicted == "recoverable":
        text = f"**{text}**"
    if c.agrees is False:
        text += " MISSES"
    elif c.meets_bar is False:
        text += "*"
    return text


def _panel(ax, plt, result: C5Result, source: str):
    """One feature source: rows (L, d), columns axis l = 1..lmax and the ring."""
    import numpy as np

    cfg = result.config
    lmax = cfg.lmax
    rows = [(L, d) for L in cfg.Ls for d in cfg.degrees]
    M = np.full((len(rows), lmax + 1), np.nan)
    blind = np.zeros_like(M, dtype=bool)
    for i, (L, d) in enumerate(rows):
        for c in result.cells:
            if c.source != source or c.L != L or c.d != d or (c.probe == "axis" and c.l == 0):
                continue
            j = c.l - 1 if c.probe == "axis" else lmax
            M[i, j] = np.nan if c.rho is None else c.rho
            blind[i, j] = c.predicted == "blind"
    im = ax.imshow(M, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(M):
        if blind[i, j]:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                       edgecolor="0.5", lw=0))
        if np.isfinite(value):
            ax.text(j, i, num(value, 2), ha="center", va="center", fontsize=6.5)
    ax.set_xticks(range(lmax + 1))
    ax.set_xticklabels([str(l) for l in range(1, lmax + 1)] + ["ring\n5"], fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"L={L}, d={d}" for L, d in rows], fontsize=8)
    ax.axvline(lmax - 0.5, color="k", lw=1.2)
    ax.set_xlabel("axis probe target degree l  |  ring probe")
    ax.set_title(f"{source} features", fontsize=10)
    return im


def c5_heatmap_png(result: C5Result) -> bytes:
    """One panel per feature source: rows (L, d), columns axis l = 1..lmax and the ring;
    colour = held-out rho; the predicted-blind cells are hatched."""
    plt = pyplot()
    sources = result.config.sources
    n_rows = len(result.config.Ls) * len(result.config.degrees)
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources) + 1,
                                                       0.45 * n_rows + 2), squeeze=False)
    try:
        for ax, source in zip(axes[0], sources):
            im = _panel(ax, plt, result, source)
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="held-out rho")
        fig.suptitle("C5 calibration: measured rho; hatched = predicted blind (spanthm)",
                     fontsize=11)
    except BaseException:
        plt.close(fig)
        raise
    return png_bytes(fig)


def write_c5_outputs(result: C5Result, out_dir: Path, plots: bool = True,
                     overwrite: bool = False) -> List[Path]:
    """Write ``results.json``, ``report.md`` and (with ``plots``) ``c5_heatmap.png`` as one
    set (:func:`empirical.io.write_file_set`)."""
    files = {"results.json": result.to_json().encode(),
             "report.md": render_c5_report(result).encode()}
    if plots:
        files["c5_heatmap.png"] = c5_heatmap_png(result)
    return write_file_set(out_dir, {name: files[name] for name in
                                    sorted(files, key=lambda n: n == "results.json")},
                          overwrite=overwrite)
