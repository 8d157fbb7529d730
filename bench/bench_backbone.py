r"""Training throughput of the NequIP-style backbone against the official ``nequip``.

What is measured
----------------
Frames per second of *training*: one step is a forward pass giving total energies and
forces :math:`F = -\partial E/\partial r` (with ``create_graph``, as training needs), the
loss ``mean(((E - E_ref) / N)^2) + mean((F - F_ref)^2)``, its backward (a double backward
through the forces) and an Adam step (lr 5e-3), on batches of ``--batch-size`` (8) aspirin
molecules from the shipped dataset (the first ``--frames`` frames, cycled). After
``--warmup`` steps, ``--steps`` steps are timed, ``--repeat`` times; the best round gives
``frames/s = batch_size * steps / seconds``. Every side runs with ``--threads`` (1) torch
threads, one side after another, on the same machine in the same run.

Sides
-----
* ``ours``: :class:`empirical.backbone.Backbone`, in this process (system python).
* ``e3nn-naive``: the same network (embedding, gates, self-connections, readout, same
  sizes and paths) whose convolution is e3nn's generic
  ``o3.TensorProduct(..., "uvu", shared_weights=False)`` with per-edge weights from a
  radial MLP, then a scatter-sum: the naive e3nn implementation that our hand-written
  edge tensor product replaces. In this process; always run, so that a ratio is reported
  even where ``nequip`` cannot run.
* ``nequip``: ``nequip.model.NequIPGNNModel`` (nequip 0.19) with the same hyperparameters
  as far as its API allows, eager mode (nequip's default). ``nequip`` may be installed
  apart from this project, so this side runs in a subprocess under ``--nequip-python``
  (default: the running interpreter) executing this file with ``--side nequip``; the parent writes
  the frames and statistics to a temporary ``.npz`` and reads one JSON line back. If the
  interpreter is missing or nequip fails, the reason is printed and only the e3nn-naive
  ratio is given.

The per-species energy shift / scale and the average neighbour count are measured on the
frames used (:func:`empirical.backbone.dataset_statistics`) and given to every side.
Differences that the nequip API does not let us remove are printed (and written to the
JSON): see :func:`nequip_differences`.

Why
---
Speed claims about the backbone live here, never in timed tests: the ratio ours/nequip
(> 1: ours is faster) and ours/e3nn-naive, measured in one run on one machine.

Set up the nequip side once (nequip and this project are kept apart; nequip pulls in
lightning and hydra)::

    python -m venv .venv-nequip
    .venv-nequip/bin/pip install torch==2.13.0 'nequip==0.19.*'

Usage::

    python bench/bench_backbone.py [--steps 20] [--repeat 3] [--threads 1]
        [--nequip-python .venv-nequip/bin/python] [--json bench/results/backbone.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

RESULT_PREFIX = "BENCH_BACKBONE_RESULT "
TYPE_NAMES = {1: "H", 6: "C", 8: "O"}

#: Hyperparameters shared by every side (names of our BackboneConfig where they exist).
HYPERPARAMETERS: Dict[str, object] = {
    "L": 2, "channels": 32, "layers": 3, "r_max": 5.0, "n_basis": 8, "cutoff_p": 6,
    "radial_hidden": 32, "radial_hidden_layers": 2, "activation": "silu",
    "species": [1, 6, 8], "parity": True, "readout_hidden": 16, "model_dtype": "float32",
    "optimizer": "Adam", "lr": 5e-3, "energy_weight": 1.0, "force_weight": 1.0,
}


# -- shared timing ------------------------------------------------------------------------------

def time_training(step: Callable[[int], float], batch_size: int, warmup: int, steps: int,
                  repeat: int) -> dict:
    """Run ``warmup`` steps, then ``repeat`` rounds of ``steps`` timed steps.

    ``step(k)`` performs training step ``k`` and returns its loss. Frames/s is computed from
    the fastest round (the least disturbed by other load on the machine)."""
    k = 0
    for _ in range(warmup):
        step(k)
        k += 1
    rounds, losses = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            losses.append(step(k))
            k += 1
        rounds.append(time.perf_counter() - start)
    best = min(rounds)
    return {"round_seconds": rounds, "best_seconds": best,
            "seconds_per_step": best / steps, "frames_per_s": batch_size * steps / best,
            "first_timed_loss": losses[0], "last_timed_loss": losses[-1],
            "finite": bool(all(math.isfinite(x) for x in losses))}


def training_step(batches: list, energy_and_forces: Callable, opt, n_atoms: int
                  ) -> Callable[[int], float]:
    """Step ``k`` of training, the same on every side: ``(inputs, e_ref, f_ref) =
    batches[k % len(batches)]``, ``energy_and_forces(inputs) -> (E, F)``, the loss
    ``mean(((E - E_ref) / N)^2) + mean((F - F_ref)^2)``, its backward and an ``opt`` step;
    returns the loss."""
    def step(k: int) -> float:
        inputs, e_ref, f_ref = batches[k % len(batches)]
        e, f = energy_and_forces(inputs)
        loss = (((e - e_ref) / n_atoms) ** 2).mean() + ((f - f_ref) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def batch_slices(n_frames: int, batch_size: int, step: int) -> np.ndarray:
    """Frame indices of training step ``step`` (consecutive frames, cycled)."""
    n_batches = max(n_frames // batch_size, 1)
    start = (step % n_batches) * batch_size
    return np.arange(start, start + batch_size) % n_frames


def count_edges(positions: np.ndarray, r_max: float) -> int:
    """Ordered pairs of distinct atoms closer than ``r_max`` within each frame."""
    d = np.linalg.norm(positions[:, :, None] - positions[:, None, :], axis=-1)
    n = positions.shape[1]
    return int((d < r_max).sum() - positions.shape[0] * n)


# -- our side and the e3nn-naive side (system python, needs ``empirical``) ------------------------

def our_config(stats: dict):
    """The :class:`BackboneConfig` of the benchmark."""
    from empirical.backbone import BackboneConfig

    h = HYPERPARAMETERS
    return BackboneConfig(L=h["L"], channels=h["channels"], layers=h["layers"],
                          r_max=h["r_max"], n_basis=h["n_basis"], cutoff_p=h["cutoff_p"],
                          radial_hidden=h["radial_hidden"], activation=h["activation"],
                          species=list(h["species"]),
                          avg_num_neighbors=stats["avg_num_neighbors"],
                          energy_shift=stats["energy_shift"],
                          energy_scale=stats["energy_scale"])


class NaiveInteraction(torch.nn.Module):
    """An interaction block of our backbone with e3nn's generic per-edge tensor product.

    Takes the linears, self-connection and gate of an existing block ``ref``; the
    convolution is ``o3.TensorProduct`` (``"uvu"``, ``shared_weights=False``) on the
    gathered node features, weights from ``FullyConnectedNet([n_basis, hidden, hidden,
    weight_numel])``, scatter-sum, division by sqrt(avg_num_neighbors), linear. The paths
    are those of ``ref`` (every selection-rule path into the block's output irreps)."""

    def __init__(self, ref: torch.nn.Module, n_basis: int, radial_hidden: int):
        super().__init__()
        from e3nn import nn as enn
        from e3nn import o3

        self.avg_num_neighbors = ref.avg_num_neighbors
        self.linear_1, self.self_connection, self.gate = ref.linear_1, ref.self_connection, ref.gate
        irreps_in, irreps_sh = ref.tp.irreps_in, ref.tp.irreps_sh
        block_out = ref.linear_2.irreps_out
        targets = {ir for _, ir in block_out}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in targets:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        mid_sorted, perm, _ = o3.Irreps(mid).sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, mid_sorted, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = enn.FullyConnectedNet([n_basis, radial_hidden, radial_hidden,
                                             self.tp.weight_numel], torch.nn.functional.silu)
        self.linear_2 = o3.Linear(mid_sorted.simplify(), block_out)
        self.irreps_out = ref.irreps_out

    def forward(self, h, species_onehot, edge_src, edge_dst, edge_sh, edge_basis):
        sc = self.self_connection(h, species_onehot)
        x = self.linear_1(h)
        messages = self.tp(x[edge_src], edge_sh, self.radial(edge_basis))
        agg = torch.zeros(h.shape[0], messages.shape[1], dtype=h.dtype,
                          device=h.device).index_add(0, edge_dst, messages)
        out = self.linear_2(agg / math.sqrt(self.avg_num_neighbors)) + sc
        return self.gate(out) if self.gate is not None else out


def build_model(side: str, stats: dict, seed: int = 0) -> torch.nn.Module:
    """Our backbone (``side="ours"``) or the same network with e3nn-naive convolutions."""
    from empirical.backbone import Backbone

    config = our_config(stats)
    model = Backbone(config, seed=seed)
    if side == "e3nn-naive":
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            for i, block in enumerate(model.blocks):
                model.blocks[i] = NaiveInteraction(block, config.n_basis, config.radial_hidden)
        finally:
            torch.random.set_rng_state(state)
    elif side != "ours":
        raise ValueError(f"unknown in-process side {side!r}")
    return model.to(torch.float32)


def run_in_process(side: str, frames: dict, stats: dict, args) -> dict:
    """Time training of ``ours`` or ``e3nn-naive`` in this process."""
    from empirical.runtime import versions as runtime_versions

    torch.set_num_threads(args.threads)
    model = build_model(side, stats)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=HYPERPARAMETERS["lr"])
    n_atoms = frames["numbers"].shape[0]
    numbers = torch.as_tensor(frames["numbers"], dtype=torch.long).repeat(args.batch_size)
    graph = torch.arange(args.batch_size).repeat_interleave(n_atoms)
    n_frames = frames["positions"].shape[0]
    batches = []
    for k in range(max(n_frames // args.batch_size, 1)):
        idx = batch_slices(n_frames, args.batch_size, k)
        batches.append((torch.as_tensor(frames["positions"][idx].reshape(-1, 3), dtype=torch.float32),
                        torch.as_tensor(frames["energies"][idx], dtype=torch.float32),
                        torch.as_tensor(frames["forces"][idx].reshape(-1, 3), dtype=torch.float32)))

    step = training_step(batches, lambda pos: model.energy_and_forces(
        pos, numbers, graph, create_graph=True), opt, n_atoms)
    result = time_training(step, args.batch_size, args.warmup, args.steps, args.repeat)
    edges = [count_edges(frames["positions"][batch_slices(n_frames, args.batch_size, k)],
                         HYPERPARAMETERS["r_max"]) for k in range(len(batches))]
    return {**result, "side": side, "parameters": sum(p.numel() for p in model.parameters()),
            "edges_per_batch": float(np.mean(edges)), "threads": torch.get_num_threads(),
            "versions": runtime_versions()}


# -- nequip side (runs under --nequip-python, cannot import ``empirical``) ------------------------

def nequip_model_kwargs(stats: dict) -> dict:
    """Arguments of ``NequIPGNNModel`` matching :data:`HYPERPARAMETERS`."""
    h = HYPERPARAMETERS
    names = [TYPE_NAMES[z] for z in h["species"]]
    return {"seed": 0, "model_dtype": h["model_dtype"], "r_max": h["r_max"],
            "type_names": names, "num_layers": h["layers"], "l_max": h["L"],
            "parity": h["parity"], "num_features": h["channels"],
            "radial_mlp_depth": h["radial_hidden_layers"], "radial_mlp_width": h["radial_hidden"],
            "num_bessels": h["n_basis"], "polynomial_cutoff_p": h["cutoff_p"],
            "avg_num_neighbors": stats["avg_num_neighbors"],
            "per_type_energy_shifts": {n: stats["energy_shift"] for n in names},
            "per_type_energy_scales": {n: stats["energy_scale"] for n in names},
            "readout_mlp_hidden_layers_depth": 1,
            "readout_mlp_hidden_layers_width": h["readout_hidden"],
            "readout_mlp_nonlinearity": h["activation"]}


def nequip_differences() -> List[str]:
    """Hyperparameters / conventions in which the nequip side differs from ours."""
    c = HYPERPARAMETERS["channels"]
    return [
        f"self-connection: ours in every block, a tensor product with the species one-hot "
        f"(3x0e); nequip none in the first block (isolated-atom limit) and, in the others, "
        f"a tensor product with its learned {c}x0e type embedding (NequIPGNNModel has no "
        f"option for a one-hot; type_embed_num_features=3 would also shrink the input "
        f"features of block 1)",
        "last (scalar-only) block: nequip applies its silu gate to the scalars, ours no "
        "nonlinearity",
        "input precision: nequip keeps positions, edge geometry, energies and forces in "
        "float64 (its global default dtype; model_dtype=float32 applies inside the "
        "network); ours is float32 throughout",
        "neighbour list: nequip's is built by its data pipeline (compute_neighborlist_, "
        "matscipy backend) outside the timed step; ours is built inside the forward pass "
        "(dense distance mask) and is timed",
        "radial basis prefactor: nequip 2/r_max, ours sqrt(2/r_max) (same Bessel "
        "functions and polynomial cutoff p=6)",
        "weight initialisation schemes differ (seed 0 on both sides)",
    ]


def run_nequip_side(data_path: str, args) -> dict:
    """Time nequip training (called in the subprocess)."""
    torch.set_num_threads(args.threads)
    import e3nn
    import nequip
    from nequip.data import AtomicDataDict, compute_neighborlist_, from_dict
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    blob = np.load(data_path)
    stats = json.loads(str(blob["stats"]))
    frames = {k: blob[k] for k in ("positions", "numbers", "energies", "forces")}
    species = list(HYPERPARAMETERS["species"])
    types = np.array([species.index(int(z)) for z in frames["numbers"]], dtype=np.int64)
    kwargs = nequip_model_kwargs(stats)
    model = NequIPGNNModel(**kwargs)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=HYPERPARAMETERS["lr"])
    dtype = torch.get_default_dtype()
    n_atoms = types.shape[0]
    n_frames = frames["positions"].shape[0]
    batches = []
    for k in range(max(n_frames // args.batch_size, 1)):
        idx = batch_slices(n_frames, args.batch_size, k)
        per_frame = [compute_neighborlist_(from_dict({"pos": frames["positions"][i],
                                                       "atom_types": types}),
                                           HYPERPARAMETERS["r_max"]) for i in idx]
        batches.append((AtomicDataDict.batched_from_list(per_frame),
                        torch.as_tensor(frames["energies"][idx], dtype=dtype),
                        torch.as_tensor(frames["forces"][idx].reshape(-1, 3), dtype=dtype)))

    def energy_and_forces(data):
        out = model(dict(data))
        return out[AtomicDataDict.TOTAL_ENERGY_KEY].reshape(-1), out[AtomicDataDict.FORCE_KEY]

    step = training_step(batches, energy_and_forces, opt, n_atoms)
    result = time_training(step, args.batch_size, args.warmup, args.steps, args.repeat)
    return {**result, "side": "nequip", "parameters": sum(p.numel() for p in model.parameters()),
            "edges_per_batch": float(np.mean([AtomicDataDict.num_edges(b[0]) for b in batches])),
            "threads": torch.get_num_threads(), "model_kwargs": kwargs,
            "nequip_input_dtype": str(dtype).replace("torch.", ""),
            "versions": {"nequip": nequip.__version__, "torch": torch.__version__,
                         "e3nn": e3nn.__version__, "python": platform.python_version()}}


def launch_nequip(python: str, frames: dict, stats: dict, args) -> Tuple[Optional[dict], str]:
    """Run the nequip side in a subprocess; ``(result, "")`` or ``(None, reason)``."""
    if not Path(python).exists():
        return None, f"nequip interpreter {python} does not exist"
    if not os.access(python, os.X_OK):
        return None, f"nequip interpreter {python} is not executable"
    with tempfile.TemporaryDirectory(prefix="bench_backbone_") as tmp:
        data = Path(tmp) / "frames.npz"
        np.savez(data, **frames, stats=np.array(json.dumps(stats)))
        cmd = [python, str(Path(__file__).resolve()), "--side", "nequip", "--data", str(data),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--repeat", str(args.repeat), "--threads", str(args.threads),
               "--batch-size", str(args.batch_size)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
               "MKL_NUM_THREADS": str(args.threads)}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=args.nequip_timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return None, f"nequip side did not finish within {args.nequip_timeout} s"
        except OSError as exc:
            return None, f"could not start {python}: {exc}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        return None, f"nequip side exited with status {proc.returncode} without a result:\n    {tail}"
    payload = json.loads(lines[-1][len(RESULT_PREFIX):])
    if "error" in payload:
        return None, payload["error"]
    return payload, ""


def nequip_child(args) -> int:
    """Entry point of the subprocess: print one result line (or an error line when nequip
    cannot be imported). Any other failure ends the subprocess with its traceback, whose
    last lines the parent reports (:func:`launch_nequip`)."""
    try:
        import nequip  # noqa: F401
    except ImportError as exc:
        print(RESULT_PREFIX + json.dumps(
            {"error": f"`import nequip` failed under {sys.executable}: "
                      f"{type(exc).__name__}: {exc}"}), flush=True)
        return 0
    print(RESULT_PREFIX + json.dumps(run_nequip_side(args.data, args)), flush=True)
    return 0


# -- parent -------------------------------------------------------------------------------------

def load_frames(n: int) -> Tuple[dict, dict]:
    """The first ``n`` aspirin frames and their statistics (shift, scale, neighbours)."""
    from empirical.backbone import dataset_statistics
    from empirical.data import load

    ds = load("aspirin")
    n = min(n, ds.n_frames)
    frames = {"positions": np.array(ds.positions[:n], dtype=np.float64),
              "numbers": np.array(ds.numbers, dtype=np.int64),
              "energies": np.array(ds.energies[:n], dtype=np.float64),
              "forces": np.array(ds.forces[:n], dtype=np.float64)}
    stats = dataset_statistics(ds, np.arange(n), float(HYPERPARAMETERS["r_max"]))
    return frames, stats


def print_table(results: Dict[str, Optional[dict]]) -> None:
    print(f"{'side':<12} {'frames/s':>9} {'s/step':>8} {'params':>8} {'edges/batch':>11} "
          f"{'loss first->last timed':>24}")
    for side, r in results.items():
        if r is None:
            print(f"{side:<12} {'n/a':>9}")
            continue
        print(f"{side:<12} {r['frames_per_s']:9.2f} {r['seconds_per_step']:8.3f} "
              f"{r['parameters']:8d} {r['edges_per_batch']:11.1f} "
              f"{r['first_timed_loss']:11.3e} -> {r['last_timed_loss']:.3e}")


def parse_args(argv: Optional[Sequence[str]] = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round (20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (3)")
    p.add_argument("--repeat", type=int, default=1, help="timed rounds, best kept (1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads on every side (1)")
    p.add_argument("--batch-size", type=int, default=8, help="molecules per step (8)")
    p.add_argument("--frames", type=int, default=64, help="aspirin frames used, cycled (64)")
    p.add_argument("--nequip-python", default=None,
                   help="interpreter with nequip installed (default: the running one; "
                   "recorded as given)")
    p.add_argument("--nequip-timeout", type=float, default=1800.0,
                   help="seconds before the nequip subprocess is abandoned (1800)")
    p.add_argument("--json", type=Path, default=None, help="write all figures to this file")
    p.add_argument("--side", choices=["all", "nequip"], default="all", help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("steps", "repeat", "threads", "batch_size", "frames"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.side == "nequip" and not args.data:
        p.error("--side nequip needs --data")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.side == "nequip":
        return nequip_child(args)
    torch.set_num_threads(args.threads)
    frames, stats = load_frames(args.frames)
    if frames["positions"].shape[0] < args.batch_size:
        raise SystemExit(f"--frames {args.frames} gives fewer frames than one batch")
    load_before = os.getloadavg()
    print(f"aspirin: {frames['positions'].shape[0]} frames x {frames['numbers'].shape[0]} atoms, "
          f"batch {args.batch_size}, warm-up {args.warmup}, {args.steps} timed steps x "
          f"{args.repeat} round(s), {args.threads} thread(s); load average "
          f"{load_before[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    print(f"statistics: avg_num_neighbors {stats['avg_num_neighbors']:.3f}, energy shift "
          f"{stats['energy_shift']:.4f} eV/atom, scale {stats['energy_scale']:.4f} eV/A",
          flush=True)
    results: Dict[str, Optional[dict]] = {}
    for side in ("ours", "e3nn-naive"):
        print(f"timing {side} ...", flush=True)
        results[side] = run_in_process(side, frames, stats, args)
    print(f"timing nequip ({args.nequip_python or 'this interpreter'}, subprocess) ...",
          flush=True)
    results["nequip"], nequip_error = launch_nequip(args.nequip_python or sys.executable,
                                                    frames, stats, args)
    if nequip_error:
        print(f"nequip side unavailable: {nequip_error}\n"
              f"-> comparing against the e3nn-naive baseline only", flush=True)
    load_after = os.getloadavg()

    print()
    print_table(results)
    differences = nequip_differences()
    if results["nequip"] is not None:
        print("\nnequip differs from ours in (not removable through NequIPGNNModel):")
        for d in differences:
            print(f"  - {d}")
    for side, r in results.items():
        if r is not None and not r["finite"]:
            print(f"warning: {side} produced a non-finite loss")
    ours = results["ours"]["frames_per_s"]
    ratios = {"ours/e3nn-naive": ours / results["e3nn-naive"]["frames_per_s"]}
    print()
    print(f"ratio ours/e3nn-naive = {ratios['ours/e3nn-naive']:.2f}")
    if results["nequip"] is not None:
        ratios["ours/nequip"] = ours / results["nequip"]["frames_per_s"]
        print(f"ratio ours/nequip = {ratios['ours/nequip']:.2f}")
    else:
        ratios["ours/nequip"] = None
        print(f"ratio ours/nequip = n/a ({nequip_error.splitlines()[0]})")

    if args.json is not None:
        from empirical.runtime import versions as runtime_versions
        from spanthm.io import atomic_write_text

        atomic_write_text(args.json, json.dumps({
            "benchmark": "backbone training throughput (frames/s)",
            "settings": {"steps": args.steps, "warmup": args.warmup, "repeat": args.repeat,
                         "threads": args.threads, "batch_size": args.batch_size,
                         "frames": int(frames["positions"].shape[0]), "dataset": "aspirin",
                         "nequip_python": args.nequip_python},
            "hyperparameters": HYPERPARAMETERS, "statistics": stats,
            "nequip_model_kwargs": nequip_model_kwargs(stats),
            "nequip_differences": differences, "results": results,
            "nequip_error": nequip_error or None, "ratios": ratios,
            "versions": runtime_versions(),
            "machine": {"processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "load_average_before": load_before,
                        "load_average_after": load_after},
        }, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
