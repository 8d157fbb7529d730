"""Generate the aspirin dataset: GFN2-xTB Born-Oppenheimer Langevin dynamics at 500 K.

Protocol (defaults; each one a parameter of :func:`generate_aspirin`):

1. Geometry: the hand-built structure of :mod:`._aspirin_geometry`, optimized with the same
   method (tblite GFN2-xTB, ASE BFGS to fmax 0.01 eV/A); the optimized bond graph must equal
   :data:`._aspirin_geometry.BONDS` (otherwise generation stops).
2. Dynamics: ``chains`` independent trajectories (seeds spawned from ``seed`` with
   :class:`numpy.random.SeedSequence`), each with Maxwell-Boltzmann velocities at the
   target temperature, ASE's Langevin integrator (centre of mass fixed by
   :class:`ase.constraints.FixCom`, friction 0.01 1/fs, time
   step 0.5 fs), ``equilibration_ps`` of equilibration, then a production run keeping one
   frame every ``spacing_fs`` (10 fs, 20 steps). Chains run in parallel processes, one
   OpenMP thread each. Set ``OMP_NUM_THREADS=1`` before tblite is first imported for
   bit-for-bit reproducible runs (the ``empirical`` command does); threaded reductions
   otherwise change the last digits, and MD amplifies them.
3. Temperature check: the mean kinetic temperature over every production step,
   :math:`T = 2 \\langle K \\rangle / ((3N - 3) k_B)` (the centre of mass is fixed, so
   ``3N - 3`` degrees of freedom), must lie within ``tolerance`` (5 %) of the target,
   otherwise :class:`GenerationError` and nothing is written.

Units: ASE's (eV, Angstrom); tblite's ASE calculator returns energies in eV and forces in
eV/A.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import multiprocessing as mp
import numbers
import os
import platform
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from ..checks import is_int
from ..runtime import Progress
from ..units import BOLTZMANN
from . import _aspirin_geometry as geom
from ._dataset import Dataset

__all__ = ["GenerationError", "MDSettings", "check_request", "md_steps",
           "MAX_GENERATED_FRAMES", "MAX_CHAINS", "MAX_TEMPERATURE_K", "MAX_TIMESTEP_FS",
           "MAX_EQUILIBRATION_PS", "MAX_FRICTION_PER_FS", "MAX_MD_STEPS", "optimize_aspirin",
           "generate_aspirin", "save_npz"]


class GenerationError(RuntimeError):
    """Generation could not produce a dataset that meets the protocol."""


#: Most frames one request may keep (``frames``; the shipped set has 5000). Positions and
#: forces are two float64 arrays of ``frames x 21 x 3`` (1 GB at this bound, twice that while
#: the chains are joined), and at the default 20 MD steps a frame and ~5 ms a GFN2-xTB step
#: this bound is already more than a day of MD on one core.
MAX_GENERATED_FRAMES = 1_000_000
#: Most independent chains (``chains``): one process each; more than a large node's cores
#: only queue up.
MAX_CHAINS = 64
#: Highest Langevin target temperature in K. Aspirin decomposes far below it; above it the
#: GFN2-xTB self-consistent field stops converging (1e9 K fails in the first steps).
MAX_TEMPERATURE_K = 5000.0
#: Longest MD time step in fs: hydrogen vibrations (~9 fs period) are not integrated
#: beyond it (0.5 fs by default).
MAX_TIMESTEP_FS = 5.0
#: Longest equilibration in ps (5 ps by default; 1 ns is 2 M steps at 0.5 fs).
MAX_EQUILIBRATION_PS = 1000.0
#: Largest Langevin friction in 1/fs (0.01 by default; 1/fs already damps within a step).
MAX_FRICTION_PER_FS = 1.0
#: Most MD steps (each one a GFN2-xTB calculation) of one request, all chains, equilibration
#: and production together: 50 M steps are about three days of one core at ~5 ms a step.
#: The default request (5000 frames, 20 steps a frame, 5 ps at 0.5 fs) is 110 000 steps.
MAX_MD_STEPS = 50_000_000


def _finite(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` if ``low_open``);
    ``ValueError`` naming ``name`` and the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low:g} "
                         f"and at most {high:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class MDSettings:
    """Langevin MD settings (ASE units converted where used).

    Each field is checked on construction (``ValueError`` naming it): temperature in
    ``(0, MAX_TEMPERATURE_K]``, time step in ``(0, MAX_TIMESTEP_FS]``, frame spacing a
    whole multiple of the time step with at most :data:`MAX_MD_STEPS` steps a frame,
    equilibration in ``[0, MAX_EQUILIBRATION_PS]``, friction in
    ``(0, MAX_FRICTION_PER_FS]``, tolerance in ``(0, 1]``.
    """

    temperature_K: float = 500.0
    timestep_fs: float = 0.5
    spacing_fs: float = 10.0
    equilibration_ps: float = 5.0
    friction_per_fs: float = 0.01
    tolerance: float = 0.05

    def __post_init__(self):
        _finite("temperature_K", self.temperature_K, 0.0, MAX_TEMPERATURE_K, low_open=True)
        _finite("timestep_fs", self.timestep_fs, 0.0, MAX_TIMESTEP_FS, low_open=True)
        _finite("spacing_fs", self.spacing_fs, 0.0, MAX_TIMESTEP_FS * MAX_MD_STEPS,
                low_open=True)
        _finite("equilibration_ps", self.equilibration_ps, 0.0, MAX_EQUILIBRATION_PS)
        _finite("friction_per_fs", self.friction_per_fs, 0.0, MAX_FRICTION_PER_FS, low_open=True)
        _finite("tolerance", self.tolerance, 0.0, 1.0, low_open=True)
        # step counts as floats first: a tiny time step must not reach round(inf)
        stride = self.spacing_fs / self.timestep_fs
        equilibration = self.equilibration_ps * 1000.0 / self.timestep_fs
        if stride > MAX_MD_STEPS or equilibration > MAX_MD_STEPS:
            raise ValueError(f"spacing_fs {self.spacing_fs:g} or equilibration_ps "
                             f"{self.equilibration_ps:g} at timestep_fs {self.timestep_fs:g} "
                             f"is more than {MAX_MD_STEPS} MD steps (MAX_MD_STEPS)")
        if stride < 1 or abs(stride - round(stride)) > 1e-9:
            raise ValueError(f"frame spacing {self.spacing_fs} fs must be a positive multiple "
                             f"of the time step {self.timestep_fs} fs")

    @property
    def stride(self) -> int:
        return int(round(self.spacing_fs / self.timestep_fs))

    @property
    def equilibration_steps(self) -> int:
        return int(round(self.equilibration_ps * 1000.0 / self.timestep_fs))


def md_steps(frames: int, chains: int, settings: MDSettings) -> int:
    """MD steps of a request: each chain equilibrates, then ``frames * stride`` in all."""
    return chains * settings.equilibration_steps + frames * settings.stride


def check_request(frames, chains, settings: MDSettings) -> None:
    """Refuse a request whose size is out of bounds, before any work (``ValueError`` naming
    the value): ``frames`` in ``1..MAX_GENERATED_FRAMES``, ``chains`` in
    ``1..min(frames, MAX_CHAINS)``, at most :data:`MAX_MD_STEPS` MD steps in all."""
    if not is_int(frames) or not 1 <= frames <= MAX_GENERATED_FRAMES:
        raise ValueError(f"frames must be an integer between 1 and {MAX_GENERATED_FRAMES} "
                         f"(MAX_GENERATED_FRAMES), got {frames!r}")
    if not is_int(chains) or not 1 <= chains <= min(frames, MAX_CHAINS):
        raise ValueError(f"chains must be an integer between 1 and min(frames, {MAX_CHAINS}) "
                         f"(MAX_CHAINS), got {chains!r} for {frames} frames")
    steps = md_steps(frames, chains, settings)
    if steps > MAX_MD_STEPS:
        raise ValueError(f"{frames} frames every {settings.spacing_fs:g} fs at "
                         f"{settings.timestep_fs:g} fs steps in {chains} chains with "
                         f"{settings.equilibration_ps:g} ps equilibration is {steps} MD steps, "
                         f"more than {MAX_MD_STEPS} (MAX_MD_STEPS)")


def _calculator():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def _bond_graph(symbols, positions) -> set:
    from ase import Atoms
    from ase.neighborlist import natural_cutoffs

    atoms = Atoms(symbols, positions=positions)
    cut = np.asarray(natural_cutoffs(atoms))
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    n = len(symbols)
    return {(i, j) for i in range(n) for j in range(i + 1, n) if d[i, j] < 1.2 * (cut[i] + cut[j])}


def optimize_aspirin(fmax: float = 0.01, steps: int = 2000):
    """Optimize the hand-built aspirin with GFN2-xTB; returns ``(positions, energy_eV)``.

    Cached per process (the result depends only on the arguments); a copy is returned.

    Raises
    ------
    GenerationError
        If BFGS does not converge or the optimized bonds differ from the intended ones.
    """
    positions, energy = _optimize_cached(float(fmax), int(steps))
    return positions.copy(), energy


@lru_cache(maxsize=4)
def _optimize_cached(fmax: float, steps: int):
    from ase import Atoms
    from ase.optimize import BFGS

    atoms = Atoms(geom.SYMBOLS, positions=geom.initial_positions())
    atoms.calc = _calculator()
    opt = BFGS(atoms, logfile=None)
    if not opt.run(fmax=fmax, steps=steps):
        raise GenerationError(f"geometry optimization did not reach fmax={fmax} eV/A in {steps} steps")
    bonds = _bond_graph(geom.SYMBOLS, atoms.positions)
    if bonds != set(geom.BONDS):
        raise GenerationError(f"optimized aspirin has different bonds: {sorted(bonds ^ set(geom.BONDS))}")
    return atoms.positions.copy(), float(atoms.get_potential_energy())


def _md_step(dyn, chain: int, step: int, total: int, settings: MDSettings) -> None:
    """One MD step; a GFN2-xTB failure becomes a :class:`GenerationError` naming the chain,
    the step and the temperature (a plain message: it crosses the process boundary)."""
    from ase.calculators.calculator import CalculationFailed

    try:
        dyn.run(1)
    except CalculationFailed as exc:
        atoms = dyn.atoms
        kinetic = 2 * atoms.get_kinetic_energy() / ((3 * len(atoms) - 3) * BOLTZMANN)
        raise GenerationError(
            f"chain {chain}: GFN2-xTB failed at MD step {step} of {total} (target "
            f"{settings.temperature_K:g} K, kinetic {kinetic:.0f} K, time step "
            f"{settings.timestep_fs:g} fs): {exc}") from None


def _run_chain(args):
    """One trajectory (runs in a worker process or in-process)."""
    chain, positions, frames, settings, seed_state, queue = args
    from ase import Atoms, units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(seed_state)
    atoms = Atoms(geom.SYMBOLS, positions=positions)
    atoms.calc = _calculator()
    if hasattr(vd, "thermalize_momenta"):  # ase >= 3.29; same draws as the deprecated name
        vd.thermalize_momenta(atoms, settings.temperature_K, rng=rng)
    else:  # pragma: no cover
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=settings.temperature_K, rng=rng)
    vd.Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep=settings.timestep_fs * units.fs,
                   temperature_K=settings.temperature_K,
                   friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    n = len(atoms)
    total = settings.equilibration_steps + frames * settings.stride
    report_every = 50
    done = 0
    start = time.perf_counter()

    def tick(k: int, temperature: float):
        if queue is not None and (k % report_every == 0 or k == total):
            queue.put((chain, k, temperature))

    for k in range(1, settings.equilibration_steps + 1):
        _md_step(dyn, chain, k, total, settings)
        tick(k, float("nan"))
    done = settings.equilibration_steps
    pos = np.empty((frames, n, 3))
    frc = np.empty((frames, n, 3))
    en = np.empty(frames)
    kinetic = 0.0
    for f in range(frames):
        for _ in range(settings.stride):
            done += 1
            _md_step(dyn, chain, done, total, settings)
            kinetic += atoms.get_kinetic_energy()
            t_now = 2 * atoms.get_kinetic_energy() / ((3 * n - 3) * BOLTZMANN)
            tick(done, t_now)
        pos[f] = atoms.positions
        frc[f] = atoms.get_forces(apply_constraint=False)  # true -dE/dR, not FixCom-projected
        en[f] = atoms.get_potential_energy()
    steps = frames * settings.stride
    mean_t = 2 * (kinetic / max(steps, 1)) / ((3 * n - 3) * BOLTZMANN)
    seconds = time.perf_counter() - start
    return {"chain": chain, "positions": pos, "forces": frc, "energies": en,
            "mean_temperature_K": mean_t, "steps": total, "seconds": seconds}


class _StepBar:
    """MD steps done (all chains) on a :class:`empirical.runtime.Progress` bar, with the
    current kinetic temperature as its label."""

    def __init__(self, total: int, enabled: bool):
        self.bar = Progress(total, enabled=None if enabled else False, desc="MD",
                            unit="step")
        self.done = 0

    def update(self, done: int, temperature: float) -> None:
        label = None if temperature != temperature else f"T={temperature:6.1f} K"
        self.bar.advance(max(done - self.done, 0), label)
        self.done = max(done, self.done)

    def close(self) -> None:
        self.bar.close()


def generate_aspirin(frames: int = 5000, seed: int = 0, settings: Optional[MDSettings] = None,
                     chains: int = 1, progress: bool = True,
                     log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Dataset:
    """Run the protocol of the module docstring and return the dataset (nothing is written).

    Parameters
    ----------
    frames : int
        Frames kept in all (split evenly over the chains, the first chains taking the rest).
    seed : int
        Seed of velocities and Langevin noise.
    settings : MDSettings
        Temperature, time step, frame spacing, equilibration, friction, tolerance.
    chains : int
        Independent trajectories run in parallel processes.
    progress : bool
        Show a progress bar on stderr (on a terminal).

    Raises
    ------
    ValueError
        A request out of bounds (:func:`check_request`: frames, chains, MD steps), checked
        before any work.
    GenerationError
        Optimization failed, GFN2-xTB failed during the MD (``CalculationFailed``: the
        message names the chain, the step and the temperature), or the production
        temperature is off target.
    ImportError
        ase or tblite missing (install the ``data`` extra).
    """
    settings = settings or MDSettings()
    if not isinstance(settings, MDSettings):
        raise ValueError(f"settings must be an MDSettings, got {type(settings).__name__}")
    check_request(frames, chains, settings)   # before the imports and the optimization
    import ase  # noqa: F401  (fail early with ImportError)
    import tblite  # noqa: F401

    t0 = time.perf_counter()
    log("optimizing the starting geometry with GFN2-xTB ...")
    positions, e_opt = optimize_aspirin()
    log(f"optimized: E = {e_opt:.6f} eV")
    per_chain = [frames // chains + (1 if c < frames % chains else 0) for c in range(chains)]
    seeds = np.random.SeedSequence(seed).spawn(chains)
    total = sum(settings.equilibration_steps + f * settings.stride for f in per_chain)
    bar = _StepBar(total, enabled=progress)
    try:
        if chains == 1:
            results = [_run_in_process(positions, per_chain[0], settings, seeds[0], bar)]
        else:
            results = _run_in_pool(positions, per_chain, settings, seeds, bar)
        bar.update(total, float("nan"))
    finally:
        bar.close()
    results.sort(key=lambda r: r["chain"])
    seconds = time.perf_counter() - t0
    mean_t = _check_temperature(results, settings, log)
    metadata = _metadata(settings, chains, per_chain, seed, results, mean_t, positions, e_opt,
                         seconds)
    numbers = np.array([{"H": 1, "C": 6, "O": 8}[s] for s in geom.SYMBOLS])
    return Dataset(
        positions=np.concatenate([r["positions"] for r in results]),
        numbers=numbers,
        energies=np.concatenate([r["energies"] for r in results]),
        forces=np.concatenate([r["forces"] for r in results]),
        metadata=metadata,
    )


def _run_in_process(positions, frames: int, settings: MDSettings, seed_state,
                    bar: _StepBar) -> dict:
    """The one chain of a request, in this process (one OpenMP thread)."""
    class _Q:
        def put(self, item):
            bar.update(item[1], item[2])
    # one OpenMP thread in this process too (torch may have raised the count): tblite's
    # threaded reductions would otherwise change the last digits from run to run
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _run_chain((0, positions, frames, settings, seed_state, _Q()))


def _run_in_pool(positions, per_chain: List[int], settings: MDSettings, seeds,
                 bar: _StepBar) -> List[dict]:
    """Every chain in its own spawned process (``OMP_NUM_THREADS=1``); the first failed
    chain ends the run (its :class:`GenerationError` is raised here)."""
    chains = len(per_chain)
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    queue = manager.Queue()
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with ctx.Pool(chains) as pool:   # leaving it terminates the other chains
            pending = [pool.apply_async(_run_chain, (
                (c, positions, per_chain[c], settings, seeds[c], queue),))
                for c in range(chains)]
            done = [0] * chains
            temps = [float("nan")] * chains
            while not all(p.ready() for p in pending):
                for p in [p for p in pending if not p.ready()][:1]:
                    p.wait(0.5)
                for p in pending:   # the first failed chain ends the run now
                    if p.ready() and not p.successful():
                        p.get()     # re-raises the worker's GenerationError
                while not queue.empty():
                    c, k, t = queue.get()
                    done[c], temps[c] = k, t
                finite = [t for t in temps if t == t]
                bar.update(sum(done), float(np.mean(finite)) if finite else float("nan"))
            return [p.get() for p in pending]
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
        manager.shutdown()


def _check_temperature(results: List[dict], settings: MDSettings,
                       log: Callable[[str], None]) -> float:
    """The production mean kinetic temperature over all chains (weighted by their steps);
    :class:`GenerationError` when it is more than ``settings.tolerance`` off target."""
    steps = [r["steps"] - settings.equilibration_steps for r in results]
    mean_t = float(np.average([r["mean_temperature_K"] for r in results], weights=steps))
    log(f"production mean kinetic temperature: {mean_t:.1f} K (target "
        f"{settings.temperature_K:.1f} K, per chain: "
        + ", ".join(f"{r['mean_temperature_K']:.1f}" for r in results) + ")")
    if abs(mean_t - settings.temperature_K) > settings.tolerance * settings.temperature_K:
        raise GenerationError(
            f"production mean kinetic temperature {mean_t:.1f} K is more than "
            f"{100 * settings.tolerance:.0f}% from the target {settings.temperature_K:.1f} K; "
            "equilibrate longer or raise the friction")
    return mean_t


def _metadata(settings: MDSettings, chains: int, per_chain: List[int], seed: int,
              results: List[dict], mean_t: float, positions, e_opt: float,
              seconds: float) -> dict:
    """The dataset's metadata: the protocol, its settings and outcome, and versions."""
    from importlib.metadata import version

    import ase

    ms_per_step = 1e3 * float(np.mean([r["seconds"] / r["steps"] for r in results]))
    return {
        "name": "aspirin",
        "molecule": "aspirin (acetylsalicylic acid), C9H8O4",
        "method": "GFN2-xTB",
        "code": "tblite (ASE calculator tblite.ase.TBLite)",
        "dynamics": "Born-Oppenheimer Langevin MD, ase.md.langevin.Langevin with ase.constraints.FixCom",
        "temperature_K": settings.temperature_K,
        "timestep_fs": settings.timestep_fs,
        "frame_spacing_fs": settings.spacing_fs,
        "equilibration_ps": settings.equilibration_ps,
        "friction_per_fs": settings.friction_per_fs,
        "chains": chains,
        "frames_per_chain": per_chain,
        "seed": seed,
        "mean_kinetic_temperature_K": mean_t,
        "chain_mean_kinetic_temperature_K": [r["mean_temperature_K"] for r in results],
        "temperature_degrees_of_freedom": "3N-3 (centre of mass fixed)",
        "initial_geometry": "hand-built from standard bond lengths "
                            "(empirical/data/_aspirin_geometry.py), optimized with GFN2-xTB, "
                            "ASE BFGS, fmax 0.01 eV/A",
        "optimized_energy_eV": e_opt,
        "optimized_positions_A": positions.round(6).tolist(),
        "atom_labels": geom.LABELS,
        "atom_order": "see atom_labels; empirical/data/_aspirin_geometry.py documents each atom",
        "marked_bond": geom.MARKED_BOND,
        "units": {"positions": "Angstrom", "energies": "eV", "forces": "eV/Angstrom"},
        "versions": {"tblite": version("tblite"), "ase": ase.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "generation_seconds": seconds,
        "ms_per_md_step": ms_per_step,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def save_npz(dataset: Dataset, path, float32: bool = True) -> Path:
    """Write a dataset as a compressed npz atomically (keys positions, numbers, energies,
    forces, metadata as a JSON string). Positions and forces as float32 unless told."""
    from ..io import atomic_path

    path = Path(path)
    dtype = np.float32 if float32 else np.float64
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez_compressed(
            tmp, positions=dataset.positions.astype(dtype), numbers=dataset.numbers,
            energies=dataset.energies.astype(np.float64), forces=dataset.forces.astype(dtype),
            metadata=np.array(json.dumps(dataset.metadata, sort_keys=True)))
    return path
