"""The main job, ``empirical diagnose`` with its defaults, against a baseline commit, in one run.

Both sides run as whole processes (``empirical diagnose --out DIR --no-plots
--no-progress``, import included) on the same machine, alternately, ``--repeat`` times;
the baseline is a git worktree of ``--baseline`` (default: the last commit before the
staged pipeline) installed nowhere, imported through ``PYTHONPATH``. Reported: each side's
minimum and median wall time, the speed-up (baseline / current, from the minima) and the
largest absolute difference between the two ``results.json`` files in any number (the
cliff-ratio interval, whose form changed in schema 2, and versions and run time excluded).

Also, in the current tree only: stages 2 and 3 (features and probes) with ``workers=1``
against the default (backbones side by side), as a ratio from one process.

Usage::

    python bench/bench_diagnose.py [--repeat 2] [--baseline 503d47f] [--frames N]
                                   [--json bench/results/diagnose.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "503d47f"   # before the diagnostic became the stages of docs/method.md §2


def _run(tree: Path, out: Path, frames) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "import sys; from empirical.cli import main; sys.exit(main())",
           "diagnose", "--out", str(out), "--no-plots", "--no-progress"]
    if frames:
        cmd += ["--frames", str(frames)]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _largest_difference(a, b, path=""):
    """(largest |x - y| over matching numbers, its path, keys present on one side only)."""
    worst, where, only = 0.0, None, []
    skip = ("config.versions", "cliff_ratio_ci", "schema_version")
    if any(s in path for s in skip):
        return worst, where, only
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                only.append(f"{path}.{k}")
                continue
            w, p, o = _largest_difference(a[k], b[k], f"{path}.{k}")
            only += o
            if w > worst:
                worst, where = w, p
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            w, p, o = _largest_difference(x, y, f"{path}[{i}]")
            only += o
            if w > worst:
                worst, where = w, p
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool):
        if abs(a - b) > worst:
            worst, where = abs(a - b), path
    elif a != b:
        only.append(f"{path} ({a!r} != {b!r})"[:160])
    return worst, where, only


def _feature_workers(frames) -> dict:
    """Stages 2 and 3 (features, probes) of the four shipped backbones: workers=1 against
    the default (side by side), in one process."""
    from empirical.adapters import resolve_backbones
    from empirical.backbone import shipped
    from empirical.data import load as load_data
    from empirical.diagnostic import make_plan
    from empirical.diagnostic import features_and_probes as _features_and_probes
    from empirical.runtime import Progress

    data = load_data("aspirin")
    names = [e["name"] for e in shipped(role="diagnostic")]
    entries = resolve_backbones(names)
    plan = make_plan(data, [0, 1, 2], frames=frames)
    times = {}
    for workers in (1, None):
        start = time.perf_counter()
        _features_and_probes(entries, data, plan, [None] * len(entries), workers,
                             Progress(1, False))
        times["serial" if workers == 1 else "side_by_side"] = time.perf_counter() - start
    times["ratio_serial_over_side_by_side"] = times["serial"] / times["side_by_side"]
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--frames", type=int, default=None, help="diagnose --frames (default all)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            times = {"baseline": [], "current": []}
            for r in range(args.repeat):
                for side, tree in (("baseline", base), ("current", ROOT)):
                    t = _run(tree, tmp / f"{side}{r}", args.frames)
                    times[side].append(t)
                    print(f"{side:9s} run {r + 1}: {t:7.1f} s", flush=True)
            a = json.loads((tmp / "baseline0" / "results.json").read_text())
            b = json.loads((tmp / "current0" / "results.json").read_text())
            worst, where, only = _largest_difference(a, b)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           capture_output=True)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "baseline": args.baseline, "frames": args.frames, "repeat": args.repeat,
        "seconds": times,
        "min": {k: min(v) for k, v in times.items()},
        "median": {k: statistics.median(v) for k, v in times.items()},
        "speedup_baseline_over_current": min(times["baseline"]) / min(times["current"]),
        "largest_difference": worst, "largest_difference_at": where,
        "keys_differing": only,
        "features": _feature_workers(args.frames),
    }
    print(json.dumps({k: report[k] for k in ("min", "median", "speedup_baseline_over_current",
                                              "largest_difference", "largest_difference_at",
                                              "features")}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
