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

import copy
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .._result import TypedResult
from ..io import write_run_set
from ..runtime import versions
from ..diagnostic import (AGREES, DEGREE_STATUSES, STATUS_WORDS, THRESHOLDS, VIOLATES,
                          DegreeHeadline, DiagnoseResult, probe_label)
from ..render import MISSING, interval, num, pyplot, table
from ..survey import draws_sentence

__all__ = ["SweepRunRow", "SweepResult", "SWEEP_SCHEMA", "render_sweep_report",
           "sweep_figure", "write_sweep_outputs"]

#: ``results.json["schema"]`` of a sweep.
SWEEP_SCHEMA = "spectral-ceilings-sweep/2"
#: Read too: version 1 (before interval verdicts and per-model draws).
SWEEP_SCHEMA_READS = ("spectral-ceilings-sweep/1",)


@dataclass(frozen=True)
class SweepRunRow:
    """One run of the sweep (a group on one dataset, marked pair and seed) at one probe
    degree: which run, and the headline of its ``d``.

    ``epoch`` is set for a single checkpoint of a training run; ``backbones`` the group's
    backbone names; ``equivariant`` ``None`` when a backbone's premise is unknown.
    """

    run: str
    group: str
    epoch: Optional[int]
    backbones: Tuple[str, ...]
    dataset: str
    marked: Tuple[int, int]
    seed: int
    headline: DegreeHeadline
    equivariant: Optional[bool]

    #: The keys of a row in ``results.json``, in order.
    KEYS = ("run", "group", "epoch", "backbones", "dataset", "marked", "seed", "d", "L",
            "predicted_ceiling", "measured_ceiling", "agreement", "status", "rho_boundary",
            "rho_boundary_ci", "rho_above", "rho_above_ci", "cliff_ratio", "equivariant")
    _OWN = ("run", "group", "epoch", "dataset", "seed", "equivariant")

    def to_dict(self) -> Dict:
        values = {**self.headline.to_dict(), **{k: getattr(self, k) for k in self._OWN},
                  "backbones": list(self.backbones), "marked": list(self.marked)}
        return {k: values[k] for k in self.KEYS}

    @classmethod
    def from_dict(cls, row: Dict) -> "SweepRunRow":
        return cls(headline=DegreeHeadline.from_dict(row), backbones=tuple(row["backbones"]),
                   marked=tuple(row["marked"]), **{k: row[k] for k in cls._OWN})

    @property
    def series(self) -> Tuple[str, Tuple[int, int], int]:
        """``(dataset, marked, seed)``: the rows of one series differ only in the group."""
        return self.dataset, self.marked, self.seed


