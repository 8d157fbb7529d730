r"""SevenNet through the adapter against sevenn's own paths, in one run.

What is measured
----------------
Configurations per second on the first ``--frames`` (100) frames of the shipped aspirin
data (21 atoms; at SevenNet's 5 A cutoff nearly every pair is an edge: 340 edges), float32
positions, for the pretrained ``--model`` (``7net-0``):

* ``calculator``: sevenn's ASE ``SevenNetCalculator`` (``get_potential_energy`` per
  configuration; it computes forces and stress as well, as it always does);
* ``bare``: the model from ``sevenn.util.model_from_checkpoint`` with its force module
  removed (``delete_module_by_key('force_output')``), sevenn's single-graph mode, under
  ``torch.no_grad()``, one configuration per graph built as the calculator builds it
  (``unlabeled_atoms_to_graph`` + ``AtomGraphData.from_numpy_dict``; graph building
  included, and also timed alone as ``graph_build``);
* ``adapter B=k``: :meth:`empirical.adapters.sevenn.SevenNetBackbone.features_batch` with
  energies, under ``torch.no_grad()`` (as the diagnostic calls it), ``k`` configurations
  per graph, for the adapter's default ``batch_size`` and every ``--batch-sizes`` entry;
* ``extract xN``: what the diagnostic runs, ``empirical.diagnostic._features.atom_features``
  (features of the marked atoms and energies), the adapter's batches split over ``N``
  threads of one intra-op thread each (``--extract-threads``, default all cores).

Each side runs once to warm up, then the sides run one after another, ``--repeat`` rounds
(so that a load change on a shared machine hits them alike); the best round of each side
gives its rate. Also recorded per side: minor page faults per configuration (fresh memory
pages the allocator mapped: the cost of intermediates too large for the heap), the CPU time
of this process per configuration (``time.process_time``: with one torch thread, close to
what an idle core would take, where the wall clock also counts waiting for a shared CPU),
and the load average before and after (``os.getloadavg``: other work on the machine).
``--breakdown`` adds one pass per batch size timing SevenNet's convolution modules (e3nn
``TensorProduct`` with per-edge weights, gather, scatter) apart from the rest.

Reported: conf/s, ms/conf, the extrapolated time of 5000 configurations (all aspirin
frames), and the ratios adapter/calculator and adapter/bare (> 1: the adapter is faster);
the largest energy difference adapter - bare (a sanity check). ``--threads`` sets torch's
intra-op threads (default: torch's default).

Usage::

    python bench/bench_sevenn.py [--frames 100] [--repeat 3] [--threads N]
        [--batch-sizes 1,2,4,8,16] [--model 7net-0] [--breakdown]
        [--json bench/results/sevenn.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FULL_FRAMES = 5000


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _time(fn: Callable[[], None]):
    """(wall seconds, CPU seconds of this process, minor page faults) of ``fn()``."""
    faults = _minflt()
    cpu = time.process_time()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu, _minflt() - faults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="7net-0")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-sizes", default="1,2,4,8,16",
                    help="other adapter batch sizes (comma-separated; empty: none)")
    ap.add_argument("--skip-calculator", action="store_true")
    ap.add_argument("--extract-threads", type=int, default=None,
                    help="threads of the diagnostic's extraction side (default: all cores)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time the convolutions apart from the rest (CPU time, hooks)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "sevenn.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="No tensor product accelerator")

    import ase
    import sevenn
    import sevenn._keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.calculator import SevenNetCalculator
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from sevenn.util import model_from_checkpoint, pretrained_name_to_path

    from empirical.adapters import sevenn as adapter
    from empirical.data import load

    data = load("aspirin")
    n = min(args.frames, len(data.positions))
    numbers = np.asarray(data.numbers)
    positions64 = np.asarray(data.positions[:n], dtype=np.float64)
    positions = torch.tensor(positions64, dtype=torch.float32)
    z = torch.tensor(numbers, dtype=torch.long)
    atoms = [ase.Atoms(numbers=numbers, positions=p) for p in positions.double().numpy()]

    backbone = adapter.load(args.model)
    default_bs = backbone.batch_size
    sizes = [default_bs] + [int(s) for s in args.batch_sizes.split(",") if s.strip()
                            and int(s) != default_bs]

    bare, _ = model_from_checkpoint(pretrained_name_to_path(args.model))
    bare.delete_module_by_key("force_output")
    bare.set_is_batch_data(False)
    bare.eval()
    cutoff = bare.cutoff

    def graphs():
        return [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, cutoff))
                for a in atoms]

    bare_energies = np.empty(n)

    def run_bare():
        with torch.no_grad():
            for i, a in enumerate(atoms):
                g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, cutoff))
                bare_energies[i] = float(bare(g)[KEY.PRED_TOTAL_ENERGY])

    adapter_energies: Dict[int, np.ndarray] = {}

    def run_adapter(bs):
        def fn():
            backbone.batch_size = bs
            with torch.no_grad():
                _, e = backbone.features_batch(positions, z)
            adapter_energies[bs] = e.double().numpy()
        return fn

    sides: Dict[str, Callable[[], None]] = {}
    if not args.skip_calculator:
        calc = SevenNetCalculator(args.model, device="cpu")

        def run_calc():
            for a in atoms:
                a.calc = calc
                a.get_potential_energy()
                a.calc = None
        sides["calculator"] = run_calc
    sides["graph_build"] = graphs
    sides["bare"] = run_bare
    for bs in sizes:
        sides[f"adapter B={bs}"] = run_adapter(bs)

    # what the diagnostic runs: atom_features with the batches split over the machine's
    # cores, one intra-op thread each (empirical.diagnostic._features, thread_safe)
    from empirical.diagnostic import atom_features
    workers = args.extract_threads or os.cpu_count() or 1
    identity = np.broadcast_to(np.eye(3), (n, 3, 3))

    def run_extraction():
        backbone.batch_size = default_bs
        atom_features(backbone, positions64, numbers, identity, [6, 7], threads=workers)
    extraction = f"extract x{workers}"
    sides[extraction] = run_extraction

    load_before = os.getloadavg()
    for name, fn in sides.items():        # warm-up (allocator, e3nn code paths)
        with torch.no_grad():
            if name.startswith("adapter"):
                backbone.batch_size = int(name.split("=")[1])
                backbone.features_batch(positions[:backbone.batch_size], z)
            elif name == "bare":
                bare(graphs()[0])
    rounds: Dict[str, List[float]] = {k: [] for k in sides}
    cpu: Dict[str, List[float]] = {k: [] for k in sides}
    faults: Dict[str, List[int]] = {k: [] for k in sides}
    for r in range(args.repeat):
        for name, fn in sides.items():
            seconds, cpu_s, flt = _time(fn)
            rounds[name].append(seconds)
            cpu[name].append(cpu_s)
            faults[name].append(flt)
            print(f"round {r + 1} {name:14s} {n / seconds:7.1f} conf/s  "
                  f"{1e3 * cpu_s / n:7.2f} CPU ms/conf  {flt / n:8.0f} page faults/conf",
                  flush=True)
    load_after = os.getloadavg()

    # where the adapter's time goes: CPU time in the convolutions (e3nn TensorProduct with
    # per-edge weights, gather and scatter) against the rest of the forward, per batch size
    breakdown = {}
    if args.breakdown:
        spent = {"convolution": 0.0}
        started = {}

        def pre(module, inputs):
            started[id(module)] = time.process_time()

        def post(module, inputs, output):
            spent["convolution"] += time.process_time() - started.pop(id(module))

        handles = []
        for name, module in backbone.model._modules.items():
            if name.endswith("_convolution"):
                handles += [module.register_forward_pre_hook(pre),
                            module.register_forward_hook(post)]
        try:
            for bs in sizes:
                spent["convolution"] = 0.0
                _, cpu_s, _ = _time(run_adapter(bs))
                breakdown[bs] = {"total_cpu_ms_per_conf": 1e3 * cpu_s / n,
                                 "convolution_cpu_ms_per_conf": 1e3 * spent["convolution"] / n}
        finally:
            for h in handles:
                h.remove()

    rate = {k: n / min(v) for k, v in rounds.items()}
    default_side = f"adapter B={default_bs}"
    report = {
        "model": args.model, "frames": n, "repeat": args.repeat,
        "torch_threads": torch.get_num_threads(), "default_batch_size": default_bs,
        "conf_per_s": rate,
        "ms_per_conf": {k: 1e3 / v for k, v in rate.items()},
        "seconds_for_5000": {k: FULL_FRAMES / v for k, v in rate.items()
                             if k != "graph_build"},
        "cpu_ms_per_conf": {k: 1e3 * min(v) / n for k, v in cpu.items()},
        "page_faults_per_conf": {k: min(v) / n for k, v in faults.items()},
        "cpu_breakdown_by_batch_size": breakdown,
        "rounds_s": rounds,
        "ratio_adapter_over_calculator": (rate[default_side] / rate["calculator"]
                                          if "calculator" in rate else None),
        "ratio_adapter_over_bare": rate[default_side] / rate["bare"],
        "ratio_extraction_over_calculator": (rate[extraction] / rate["calculator"]
                                             if "calculator" in rate else None),
        "ratio_extraction_over_bare": rate[extraction] / rate["bare"],
        "max_energy_diff_adapter_minus_bare_eV": max(
            float(np.abs(e - bare_energies).max()) for e in adapter_energies.values()),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "sevenn": sevenn.__version__},
    }
    print()
    print(f"{'side':16s} {'conf/s':>8s} {'ms/conf':>8s} {'CPU ms/conf':>12s} "
          f"{'5000 frames':>12s} {'faults/conf':>12s}")
    for k in sides:
        t5000 = f"{FULL_FRAMES / rate[k]:10.0f} s" if k != "graph_build" else f"{'':>12s}"
        print(f"{k:16s} {rate[k]:8.1f} {1e3 / rate[k]:8.2f} "
              f"{report['cpu_ms_per_conf'][k]:12.2f} {t5000} "
              f"{report['page_faults_per_conf'][k]:12.0f}")
    if report["ratio_adapter_over_calculator"] is not None:
        print(f"adapter (B={default_bs}) / calculator: "
              f"{report['ratio_adapter_over_calculator']:.2f}x")
    print(f"adapter (B={default_bs}) / bare:       {report['ratio_adapter_over_bare']:.2f}x")
    if report["ratio_extraction_over_calculator"] is not None:
        print(f"{extraction} / calculator: {report['ratio_extraction_over_calculator']:.2f}x")
    print(f"{extraction} / bare:       {report['ratio_extraction_over_bare']:.2f}x")
    for bs, row in breakdown.items():
        print(f"B={bs:<3d} CPU ms/conf: {row['total_cpu_ms_per_conf']:6.2f} total, "
              f"{row['convolution_cpu_ms_per_conf']:6.2f} in the convolutions")
    print(f"max |E_adapter - E_bare|: {report['max_energy_diff_adapter_minus_bare_eV']:.2e} eV; "
          f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
