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

from spanthm.io import (MANIFEST_NAME, entry_hashes, describe, manifest_bytes, read_manifest,
                         resolve_out, sha256_bytes, sha256_file, unvouched)

from .io import check_anchor, atomic_path, read_json, train_foreign, write_files
from .backbone import BackboneConfig, TrainSettings, train
from .calibration import compare, run_c5, write_compare_outputs
from .controls import run_controls
from .data import load as load_dataset
from .diagnostic import diagnose

__all__ = ["reproduce", "PRESETS", "STEPS", "retrain_backbones", "check_reproduce_dir"]

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
#: Where ``full`` retrains its backbones (one ``empirical train`` run folder each).
BACKBONES_DIR = "backbones"
#: The keys of ``results.json`` the reproduction reads back from a finished step
#: (beside ``config.seed``); a file without them is not that step's results.
STEP_KEYS = {"c5": ("cells", "agreement", "summary"), "diagnose": ("summary", "cells"),
             "controls": ("controls", "complete", "agreement")}


def _train_runs(path: Path, kind: str, prefix: str) -> "list[str]":
    """Foreign entries of ``backbones/``: anything but a :data:`RETRAIN` run folder holding
    only the checkpoints training writes."""
    foreign = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.is_symlink() or not entry.is_dir() or entry.name not in RETRAIN:
            foreign.append(prefix + entry.name)
        else:
            foreign += train_foreign(entry, prefix + entry.name + "/")
    return foreign


def _top_files(real: Path) -> Dict:
    manifest = read_manifest(real)
    return manifest["files"] if manifest and manifest.get("kind") == "reproduce" else {}


def _foreign(real: Path) -> "list[str]":
    """Entries of a reproduction folder this tool did not write: its own files must be
    listed, with their hash, in its manifest (kind ``reproduce``); a step folder must be
    vouched for by its own manifest; ``backbones/`` must hold only training run folders."""
    top = read_manifest(real)
    ours = top is not None and top.get("kind") == "reproduce"
    files, foreign = (top["files"] if ours else {}), []
    for entry in sorted(real.iterdir(), key=lambda p: p.name):
        name = entry.name
        if entry.is_symlink():
            foreign.append(name)
        elif entry.is_dir() and name in STEPS:
            foreign += unvouched(entry, prefix=name + "/")
        elif entry.is_dir() and name == BACKBONES_DIR:
            foreign += _train_runs(entry, "train", name + "/")
        elif name == MANIFEST_NAME and ours:
            continue
        elif not (entry.is_file() and name in files
                  and sha256_file(entry) in entry_hashes(files[name])):
            foreign.append(name + ("/" if entry.is_dir() else ""))
    return foreign


def check_reproduce_dir(out_dir) -> Path:
    """Refuse, before any work, a reproduction folder that holds anything this tool did
    not write there (:func:`_foreign`), names a file, or cannot be written. A folder of an
    earlier (interrupted) reproduction is accepted: a rerun resumes it. The reproduction
    writes into the folder (it is never renamed), so ``--out .`` works. ``ValueError``."""
    out = Path(out_dir)
    real = resolve_out(out)
    if real.exists() and not real.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if real.is_dir():
        foreign = _foreign(real)
        other = read_manifest(real)
        if foreign and other is not None and other.get("kind") != "reproduce":
            raise ValueError(f"{out} holds the output of another command ({describe(foreign)}):"
                             " a reproduction goes into a new folder or one an earlier "
                             "reproduction wrote; nothing was changed")
        if foreign:
            raise ValueError(f"{out} holds files this tool did not write or that changed "
                             f"since ({describe(foreign)}): a reproduction goes into a new "
                             "folder or one an earlier reproduction wrote; nothing was changed")
    check_anchor(out, real)
    return out


def _with_keys(name: str, payload: Dict) -> Dict:
    """``payload`` when it holds the keys the reproduction reads (:data:`STEP_KEYS`)."""
    missing = [k for k in STEP_KEYS[name] if k not in payload]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    return payload


def _read_step(name: str, done: Path, read):
    """The result in ``done`` (a step's results.json, read bounded in size and depth) or
    ``ValueError`` naming the file; ``read(payload)`` raises ``ValueError`` on a payload
    that is not the step's results."""
    payload = read_json(done)
    try:
        if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
            raise ValueError("no config")
        return payload, read(payload)
    except ValueError as exc:
        raise ValueError(f"{done} is not the results of the {name} step ({exc})") from None


