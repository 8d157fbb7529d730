"""Benchmarks of spanthm (speed claims live here, never in timed tests).

1. ``spanthm table --Lmax 8 --dmax 6``: the 48 instances S = {0..L}, every one certified by
   the exact method, timed as a whole process (import included), ``--repeat`` times.
2. Certified exact method (one zonal witness per degree plus bounds) against brute-force
   exact projection of every product (``brute_force_spectrum``), on the instances where
   brute force finishes (L <= 2, d <= 3): the speed ratio brute / certified per instance,
   measured in the same run. Caches are cleared before every timing so neither method
   reuses the other's (or its own earlier) work.

Usage::

    python bench/bench_spanthm.py [--repeat 3] [--json bench/results/spanthm.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import spanthm
from spanthm import brute_force_spectrum, clear_caches, exact_spectrum


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        clear_caches()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_table(repeat: int) -> dict:
    cmd = [sys.executable, "-m", "spanthm.cli", "table", "--Lmax", "8", "--dmax", "6", "--json"]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
    rows = json.loads(proc.stdout)
    assert len(rows) == 48 and all(r["theorem"] == "holds" for r in rows)
    return {"command": "spanthm table --Lmax 8 --dmax 6", "instances": len(rows),
            "seconds_min": min(times), "seconds_max": max(times),
            "seconds_in_exact_method": sum(r["seconds"] for r in rows)}


def bench_ratio(repeat: int) -> list:
    out = []
    for L in (1, 2):
        for d in (1, 2, 3):
            feats = tuple(range(L + 1))
            exact = exact_spectrum(feats, d).dims
            brute = brute_force_spectrum(feats, d)
            assert exact == brute, (L, d)
            t_cert = _best_of(lambda: exact_spectrum(feats, d), repeat)
            t_brute = _best_of(lambda: brute_force_spectrum(feats, d), repeat)
            out.append({"L": L, "d": d, "certified_s": t_cert, "brute_force_s": t_brute,
                        "ratio": t_brute / t_cert})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    table = bench_table(args.repeat)
    ratios = bench_ratio(args.repeat)
    print(f"{table['command']}: {table['instances']} instances, "
          f"{table['seconds_min']:.2f} s (min of {args.repeat}; max {table['seconds_max']:.2f} s), "
          f"of which {table['seconds_in_exact_method']:.3f} s in the exact method")
    print(f"{'L':>2} {'d':>2} {'certified [ms]':>15} {'brute force [ms]':>17} {'ratio':>8}")
    for r in ratios:
        print(f"{r['L']:>2} {r['d']:>2} {1e3 * r['certified_s']:>15.2f} "
              f"{1e3 * r['brute_force_s']:>17.2f} {r['ratio']:>8.1f}")
    if args.json:
        from spanthm.io import atomic_write_json
        atomic_write_json(args.json, {
            "table": table, "ratios": ratios, "spanthm": spanthm.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "repeat": args.repeat})
    return 0


if __name__ == "__main__":
    sys.exit(main())
