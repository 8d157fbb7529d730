"""Calibration versus aspirin (docs/method.md §5): one overlay per probe degree, a table, a paragraph.

:func:`compare` reads the payloads of a C5 run (:func:`run_c5`) and an aspirin diagnostic
(:func:`empirical.diagnose`) and sets, for the aspirin backbones' ``L`` and every ``d`` of
the diagnostic, the C5 axis-probe rho(l) of every C5 feature source beside the aspirin mean
rho(l) (with its bootstrap interval) and the predicted step (1 up to ``dL``, 0 above).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List

from typing import Union

from .._io import write_file_set, write_files
from ..diagnostic import DiagnoseResult
from ..diagnostic._verdict import agrees

__all__ = ["compare", "write_compare_outputs"]


def compare(c5: Dict, aspirin: Union[DiagnoseResult, Dict]) -> Dict:
    """The comparison as a JSON-ready dict: ``rows`` (d, l, predicted, C5 rho per source,
    aspirin rho and interval, agreement flags) and ``paragraph``. ``aspirin`` is a
    :class:`DiagnoseResult` or its ``results.json`` dictionary (``ValueError`` if it is
    neither)."""
    if not isinstance(aspirin, DiagnoseResult):
        aspirin = DiagnoseResult.from_dict(aspirin)
    Ls = {b.L for b in aspirin.backbones}
    if len(Ls) != 1:
        raise ValueError(f"the aspirin run mixes backbone degrees {sorted(Ls)}")
    L = Ls.pop()
    if L not in c5["config"]["Ls"]:
        raise ValueError(f"the C5 run has no L = {L} (it has {c5['config']['Ls']}): rerun "
                         f"empirical c5 with --L {L}")
    sources = c5["config"]["sources"]
    rows: List[Dict] = []
    sentences: List[str] = []
    for d, s in sorted(aspirin.summaries.items()):
        if d not in c5["config"]["degrees"]:
            continue
        dl = s.ceiling
        bad = []
        for l, rho in sorted(s.rho.items()):
            if l == 0:
                continue
            predicted = "recoverable" if l <= dl else "blind"
            row = {"d": d, "l": l, "predicted": predicted, "aspirin_rho": rho,
                   "aspirin_rho_ci": s.rho_ci[l],
                   "aspirin_agrees": agrees(rho, predicted)}
            for src in sources:
                cell = next((c for c in c5["cells"] if c["source"] == src and c["L"] == L
                             and c["d"] == d and c["probe"] == "axis" and c["l"] == l), None)
                row[f"c5_{src}_rho"] = None if cell is None else cell["rho"]
                row[f"c5_{src}_agrees"] = None if cell is None else cell["agrees"]
            rows.append(row)
            for key in ["aspirin"] + [f"c5_{src}" for src in sources]:
                if row[f"{key}_agrees"] is False:
                    bad.append(f"{key.replace('c5_', 'C5 ')} at l = {l}")
        if bad:
            sentences.append(f"d = {d} (ceiling {dl}): calibration, aspirin and theorem "
                             f"disagree at: {'; '.join(bad)}.")
        else:
            sentences.append(f"d = {d} (ceiling {dl}): the C5 calibration "
                             f"({', '.join(sources)} features), aspirin and the theorem agree "
                             f"at every l: recovered up to l = {dl}, blind above.")
    return {"L": L, "sources": sources, "rows": rows, "paragraph": " ".join(sentences),
            "agreement": all(r[k] is not False for r in rows for k in r if k.endswith("agrees"))}


def _figure(cmp: Dict, d: int) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None},
                    bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def _report(cmp: Dict) -> str:
    srcs = cmp["sources"]
    lines = ["# Calibration versus aspirin", "", cmp["paragraph"], "",
             "| d | l | predicted | " + " | ".join(f"C5 {s}" for s in srcs)
             + " | aspirin mean rho [95 % CI] |", "|---" * (4 + len(srcs)) + "|"]

    def f(x):
        return "undefined" if x is None else f"{x:.3f}"

    for r in cmp["rows"]:
        ci = r["aspirin_rho_ci"] or [None, None]
        lines.append(f"| {r['d']} | {r['l']} | {r['predicted']} | "
                     + " | ".join(f(r[f'c5_{s}_rho']) for s in srcs)
                     + f" | {f(r['aspirin_rho'])} [{f(ci[0])}, {f(ci[1])}] |")
    ds = sorted({r["d"] for r in cmp["rows"]})
    lines += [""] + [f"![d = {d}](compare_d{d}.png)" for d in ds]
    return "\n".join(lines) + "\n"


def write_compare_outputs(cmp: Dict, out_dir: Path, overwrite: bool = False,
                          as_set: bool = True) -> List[Path]:
    """``compare.json``, ``compare.md`` and ``compare_d{d}.png``: as one set into
    ``out_dir`` (which must not hold files unless ``overwrite``), or, with ``as_set=False``,
    each file atomically beside others (the reproduction's index folder)."""
    import json

    ds = sorted({r["d"] for r in cmp["rows"]})
    files = {f"compare_d{d}.png": _figure(cmp, d) for d in ds}
    files["compare.md"] = _report(cmp).encode()
    files["compare.json"] = (json.dumps(cmp, indent=1) + "\n").encode()
    if as_set:
        return write_file_set(out_dir, files, overwrite=overwrite)
    return write_files(out_dir, files)
