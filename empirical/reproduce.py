"""``empirical reproduce``: C5, the aspirin diagnostic, the controls and the comparison in
one report folder (docs/method.md §5).

Presets
-------
* ``quick``: the shipped backbones on CPU: ``c5/``, ``diagnose/``, ``controls/`` and
  ``compare.*`` under the output folder, plus an index ``README.md``.
* ``full``: first retrains every backbone (the four L = 2 aspirin backbones and the control
  backbones of :data:`CONTROL_BACKBONES`) with ``empirical train``'s defaults into
  ``backbones/`` of the output folder, then runs the same steps on them. Meant for a GPU
  (hours on a CPU).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional

from ._io import atomic_path
from .backbone import BackboneConfig, TrainSettings, train
from .calibration import compare, run_c5, write_compare_outputs
from .controls import run_controls
from .data import load as load_dataset
from .diagnostic import diagnose

__all__ = ["reproduce", "PRESETS", "retrain_backbones"]

PRESETS = ("quick", "full")

#: Hyperparameters of every retrained backbone (name -> BackboneConfig fields and seed).
RETRAIN = {
    **{f"aspirin_L2_seed{s}": {"L": 2, "seed": s} for s in range(4)},
    "aspirin_L2_c64_seed0": {"L": 2, "seed": 0, "channels": 64},
    "aspirin_L2_c128_seed0": {"L": 2, "seed": 0, "channels": 128},
    "aspirin_L2_tanh_seed0": {"L": 2, "seed": 0, "activation": "tanh"},
    "aspirin_L2_gelu_seed0": {"L": 2, "seed": 0, "activation": "gelu"},
    "aspirin_L1_seed0": {"L": 1, "seed": 0},
    "aspirin_L3_seed0": {"L": 3, "seed": 0},
}


def retrain_backbones(out_dir: Path, log=print) -> Dict[str, str]:
    """Train every backbone of :data:`RETRAIN` into ``out_dir/<name>/`` (resumable with
    ``empirical train --resume``); returns name -> ``backbone.pt`` path."""
    data = load_dataset("aspirin")
    paths = {}
    for name, spec in RETRAIN.items():
        run = Path(out_dir) / name
        config = BackboneConfig(L=spec["L"], channels=spec.get("channels", 32),
                                activation=spec.get("activation", "silu"), layers=3,
                                species=sorted(set(int(z) for z in data.numbers)))
        resume = (run / "last.pt").exists()
        log(f"training {name} ({'resuming' if resume else 'from scratch'}) -> {run}")
        train(data, run, config, seed=spec["seed"], settings=TrainSettings(), resume=resume,
              progress=False)
        paths[name] = str(run / "backbone.pt")
    return paths


def reproduce(preset: str, out_dir, seed: int = 0, progress=None, log=print) -> Dict:
    """Run the preset into ``out_dir``; returns the index (also ``index.json``)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    out = Path(out_dir)
    start = time.perf_counter()
    paths: Optional[Dict[str, str]] = None
    if preset == "full":
        paths = retrain_backbones(out / "backbones", log=log)
    steps = {}
    log("C5 calibration ...")
    c5 = run_c5(seed=seed, progress=progress)
    c5.save(out / "c5")
    steps["c5"] = {"seconds": c5.seconds, "agreement": c5.payload["agreement"]}
    log("aspirin diagnostic ...")
    names = [f"aspirin_L2_seed{s}" for s in range(4)]
    backbones = [paths[n] for n in names] if paths else None
    diag = diagnose(backbones=backbones, seed=seed, progress=progress,
                    names=names if paths else None)
    diag.save(out / "diagnose")
    steps["diagnose"] = {"seconds": diag.seconds,
                         "agreement": diag.agreement}
    log("controls ...")
    controls = run_controls(seed=seed, progress=progress, backbone_paths=paths)
    controls.save(out / "controls")
    steps["controls"] = {"seconds": controls.seconds, "complete": controls.payload["complete"],
                         "agreement": controls.payload["agreement"]}
    cmp = compare(c5.payload, diag)
    write_compare_outputs(cmp, out)
    steps["compare"] = {"agreement": cmp["agreement"]}
    index = {"preset": preset, "seed": seed, "steps": steps,
             "seconds": time.perf_counter() - start, "paragraph": cmp["paragraph"]}
    lines = [f"# Reproduction ({preset} preset, seed {seed})", "", cmp["paragraph"], "",
             "- [C5 calibration](c5/report.md)", "- [aspirin diagnostic](diagnose/report.md)",
             "- [controls](controls/report.md)", "- [calibration vs aspirin](compare.md)", "",
             "| step | seconds | agreement |", "|---|---|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | {s.get('seconds', 0):.0f} | {s['agreement']} |")
    lines += ["", f"Total: {index['seconds']:.0f} s."]
    with atomic_path(out / "README.md", suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    with atomic_path(out / "index.json", suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(index, indent=1) + "\n")
    return index
