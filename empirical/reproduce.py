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

__all__ = ["reproduce", "PRESETS", "STEPS", "retrain_backbones"]

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


#: The steps whose folders a rerun resumes from, in order.
STEPS = ("c5", "diagnose", "controls")


def _step(out: Path, name: str, seed: int, overwrite: bool, run, read, log):
    """Run one step into ``out/name`` (one set of files), or, unless ``overwrite``, read
    the results an earlier run left there (a folder holds a finished step or nothing)."""
    folder = out / name
    done = folder / "results.json"
    if done.is_file() and not overwrite:
        payload = json.loads(done.read_text())
        if payload.get("config", {}).get("seed") != seed:
            raise ValueError(f"{folder} holds a run with seed "
                             f"{payload.get('config', {}).get('seed')}, not {seed}: use "
                             "another folder or --overwrite")
        log(f"{name}: finished by an earlier run, kept ({folder})")
        return read(payload)
    result = run()
    result.save(folder, overwrite=overwrite)
    return result


def reproduce(preset: str, out_dir, seed: int = 0, progress=None, log=print,
              overwrite: bool = False) -> Dict:
    """Run the preset into ``out_dir``; returns the index (also ``index.json``).

    Each step writes its folder as one set; a rerun into the same ``out_dir`` keeps the
    steps an earlier (interrupted) run finished, unless ``overwrite``."""
    from .calibration import C5Result
    from .controls import ControlsResult
    from .diagnostic import DiagnoseResult

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    out = Path(out_dir)
    start = time.perf_counter()
    paths: Optional[Dict[str, str]] = None
    if preset == "full":
        paths = retrain_backbones(out / "backbones", log=log)
    steps = {}
    log("C5 calibration ...")
    c5 = _step(out, "c5", seed, overwrite, lambda: run_c5(seed=seed, progress=progress),
               lambda p: C5Result(payload=p), log)
    steps["c5"] = {"seconds": c5.seconds, "agreement": c5.payload["agreement"]}
    log("aspirin diagnostic ...")
    names = [f"aspirin_L2_seed{s}" for s in range(4)]
    backbones = [paths[n] for n in names] if paths else None
    diag = _step(out, "diagnose", seed, overwrite,
                 lambda: diagnose(backbones=backbones, seed=seed, progress=progress,
                                  names=names if paths else None),
                 DiagnoseResult.from_dict, log)
    steps["diagnose"] = {"seconds": diag.seconds,
                         "agreement": diag.agreement}
    log("controls ...")
    controls = _step(out, "controls", seed, overwrite,
                     lambda: run_controls(seed=seed, progress=progress, backbone_paths=paths),
                     lambda p: ControlsResult(payload=p), log)
    steps["controls"] = {"seconds": controls.seconds, "complete": controls.payload["complete"],
                         "agreement": controls.payload["agreement"]}
    cmp = compare(c5.payload, diag)
    write_compare_outputs(cmp, out, as_set=False)
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
