"""The controls' ``report.md`` and ``results.json`` (docs/method.md §4, §5); numbers and
the table go through :mod:`empirical.render`."""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..io import write_file_set
from ..render import num, table
from ..diagnostic import STATUS_WORDS
from ._controls import MISSING, ControlRow, ControlsResult

__all__ = ["render_controls_report", "write_controls_outputs"]

_HEADER = ["control", "kind", "backbone", "L", "d", "k", "SPN coefficients", "rho(dL)",
           "rho(dL+1)", "measured ceiling", "predicted", "ceiling matches", "status"]


def _row(c: ControlRow) -> List[object]:
    """One table row; a control whose backbone is missing says so and nothing more."""
    if c.status == MISSING:
        return [c.name, c.kind, c.backbone, "", c.d, "", "", "", "", "missing backbone", "",
                "", ""]
    return [c.name, c.kind, c.backbone, c.L, c.d, c.k, c.spn_coefficients,
            num(c.rho_boundary), num(c.rho_above), c.measured_ceiling, c.predicted_ceiling,
            "yes" if c.agrees else "NO", STATUS_WORDS.get(c.verdict, c.verdict or "")]


def render_controls_report(result: ControlsResult) -> str:
    """``report.md`` of a controls run."""
    cfg = result.config
    lines = ["# Controls", "",
             f"Each control is one diagnostic run on {cfg.dataset} ({cfg.frames} frames, "
             f"{cfg.n_boot} bootstrap resamples, seed {cfg.seed}); the measured ceiling is "
             f"the highest l with mean held-out rho >= {cfg.thresholds['recoverable']}, "
             "the predicted one spanthm's dL; \"ceiling matches\" compares the two, "
             "\"status\" is the diagnostic's verdict from the 95 % intervals "
             "(docs/method.md §2.8).", "",
             table(_HEADER, [_row(c) for c in result.controls])]
    missing = sorted({c.backbone for c in result.controls if c.status == MISSING})
    lines += ["", f"Every measured control {'leaves' if result.agreement else 'does NOT leave'} "
              "the ceiling at dL."]
    if missing:
        lines += ["", "Not measured (backbone not shipped): " + ", ".join(missing) + ". Train "
                  "them with `empirical train` (see the README) and ship them to complete the "
                  "controls."]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in cfg.versions.items()) + ".",
              "", f"Run time: {num(result.seconds, 0)} s."]
    return "\n".join(lines) + "\n"


def write_controls_outputs(result: ControlsResult, out_dir: Path,
                           overwrite: bool = False) -> List[Path]:
    """Write ``results.json`` and ``report.md`` of the controls as one set."""
    return write_file_set(out_dir, {"report.md": render_controls_report(result).encode(),
                                    "results.json": result.to_json().encode()},
                          overwrite=overwrite)
