"""Issue 24's acceptance, measured in one run on one machine (docs/method.md §2.12, §2.13).

Every command runs as a whole process (import included), ``--no-plots --no-progress``:

* ``cold``: the main job (``empirical diagnose``, no arguments) with an empty cache,
  against ``--baseline`` (a git worktree of that commit, imported with the editable
  install switched off), alternately, ``--repeat`` times each;
* ``warm``: after the default run, ``diagnose --degrees 2 --lmax 6 --n-boot 500`` with
  the cache warm, and the same options with ``--no-cache`` (cold): the times, and the
  largest difference between the two results.json in any number (the cache record and
  versions excluded);
* ``rotations``: the features stage alone (4 shipped backbones, all frames, no cache) at
  4 against 1 rotation per configuration, ``--rotate auto`` and ``model``; and the whole
  ``diagnose --rotations 4`` against ``--rotations 1`` at one width (``--k 18 --capacity
  fixed``), where the probe fits 4 times the samples;
* ``derived``: rho of every headline cell with ``--rotations 4``, ``--rotate auto`` and
  ``--rotate model``: the largest difference;
* ``survey``: ``empirical survey --no-cache`` (every installable model, widened probes).

Usage::

    python bench/bench_cache.py [--only cold warm rotations derived survey]
                                [--repeat 2] [--baseline ee7e051] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "ee7e051"    # the main job issue 24 measured at 77 s

_OLD = """
import sys, runpy
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path_hooks = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path.insert(0, sys.argv[1])
import empirical
assert empirical.__file__.startswith(sys.argv[1]), empirical.__file__
sys.argv = ["empirical", *sys.argv[2:]]
runpy.run_module("empirical.cli", run_name="__main__")
"""


def _run(args, tree: Path = None, env=None) -> float:
    """Wall seconds of one ``empirical ARGS`` process (``tree``: a baseline worktree)."""
    if tree is None:
        cmd = [sys.executable, "-m", "empirical.cli", *args]
    else:
        cmd = [sys.executable, "-c", _OLD, str(tree), *args]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=tree or ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def _numbers(a, b, path=""):
    """Largest |x - y| over matching numbers (cache records, versions, rotations records
    and the equivariance check excluded)."""
    skip = ("versions", "feature_cache", ".cache", "rotations", "rotate",
            "equivariance_error", "schema_version", "seed_streams")
    if any(path.endswith(s) or f"{s}." in path for s in skip):
        return 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        return max([_numbers(a[k], b[k], f"{path}.{k}") for k in set(a) & set(b)] or [0.0])
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max([_numbers(x, y, path) for x, y in zip(a, b)] or [0.0])
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and a == a and b == b:
        return abs(float(a) - float(b))
    return 0.0


def _load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def cold(tmp: Path, repeat: int, baseline: str) -> dict:
    tree = tmp / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), baseline], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        new, old = [], []
        for i in range(repeat):
            old.append(_run(["diagnose", "--out", str(tmp / f"old{i}"), "--no-plots",
                             "--no-progress"], tree=tree))
            new.append(_run(["diagnose", "--out", str(tmp / f"new{i}"), "--no-plots",
                             "--no-progress", "--cache", str(tmp / f"cold-cache{i}")]))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       capture_output=True)
    return {"baseline": baseline, "current_s": new, "baseline_s": old,
            "ratio_min": min(new) / min(old),
            "largest_difference": _numbers(_load(tmp / "new0"), _load(tmp / "old0"))}


def warm(tmp: Path) -> dict:
    cache = str(tmp / "warm-cache")
    first = _run(["diagnose", "--out", str(tmp / "default"), "--no-plots", "--no-progress",
                  "--cache", cache])
    opts = ["--degrees", "2", "--lmax", "6", "--n-boot", "500", "--no-plots", "--no-progress"]
    hot = _run(["diagnose", "--out", str(tmp / "warm"), *opts, "--cache", cache])
    coldrun = _run(["diagnose", "--out", str(tmp / "cold"), *opts, "--no-cache"])
    w, c = _load(tmp / "warm"), _load(tmp / "cold")
    return {"default_s": first, "warm_s": hot, "cold_s": coldrun,
            "reused": w["config"]["feature_cache"]["reused"],
            "written": w["config"]["feature_cache"]["written"],
            "largest_difference": _numbers(w, c)}


_EXTRACT = """
import sys, time, json, torch
from empirical.adapters import resolve_backbones
from empirical.data import load
from empirical.diagnostic import extract_features, make_plan
data = load("aspirin")
entries = resolve_backbones(None)
out = {}
for r in (1, 4):
    plan = make_plan(data, [0, 1, 2], rotations_per_config=r, k_sweep=())
    start = time.perf_counter()
    for i, e in enumerate(entries):
        extract_features(e.backbone, data, plan, i, threads=torch.get_num_threads(),
                         rotate=sys.argv[1])
    out.setdefault(str(r), []).append(time.perf_counter() - start)