def _step(out: Path, name: str, seed: int, overwrite: bool, run, read, log):
    """Run one step into ``out/name`` (one set of files), or, unless ``overwrite``, read
    the results an earlier run left there (a folder holds a finished step or nothing). A
    ``results.json`` that does not read back as this step's results is recomputed when
    the folder is provably ours (its manifest vouches for every file, so the file is one an
    earlier version wrote), else refused with one line naming it."""
    folder = out / name
    done = folder / "results.json"
    if done.is_file() and not overwrite:
        try:
            payload, result = _read_step(name, done, read)
        except ValueError as exc:
            if read_manifest(folder) is None or unvouched(folder):
                raise ValueError(f"{exc}; the folder was not written by this tool as a whole, "
                                 "so it is left as it is: give another --out") from None
            log(f"{name}: {exc}; recomputing the step")
            overwrite = True
        else:
            if payload["config"].get("seed") != seed:
                raise ValueError(f"{folder} holds a run with seed "
                                 f"{payload['config'].get('seed')}, not {seed}: use "
                                 "another folder or --overwrite")
            log(f"{name}: finished by an earlier run, kept ({folder})")
            return result
    result = run()
    result.save(folder, overwrite=overwrite)
    return result


def _write_top(out: Path, files: "Dict[str, bytes]") -> None:
    """Write the reproduction's own files into ``out`` (each atomically) and keep its
    manifest true at every moment: it first accepts the old or the new content of each
    file, then, once all are written, only the new (files of an earlier run that this one
    does not write stay listed while unchanged)."""
    real = resolve_out(out)
    before = _top_files(real) if real.is_dir() else {}
    new = {name: sha256_bytes(blob) for name, blob in files.items()}
    dirs = {**{s: "set" for s in STEPS}, BACKBONES_DIR: "train"}

    def manifest(listed):
        with atomic_path(out / MANIFEST_NAME, suffix=".json") as tmp:
            Path(tmp).write_bytes(manifest_bytes(listed, kind="reproduce", dirs=dirs,
                                                 base=real))

    manifest({**before, **{n: sorted(set(entry_hashes(before.get(n))) | {h})
                           for n, h in new.items()}})
    write_files(out, files)
    kept = {n: h for n, h in before.items() if n not in new and (real / n).is_file()
            and sha256_file(real / n) in entry_hashes(h)}
    manifest({**kept, **new})


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
    check_reproduce_dir(out)
    start = time.perf_counter()
    paths: Optional[Dict[str, str]] = None
    if preset == "full":
        paths = retrain_backbones(out / "backbones", log=log)
    steps = {}
    log("C5 calibration ...")
    c5 = _step(out, "c5", seed, overwrite, lambda: run_c5(seed=seed, progress=progress),
               lambda p: C5Result.from_dict(_with_keys("c5", p)), log)
    steps["c5"] = {"seconds": c5.seconds, "agreement": c5.agreement}
    log("aspirin diagnostic ...")
    names = [f"aspirin_L2_seed{s}" for s in range(4)]
    backbones = [paths[n] for n in names] if paths else None
    diag = _step(out, "diagnose", seed, overwrite,
                 lambda: diagnose(backbones=backbones, seed=seed, progress=progress,
                                  names=names if paths else None),
                 lambda p: DiagnoseResult.from_dict(_with_keys("diagnose", p)), log)
    steps["diagnose"] = {"seconds": diag.seconds,
                         "agreement": diag.agreement}
    log("controls ...")
    controls = _step(out, "controls", seed, overwrite,
                     lambda: run_controls(seed=seed, progress=progress, backbone_paths=paths),
                     lambda p: ControlsResult.from_dict(_with_keys("controls", p)), log)
    steps["controls"] = {"seconds": controls.seconds, "complete": controls.complete,
                         "agreement": controls.agreement}
    cmp = compare(c5, diag)
    top = write_compare_outputs(cmp, out, render_only=True)
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
    top["README.md"] = ("\n".join(lines) + "\n").encode()
    top["index.json"] = (json.dumps(index, indent=1) + "\n").encode()
    _write_top(out, top)
    return index