@dataclass
class SweepResult(TypedResult):
    """What :func:`~empirical.sweep.sweep` measured.

    Attributes
    ----------
    config : dict
        JSON-ready: the checked configuration (:meth:`SweepConfig.to_dict
        <empirical.sweep.SweepConfig.to_dict>`, paths relative to the configuration file,
        ``draws`` ``"independent"`` or ``"paired"``) with ``group_seeds`` (group name ->
        seed -> the plan seed its runs used), ``thresholds`` and ``versions``
        (docs/results_schema.md).
    rows : list of SweepRunRow
        One per (group, dataset, marked pair, seed, d).
    runs : dict run id -> DiagnoseResult
        Every run's full diagnosis.
    warnings : list of str
        Every run's warnings, each after its run id.
    seconds : float
        Wall time; it and ``timings`` (tasks computed and taken from the store, seconds per
        task kind, the cluster) are kept out of ``results.json``, which depends only on the
        configuration and the data.
    """

    config: Dict
    rows: List[SweepRunRow]
    runs: Dict[str, DiagnoseResult]
    warnings: List[str] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)
    timings: Dict = field(default_factory=dict, compare=False)

    SCHEMA = SWEEP_SCHEMA
    READS = SWEEP_SCHEMA_READS
    COMMAND = "sweep"

    @classmethod
    def build(cls, plan, results, timing: Dict, store: str) -> "SweepResult":
        """The rows, runs and warnings of a finished sweep (``results`` in ``plan.runs``
        order)."""
        rows: List[SweepRunRow] = []
        runs: Dict[str, DiagnoseResult] = {}
        warnings: List[str] = []
        for job, result in zip(plan.runs, results):
            runs[job.run_id] = result
            warnings += [f"{job.run_id}: {w}" for w in result.warnings]
            equivariant = (None if any(b.equivariant is None for b in result.backbones)
                           else all(b.equivariant for b in result.backbones))
            for d, s in sorted(result.summaries.items()):
                rows.append(SweepRunRow(
                    run=job.run_id, group=job.group.name, epoch=job.group.epoch,
                    backbones=tuple(b.name for b in result.backbones), dataset=job.dataset,
                    marked=tuple(int(x) for x in job.plan.marked), seed=job.seed,
                    headline=DegreeHeadline.from_summary(s), equivariant=equivariant))
        group_seeds: Dict[str, Dict[str, int]] = {}
        for job in plan.runs:
            group_seeds.setdefault(job.group.name, {})[str(job.seed)] = int(job.plan.seed)
        config = {**plan.config.to_dict(), "group_seeds": group_seeds,
                  "thresholds": dict(THRESHOLDS), "versions": versions()}
        config.pop("source", None)      # where the file lay is not part of the result
        return cls(config=config, rows=rows, runs=runs, warnings=warnings,
                   seconds=timing["seconds"], timings={**timing, "store": store})

    def to_dict(self) -> Dict:
        """``results.json``: ``schema``, ``config``, ``rows``, ``runs``, ``warnings``."""
        return {"schema": SWEEP_SCHEMA, "config": copy.deepcopy(self.config),
                "rows": [r.to_dict() for r in self.rows],
                "runs": {k: run.to_dict() for k, run in self.runs.items()},
                "warnings": list(self.warnings)}

    @classmethod
    def _from_payload(cls, payload: Dict) -> "SweepResult":
        return cls(config=payload["config"],
                   rows=[SweepRunRow.from_dict(r) for r in payload["rows"]],
                   runs={k: DiagnoseResult.from_dict(v) for k, v in payload["runs"].items()},
                   warnings=list(payload["warnings"]))

    def save(self, out_dir, plots: bool = True, overwrite: bool = False):
        """``results.json``, ``report.md``, ``sweep.png`` and ``timings.json`` as one set."""
        return write_sweep_outputs(self, out_dir, plots=plots, overwrite=overwrite)


def _status(status: str) -> str:
    """A degree status in words (docs/method.md §2.8); a violation in bold."""
    words = STATUS_WORDS.get(status, status)
    return f"**{words}**" if status == VIOLATES else words


def _text(x) -> str:
    return MISSING if x is None else str(x)


def _rows_table(rows: Sequence[SweepRunRow], runs: Dict) -> str:
    header = ["group", "epoch", "dataset", "marked", "seed", "d", "L", "dL", "measured",
              "probe at dL (k x rotations)", "rho(dL) [95% CI]", "rho(dL+1) [95% CI]",
              "status"]
    cells = []
    for r in rows:
        h = r.headline
        run = runs.get(r.run)
        probe = MISSING if run is None or h.d not in run.summaries else \
            probe_label(run.summaries[h.d].capacity)
        cells.append([r.group, _text(r.epoch), r.dataset, f"{r.marked[0]}-{r.marked[1]}",
                      r.seed, h.d, h.L, h.predicted_ceiling, _text(h.measured_ceiling), probe,
                      f"{num(h.rho_boundary)} {interval(h.rho_boundary_ci, 2)}",
                      f"{num(h.rho_above)} {interval(h.rho_above_ci, 2)}",
                      _status(h.status)])
    return table(header, cells)


