"""The controls' ``report.md`` and ``results.json`` (docs/method.md §4, §5)."""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..io import write_file_set

__all__ = ["render_controls_report", "write_controls_outputs"]


def _num(x) -> str:
    return "undefined" if x is None else f"{x:.3f}"


def render_controls_report(result) -> str:
    p = result.payload
    cfg = p["config"]
    lines = ["# Controls", "",
             f"Each control is one diagnostic run on {cfg['dataset']} ({cfg['frames']} frames, "
             f"{cfg['n_boot']} bootstrap resamples, seed {cfg['seed']}); the measured ceiling is "
             f"the highest l with mean held-out rho >= {cfg['thresholds']['recoverable']}, "
             "the predicted one spanthm's dL.", "",
             "| control | kind | backbone | L | d | k | SPN coefficients | rho(dL) | rho(dL+1) "
             "| measured ceiling | predicted | agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in p["controls"]:
        if c["status"] == "missing":
            lines.append(f"| {c['name']} | {c['kind']} | {c['backbone']} | | {c['d']} | | | | | "
                         "missing backbone | | |")
            continue
        lines.append(f"| {c['name']} | {c['kind']} | {c['backbone']} | {c['L']} | {c['d']} | "
                     f"{c['k']} | {c['spn_coefficients']} | {_num(c['rho_boundary'])} | "
                     f"{_num(c['rho_above'])} | {c['measured_ceiling']} | "
                     f"{c['predicted_ceiling']} | {'yes' if c['agrees'] else 'NO'} |")
    missing = sorted({c["backbone"] for c in p["controls"] if c["status"] == "missing"})
    lines += ["", f"Every measured control {'leaves' if p['agreement'] else 'does NOT leave'} "
              "the ceiling at dL."]
    if missing:
        lines += ["", "Not measured (backbone not shipped): " + ", ".join(missing) + ". Train "
                  "them with `empirical train` (see the README) and ship them to complete the "
                  "controls."]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in cfg["versions"].items()) + ".",
              "", f"Run time: {result.seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def write_controls_outputs(result, out_dir: Path, overwrite: bool = False) -> List[Path]:
    """Write ``results.json`` and ``report.md`` of the controls as one set."""
    return write_file_set(out_dir, {"report.md": render_controls_report(result).encode(),
                                    "results.json": result.to_json().encode()},
                          overwrite=overwrite)
