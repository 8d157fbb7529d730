r"""A sweep on Dask against ``empirical diagnose`` on the same work, in one run.

What is measured
----------------
The four shipped aspirin backbones, pooled, at d = 1, 2, 3 (``examples/sweep/aspirin.toml``),
on ``--frames`` configurations, three ways:

* ``diagnose``: :func:`empirical.diagnose` in this process with all cores (as the CLI
  runs it: two backbones at a time on two cores, one intra-op thread each);
* ``sweep xN``: :func:`empirical.sweep.sweep` on a LocalCluster of ``N`` worker processes
  (one thread each) started and stopped inside the timing, with a fresh task store, for
  N = 1 and N = the cores (``--workers``). Cluster start-up, worker imports, store writes
  and the driver's planning are all inside the time.

The three run one after another, ``--repeat`` rounds (so a load change hits them alike);
the best round of each gives its time. Reported: seconds, ``sweep x2 / diagnose`` (the
issue asks for at most 1.10: Dask's overhead) and ``sweep x1 / sweep x2`` (the speed-up of
a second worker). The per-task seconds of the last sweep (from its ``timings``) are kept:
they feed the README's estimate for a large sweep on a cluster.

Usage::

    python bench/bench_sweep.py [--frames 1000] [--repeat 2] [--workers 1,2]
        [--json bench/results/sweep.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # as the CLI: one BLAS thread, so the numbers match

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from empirical import diagnose
    from empirical.runtime import tune_malloc

    tune_malloc()      # as the empirical command does, so diagnose runs as from the CLI
    from empirical.sweep import load_config, sweep

    config = load_config(Path(__file__).parents[1] / "examples" / "sweep" / "aspirin.toml")
    config = config.with_frames(args.frames).with_paired(True)   # diagnose's seed: paired
    backbones = list(config.groups[0].backbones)
    workers = [int(w) for w in args.workers.split(",")]
    torch.set_num_threads(os.cpu_count() or 1)
    best: dict = {}
    last_timings = None
    rounds = []
    for r in range(args.repeat):
        row = {}
        start = time.perf_counter()
        ref = diagnose(backbones, degrees=config.degrees, lmax=config.lmax,
                       frames=config.frames, progress=False)
        row["diagnose"] = time.perf_counter() - start
        for n in workers:
            tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
            try:
                start = time.perf_counter()
                result = sweep(config, store=tmp / "store", workers=n, progress=False)
                row[f"sweep x{n}"] = time.perf_counter() - start
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            run = next(iter(result.runs.values()))
            assert run.to_dict()["cells"] == ref.to_dict()["cells"], "sweep and diagnose disagree"
            last_timings = result.timings
        rounds.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in row.items()),
              flush=True)
        for k, v in row.items():
            best[k] = min(best.get(k, float("inf")), v)
    many = f"sweep x{max(workers)}"
    ratios = {f"{many} / diagnose": best[many] / best["diagnose"]}
    if min(workers) != max(workers):
        ratios[f"sweep x{min(workers)} / {many}"] = best[f"sweep x{min(workers)}"] / best[many]
    print("best: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items()))
    for k, v in ratios.items():
        print(f"{k} = {v:.3f}")
    out = {"frames": args.frames, "repeat": args.repeat, "best_seconds": best,
           "rounds": rounds, "ratios": ratios, "cells_identical": True,
           "sweep_timings": last_timings, "cpu_count": os.cpu_count(),
           "load_average_end": os.getloadavg(), "machine": platform.machine(),
           "python": platform.python_version(), "torch": torch.__version__}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