def render_sweep_report(result: SweepResult, plot_files: Sequence[str] = ()) -> str:
    c = result.config
    rows = result.rows
    counts = {s: sum(r.headline.status == s for r in rows) for s in DEGREE_STATUSES}
    agree = counts[AGREES]
    out = ["# Sweep", "",
           f"{len({r.run for r in rows})} runs ({len(c['groups'])} groups x "
           f"{len(c['datasets'])} datasets x {len(c['marked'] or [None])} marked pairs x "
           f"{len(c['seeds'])} seeds), probe degrees {c['degrees']}, lmax {c['lmax']}, "
           f"{c['frames'] or 'all'} frames, {c['options']['n_boot']} bootstrap resamples. "
           "Each run is one `empirical diagnose` of its group (its full results are under "
           "`runs` in results.json); a row is one run at one d (docs/method.md §2.11).", "",
           draws_sentence(c, "group"), "",
           f"**{agree} of {len(rows)} rows agree** with the theorem's prediction (status "
           "from the 95 % intervals, docs/method.md §2.8); "
           + "; ".join(f"{counts[s]} {STATUS_WORDS[s]}" for s in DEGREE_STATUSES
                       if s != AGREES) + ".", "",
           _rows_table(rows, result.runs), ""]
    for name in plot_files:
        out += [f"![{name}]({name})", ""]
    if result.warnings:
        out += ["## Warnings", ""] + [f"- {w}" for w in result.warnings] + [""]
    v = c.get("versions", {})
    out += ["## Reproduce", "", "The configuration (with every option and seed) is "
            "`config` in results.json; versions: "
            + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".", ""]
    return "\n".join(out)


def _error_bars(values: List[Optional[float]], cis: List) -> Tuple[List, List, List]:
    """``y`` (NaN where undefined) and the lower and upper error-bar lengths of each value's
    interval (0 where the interval or a bound is absent)."""
    y = [v if v is not None else float("nan") for v in values]
    lo = [y_ - (ci.low if ci is not None and ci.low is not None else y_)
          for y_, ci in zip(y, cis)]
    hi = [(ci.high if ci is not None and ci.high is not None else y_) - y_
          for y_, ci in zip(y, cis)]
    return y, lo, hi


def _plot_series(ax, rows: Sequence[SweepRunRow], x: List, s_i: int, tag: str) -> None:
    """rho(dL) and rho(dL + 1) of one series with their intervals."""
    heads = [r.headline for r in rows]
    for values, cis, style, label in (
            ([h.rho_boundary for h in heads], [h.rho_boundary_ci for h in heads], "o-",
             "rho(dL)"),
            ([h.rho_above for h in heads], [h.rho_above_ci for h in heads], "s--",
             "rho(dL+1)")):
        y, lo, hi = _error_bars(values, cis)
        ax.errorbar(x, y, yerr=[lo, hi], fmt=style, ms=4, capsize=2, lw=1,
                    label=label + tag, color=f"C{2 * s_i + (label != 'rho(dL)')}")


def sweep_figure(result: SweepResult):
    """One panel per ``d``: rho(dL) and rho(dL + 1) with their 95 % intervals for every
    row, against the epoch when every group is a checkpoint of a training run, else
    against the group. Series per (dataset, marked pair, seed)."""
    plt = pyplot()
    rows = result.rows
    degrees = sorted({r.headline.d for r in rows})
    by_epoch = all(r.epoch is not None for r in rows)
    groups = list(dict.fromkeys(r.group for r in rows))
    fig, axes = plt.subplots(1, len(degrees), figsize=(4.2 * len(degrees), 3.6), squeeze=False)
    series = list(dict.fromkeys(r.series for r in rows))
    for ax, d in zip(axes[0], degrees):
        for s_i, key in enumerate(series):
            sel = [r for r in rows if r.headline.d == d and r.series == key]
            x = [r.epoch if by_epoch else groups.index(r.group) for r in sel]
            tag = "" if len(series) == 1 else f" ({key[0]}, {key[1][0]}-{key[1][1]}, s{key[2]})"
            _plot_series(ax, sel, x, s_i, tag)
        ceil = {r.headline.predicted_ceiling for r in rows if r.headline.d == d}
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
    """``sweep.png`` (with ``plots``), ``report.md``, ``results.json`` and ``timings.json``
    as one set."""
    timings = (json.dumps(result.timings, indent=1) + "\n").encode()
    return write_run_set(out_dir, result, render_sweep_report,
                         {"sweep.png": sweep_figure} if plots else None, overwrite,
                         extra={"timings.json": timings})