print(json.dumps(out))
"""


def rotations(tmp: Path, repeat: int) -> dict:
    """Stage 2 alone (the four shipped backbones' features on all frames, no cache), in
    one process, 1 and 4 rotations per configuration alternately, derived and through the
    model; and the whole command with one fixed width (``--k 18 --capacity fixed``: the
    same probe, on 4 times the samples)."""
    stage = {}
    for mode in ("auto", "model"):
        done = subprocess.run([sys.executable, "-c", _EXTRACT, mode], cwd=ROOT, check=True,
                              capture_output=True, text=True)
        t = json.loads(done.stdout.strip().splitlines()[-1])
        stage[mode] = {"one_s": t["1"], "four_s": t["4"],
                       "ratio_min": min(t["4"]) / min(t["1"])}
    one, four = [], []
    for i in range(1):
        for r, into in ((1, one), (4, four)):
            into.append(_run(["diagnose", "--out", str(tmp / f"r{r}-{i}"), "--rotations",
                              str(r), "--k", "18", "--capacity", "fixed", "--no-cache",
                              "--no-plots", "--no-progress"]))
    rec = _load(tmp / "r4-0")["backbones"][0]["rotations"]
    return {"features_stage": stage, "command_one_s": one, "command_four_s": four,
            "command_ratio_min": min(four) / min(one), "four_rotations_record": rec}


def derived(tmp: Path) -> dict:
    out = {}
    for mode in ("auto", "model"):
        out[mode] = _run(["diagnose", "--out", str(tmp / f"d-{mode}"), "--rotations", "4",
                          "--capacity", "fixed", "--rotate", mode, "--no-cache",
                          "--no-plots", "--no-progress"])
    a, m = _load(tmp / "d-auto"), _load(tmp / "d-model")
    diffs = [abs(a["summary"][d]["rho"][l] - m["summary"][d]["rho"][l])
             for d in a["summary"] for l in a["summary"][d]["rho"]
             if a["summary"][d]["rho"][l] is not None]
    return {"auto_s": out["auto"], "model_s": out["model"], "rho_cells": len(diffs),
            "rho_largest_difference": max(diffs),
            "checks": [b["rotations"]["check"] for b in a["backbones"]]}


def survey(tmp: Path) -> dict:
    seconds = _run(["survey", "--out", str(tmp / "survey"), "--no-cache", "--no-plots",
                    "--no-progress"])
    rows = _load(tmp / "survey")
    return {"seconds": seconds, "models": rows["config"]["models"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["cold", "warm", "rotations", "derived",
                                                      "survey"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.only:
            start = time.perf_counter()
            if name == "cold":
                report[name] = cold(tmp, args.repeat, args.baseline)
            elif name == "rotations":
                report[name] = rotations(tmp, args.repeat)
            else:
                report[name] = globals()[name](tmp)
            print(f"{name} ({time.perf_counter() - start:.0f} s): "
                  f"{json.dumps(report[name])}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
