"""A sweep's outputs (docs/method.md §2.11, §5): ``results.json`` (one row per group,
dataset, marked pair, seed and ``d``, plus every run's full diagnose results),
``report.md``, ``sweep.png`` and ``timings.json``, written as one set
(:func:`empirical.io.write_file_set`).

``results.json`` is a function of the configuration and the data only: the same sweep
rerun (from the store or not, on any number of workers) writes the same file. What varies
from run to run (wall times, tasks computed or taken from the store, the cluster) is in
``timings.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import write_file_set
from .._result import RunResult
from ..runtime import versions
from ..diagnostic import THRESHOLDS
from ..render import interval, num, png_bytes, pyplot

__all__ = ["SweepRow", "SweepResult", "SWEEP_SCHEMA", "render_sweep_report", "sweep_figure",
           "write_sweep_outputs"]

#: ``results.json["schema"]`` of a sweep.
SWEEP_SCHEMA = "spectral-ceilings-sweep/1"


@dataclass(frozen=True)
class SweepRow:
    """One group on one dataset, marked pair and seed, at one probe degree ``d``."""

    run: str
    group: str
    epoch: Optional[int]
    backbones: Tuple[str, ...]
    dataset: str
    marked: Tuple[int, int]
    seed: int
    d: int
    L: int
    predicted_ceiling: int
    measured_ceiling: Optional[int]
    agreement: Optional[bool]
    rho_boundary: Optional[float]
    rho_boundary_ci: Optional[List[Optional[float]]]
    rho_above: Optional[float]
    rho_above_ci: Optional[List[Optional[float]]]
    cliff_ratio: Optional[float]
    equivariant: Optional[bool]

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["backbones"] = list(self.backbones)
        out["marked"] = list(self.marked)
        return out


class SweepResult(RunResult):
    """``payload``: ``schema``, ``config``, ``rows`` (:class:`SweepRow` dicts), ``runs``
    (run id -> that run's diagnose results.json), ``warnings``. ``timings`` (not in the
    payload): wall time, tasks computed and taken from the store, seconds per task kind."""

    def __init__(self, payload: Dict, seconds: float = 0.0, timings: Optional[Dict] = None):
        super().__init__(payload, seconds)
        self.timings = timings or {}

    @property
    def rows(self) -> List[Dict]:
        return self.payload["rows"]

    @classmethod
    def build(cls, plan, results, timing: Dict, store: str) -> "SweepResult":
        rows: List[SweepRow] = []
        runs: Dict[str, Dict] = {}
        warnings: List[str] = []
        for job, result in zip(plan.runs, results):
            runs[job.run_id] = result.to_dict()
            warnings += [f"{job.run_id}: {w}" for w in result.warnings]
            equivariant = (None if any(b.equivariant is None for b in result.backbones)
                           else all(b.equivariant for b in result.backbones))
            for d, s in sorted(result.summaries.items()):
                rows.append(SweepRow(
                    run=job.run_id, group=job.group.name, epoch=job.group.epoch,
                    backbones=tuple(b.name for b in result.backbones), dataset=job.dataset,
                    marked=tuple(int(x) for x in job.plan.marked), seed=job.seed, d=d,
                    L=s.L, predicted_ceiling=s.ceiling, measured_ceiling=s.measured_ceiling,
                    agreement=s.agreement, rho_boundary=s.rho_boundary,
                    rho_boundary_ci=s.rho_ci.get(s.ceiling), rho_above=s.rho_above,
                    rho_above_ci=s.rho_ci.get(s.ceiling + 1), cliff_ratio=s.cliff_ratio,
                    equivariant=equivariant))
        config = {**plan.config.to_dict(), "thresholds": dict(THRESHOLDS),
                  "versions": versions()}
        config.pop("source", None)      # where the file lay is not part of the result
        payload = {"schema": SWEEP_SCHEMA, "config": config,
                   "rows": [r.to_dict() for r in rows], "runs": runs, "warnings": warnings}
        return cls(payload, seconds=timing["seconds"], timings={**timing, "store": store})

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """``results.json``, ``report.md``, ``sweep.png`` and ``timings.json`` as one set."""
        return write_sweep_outputs(self, out_dir, plots=plots, overwrite=overwrite)


def render_sweep_report(result: SweepResult, plot_files: Sequence[str] = ()) -> str:
    c = result.payload["config"]
    rows = result.rows
    agree = sum(r["agreement"] is True for r in rows)
    disagree = [r for r in rows if r["agreement"] is False]
    out = ["# Sweep", "",
           f"{len({r['run'] for r in rows})} runs ({len(c['groups'])} groups x "
           f"{len(c['datasets'])} datasets x {len(c['marked'] or [None])} marked pairs x "
           f"{len(c['seeds'])} seeds), probe degrees {c['degrees']}, lmax {c['lmax']}, "
           f"{c['frames'] or 'all'} frames, {c['options']['n_boot']} bootstrap resamples. "
           "Each run is one `empirical diagnose` of its group (its full results are under "
           "`runs` in results.json); a row is one run at one d (docs/method.md §2.11).", "",
           f"**{agree} of {len(rows)} rows agree** with the theorem's prediction; "
           f"{len(disagree)} disagree; {len(rows) - agree - len(disagree)} untested.", ""]
    out += ["| group | epoch | dataset | marked | seed | d | L | dL | measured | rho(dL) [95% CI] "
            "| rho(dL+1) [95% CI] | agreement |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['group']} | {'-' if r['epoch'] is None else r['epoch']} | "
                   f"{r['dataset']} | {r['marked'][0]}-{r['marked'][1]} | {r['seed']} | "
                   f"{r['d']} | {r['L']} | {r['predicted_ceiling']} | "
                   f"{'-' if r['measured_ceiling'] is None else r['measured_ceiling']} | "
                   f"{num(r['rho_boundary'])} {interval(r['rho_boundary_ci'], 2)} | "
                   f"{num(r['rho_above'])} {interval(r['rho_above_ci'], 2)} | "
                   f"{ {True: 'agrees', False: '**disagrees**', None: 'untested'}[r['agreement']]} |")
    out.append("")
    for name in plot_files:
        out += [f"![{name}]({name})", ""]
    if result.payload["warnings"]:
        out += ["## Warnings", ""] + [f"- {w}" for w in result.payload["warnings"]] + [""]
    v = c.get("versions", {})
    out += ["## Reproduce", "", "The configuration (with every option and seed) is "
            "`config` in results.json; versions: "
            + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".", ""]
    return "\n".join(out)


def sweep_figure(result: SweepResult):
    """One panel per ``d``: rho(dL) and rho(dL + 1) with their 95 % intervals for every
    row, against the epoch when every group is a checkpoint of a training run, else
    against the group. Series per (dataset, marked pair, seed)."""
    plt = pyplot()
    rows = result.rows
    degrees = sorted({r["d"] for r in rows})
    by_epoch = all(r["epoch"] is not None for r in rows)
    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, axes = plt.subplots(1, len(degrees), figsize=(4.2 * len(degrees), 3.6), squeeze=False)
    series = list(dict.fromkeys((r["dataset"], tuple(r["marked"]), r["seed"]) for r in rows))
    for ax, d in zip(axes[0], degrees):
        for s_i, key in enumerate(series):
            sel = [r for r in rows if r["d"] == d
                   and (r["dataset"], tuple(r["marked"]), r["seed"]) == key]
            x = [r["epoch"] if by_epoch else groups.index(r["group"]) for r in sel]
            for field_, ci_field, style, label in (
                    ("rho_boundary", "rho_boundary_ci", "o-", "rho(dL)"),
                    ("rho_above", "rho_above_ci", "s--", "rho(dL+1)")):
                y = [r[field_] if r[field_] is not None else float("nan") for r in sel]
                lo = [y_ - (r[ci_field][0] if r[ci_field] and r[ci_field][0] is not None
                            else y_) for y_, r in zip(y, sel)]
                hi = [(r[ci_field][1] if r[ci_field] and r[ci_field][1] is not None else y_)
                      - y_ for y_, r in zip(y, sel)]
                tag = "" if len(series) == 1 else f" ({key[0]}, {key[1][0]}-{key[1][1]}, s{key[2]})"
                ax.errorbar(x, y, yerr=[lo, hi], fmt=style, ms=4, capsize=2, lw=1,
                            label=label + tag, color=f"C{2 * s_i + (label != 'rho(dL)')}")
        ceil = {r["predicted_ceiling"] for r in rows if r["d"] == d}
        ax.axhline(THRESHOLDS["recoverable"], color="0.5", lw=0.7, ls=":")
        ax.axhline(THRESHOLDS["blind"], color="0.7", lw=0.7, ls=":")
        ax.axhline(0, color="0.8", lw=0.5)
        ax.set_title(f"d = {d} (dL = {', '.join(str(c) for c in sorted(ceil))})")
        ax.set_ylim(-0.2, 1.05)
        if by_epoch:
            ax.set_xlabel("epoch")
        else:
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels(groups, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("held-out rho")
    axes[0][0].legend(fontsize=7, loc="lower left" if by_epoch else "best")
    fig.tight_layout()
    return fig


def write_sweep_outputs(result: SweepResult, out_dir, plots: bool = True,
                        overwrite: bool = False):
    files: Dict[str, bytes] = {}
    if plots:
        files["sweep.png"] = png_bytes(sweep_figure(result))
    files["report.md"] = render_sweep_report(result, list(files)).encode()
    files["results.json"] = result.to_json().encode()
    files["timings.json"] = (json.dumps(result.timings, indent=1) + "\n").encode()
    return write_file_set(out_dir, files, overwrite=overwrite)
