r"""Frozen forward pass of the shipped backbone: configurations per second.

What is measured
----------------
The diagnostic's feature pass (docs/method.md §2.2): ``Backbone.features_and_energy`` under
``torch.no_grad()``, float32, CPU, one torch thread, on ``--frames`` (400) randomly rotated
aspirin frames of the shipped dataset, in batches laid out as
``empirical.diagnostic._features`` lays them out. Each side runs ``--repeat`` rounds,
alternately with the others; ``configs/s`` is from the fastest round.

Sides
-----
* ``frozen@B``: the frozen pass (``_EdgeTensorProduct.forward_frozen``) in batches of ``B``
  (each of ``--batch-sizes``; 8 is ``DEFAULT_CHUNK``).
* ``graph@8``: the same call with autograd enabled (the parameters stay frozen, so no graph
  is built): the path that training and forces take, i.e. the edge tensor product written
  for a cheap backward. Its ratio to ``frozen@8`` is the gain of the frozen pass.
* ``baseline@8`` (``--baseline COMMIT``): the frozen pass at an earlier commit, from a git
  worktree imported through ``PYTHONPATH`` in a subprocess (one per round).

The largest absolute difference of features and energies between ``frozen@8`` and each
other side is printed too (0 where they agree to the bit).

Usage::

    python bench/bench_forward.py [--frames 400] [--repeat 5] [--batch-sizes 8,16,32]
        [--checkpoint aspirin_L2_seed0] [--baseline c11e171] [--json bench/results/forward.json]
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCH_FORWARD_RESULT "


def frames(n: int, seed: int = 0):
    """``n`` shipped aspirin frames, each rotated by a Haar-random rotation (float32)."""
    from scipy.spatial.transform import Rotation

    from empirical.data import load

    data = load("aspirin")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.positions), n, replace=len(data.positions) < n)
    rot = Rotation.random(n, random_state=seed).as_matrix()
    pos = np.einsum("nij,naj->nai", rot, data.positions[idx])
    return (torch.tensor(pos, dtype=torch.float32),
            torch.tensor(np.asarray(data.numbers), dtype=torch.long))


def features(model, pos, nums, batch_size: int, grad: bool = False):
    """Features ``(n, atoms, dim)`` and energies ``(n,)``, ``batch_size`` frames per call."""
    hs, es = [], []
    with torch.set_grad_enabled(grad):
        for start in range(0, len(pos), batch_size):
            p = pos[start:start + batch_size]
            m, n_atoms, _ = p.shape
            batch = torch.arange(m).repeat_interleave(n_atoms)
            h, e = model.features_and_energy(p.reshape(-1, 3), nums.repeat(m), batch)
            hs.append(h.reshape(m, n_atoms, -1))
            es.append(e)
    return torch.cat(hs), torch.cat(es)


def timed(model, pos, nums, batch_size: int, grad: bool = False):
    start = time.perf_counter()
    out = features(model, pos, nums, batch_size, grad)
    return time.perf_counter() - start, out


def worker(args) -> int:
    """One round of ``frozen@8`` in this interpreter (the ``--baseline`` side)."""
    from empirical.backbone import load

    torch.set_num_threads(1)
    model = load(args.checkpoint)
    pos, nums = frames(args.frames)
    features(model, pos, nums, 8)   # warm-up: a whole untimed round, as the main side has
    seconds, (h, e) = timed(model, pos, nums, 8)
    out = Path(args.worker_out)
    torch.save({"h": h, "e": e}, out)
    print(RESULT_PREFIX + json.dumps({"seconds": seconds}))
    return 0


def baseline_round(tree: Path, args, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", "worker",
           "--frames", str(args.frames), "--checkpoint", args.checkpoint,
           "--worker-out", str(out)]
    text = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True,
                          text=True).stdout
    line = [x for x in text.splitlines() if x.startswith(RESULT_PREFIX)][-1]
    return json.loads(line[len(RESULT_PREFIX):])["seconds"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--checkpoint", default="aspirin_L2_seed0")
    ap.add_argument("--baseline", default=None, help="a commit to compare with (git worktree)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--side", default="main", choices=["main", "worker"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side == "worker":
        return worker(args)

    from empirical.backbone import load

    torch.set_num_threads(1)
    model = load(args.checkpoint)
    pos, nums = frames(args.frames)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    sides = {f"frozen@{b}": (b, False) for b in sizes}
    sides["graph@8"] = (8, True)
    for b, grad in sides.values():
        features(model, pos, nums, b, grad)   # warm-up: caches, allocator
    rounds = {name: [] for name in sides}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = None
        if args.baseline:
            tree = Path(tmp) / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline],
                           cwd=ROOT, check=True, capture_output=True)
            rounds["baseline@8"] = []
        try:
            for r in range(args.repeat):
                for name, (b, grad) in sides.items():
                    seconds, outputs[name] = timed(model, pos, nums, b, grad)
                    rounds[name].append(seconds)
                if tree is not None:
                    out = Path(tmp) / "baseline.pt"
                    rounds["baseline@8"].append(baseline_round(tree, args, out))
                    blob = torch.load(out)
                    outputs["baseline@8"] = (blob["h"], blob["e"])
                print(f"round {r + 1}/{args.repeat}: " + ", ".join(
                    f"{k} {args.frames / v[-1]:.0f}" for k, v in rounds.items()), flush=True)
        finally:
            if tree is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               check=False, capture_output=True)
    h8, e8 = outputs["frozen@8"]
    report = {"frames": args.frames, "checkpoint": args.checkpoint, "threads": 1,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "baseline": args.baseline, "sides": {}}
    for name, seconds in rounds.items():
        h, e = outputs[name]
        report["sides"][name] = {
            "configs_per_s": args.frames / min(seconds),
            "median_configs_per_s": args.frames / float(np.median(seconds)),
            "round_seconds": seconds,
            "speedup_over_graph8": min(rounds["graph@8"]) / min(seconds),
            "max_abs_diff_features": float((h - h8).abs().max()),
            "max_abs_diff_energy": float((e - e8).abs().max())}
    for name, side in report["sides"].items():
        print(f"{name:12s} {side['configs_per_s']:7.0f} configs/s (median "
              f"{side['median_configs_per_s']:.0f})  x{side['speedup_over_graph8']:.2f} vs "
              f"graph@8  max |diff| vs frozen@8: features {side['max_abs_diff_features']:.1e}, "
              f"energy {side['max_abs_diff_energy']:.1e}")
    if "baseline@8" in rounds:
        print(f"frozen@8 / baseline@8: x{min(rounds['baseline@8']) / min(rounds['frozen@8']):.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
