"""Stage 2 of the diagnostic: frozen-backbone features of the marked atoms (docs/method.md
§2.2, §2.4).

:func:`extract_features` is ``backbone + dataset + plan -> FeatureSet``: a pure function
of its inputs (a caller that probes one backbone many times keeps the :class:`FeatureSet`;
nothing is cached behind its back). The backbone is run on every rotated configuration
itself (``positions @ R.T``): the measurement does not assume equivariance, so a backbone
that is not equivariant shows it instead of being silently corrected by ``D(R)``.

Dtype: positions reach a model in its own dtype (:func:`model_dtype`): the object's
``dtype`` attribute when it is a ``torch.dtype``, else the dtype of the first floating
parameter of the object (when it is a torch module) or of any torch module it holds as an
attribute, else torch's default dtype. Features and energies come back as float64 numpy.

Layout: ``features`` ``(samples, 2 * irreps_out.dim)`` = ``[h_a, h_b]`` (marked atom
``a``, then ``b``), irreps ``irreps_out + irreps_out``; energies in eV (``None`` for a
backbone without ``energy``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from e3nn import o3

from ..backbone import (Backbone, check_protocol, equivariance_error, model_device,
                        model_dtype, supports)
from ..data import nearest_neighbour_distances
from ._injection import marked_direction, signal

__all__ = ["FeatureSet", "MarkedFeatures", "extract_features", "feature_equivariance", "marked_features",
           "atom_features", "rotate", "model_dtype", "model_device", "batch_size",
           "shortest_distances", "signals", "DEFAULT_CHUNK"]

#: Configurations per batch for this package's :class:`~empirical.backbone.Backbone`.
DEFAULT_CHUNK = 8


@dataclass(frozen=True, eq=False)
class MarkedFeatures:
    """Features ``[h_a, h_b]`` of a set of configurations and their energies."""

    features: np.ndarray             # (n, 2 * irreps.dim), [h_a, h_b]
    irreps: o3.Irreps                # irreps_out + irreps_out
    energies: Optional[np.ndarray]   # (n,) eV, or None


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """What the probe stage needs of one backbone on the plan's samples.

    Attributes
    ----------
    features : (samples, 2 * irreps_out.dim) float64, ``[h_a, h_b]`` per sample
    irreps : e3nn Irreps of ``features`` (``irreps_out + irreps_out``)
    energies : (samples,) float64 eV, or None (no ``energy`` method)
    directions : (samples, 3) the marked direction ``u`` of each rotated sample
    dtype : the dtype the positions reached the model in (e.g. ``"float32"``)
    equivariance_error : ``{"rotation": float, "reflection": float}`` (max abs, one frame)
    rotation_seed : the seed of the samples' Haar rotations
    """

    features: np.ndarray
    irreps: o3.Irreps
    energies: Optional[np.ndarray]
    directions: np.ndarray
    dtype: str
    equivariance_error: Dict[str, float]
    rotation_seed: int

    @property
    def feature_degrees(self):
        return sorted({ir.l for _, ir in self.irreps})


def rotate(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``positions[i] @ rotations[i].T`` for every configuration: ``(n, atoms, 3)``."""
    return np.einsum("nij,naj->nai", rotations, np.asarray(positions, dtype=np.float64))


def batch_size(backbone, chunk: Optional[int] = None) -> int:
    """Configurations per ``features_batch`` call: ``chunk`` when given, else the backbone's
    ``batch_size`` attribute, else :data:`DEFAULT_CHUNK`."""
    if chunk is not None:
        return int(chunk)
    own = getattr(backbone, "batch_size", None)
    if isinstance(own, int) and not isinstance(own, bool) and own >= 1:
        return own
    return DEFAULT_CHUNK


def thread_safe(backbone) -> bool:
    """Whether several threads may run ``backbone``'s batch path at once: this package's
    :class:`Backbone`, or an object whose ``thread_safe`` attribute is True (an adapter
    that reads features through forward hooks on a shared module is not)."""
    return isinstance(backbone, Backbone) or getattr(backbone, "thread_safe", False) is True


def _batched(backbone):
    """``features_batch`` of the backbone (the protocol's optional batch path), or ``None``.
    This package's :class:`Backbone` offers it through ``features_and_energy``."""
    if isinstance(backbone, Backbone):
        def run(pos, nums, with_energy=True):
            m, n_atoms, _ = pos.shape
            batch = torch.arange(m, device=pos.device).repeat_interleave(n_atoms)
            h, e = backbone.features_and_energy(pos.reshape(-1, 3), nums.repeat(m), batch)
            return h.reshape(m, n_atoms, -1), (e if with_energy else None)
        return run
    return backbone.features_batch if supports(backbone, "batch") else None


def atom_features(backbone, positions: np.ndarray, numbers: np.ndarray,
                  rotations: np.ndarray, atoms: Sequence[int], with_energy: bool = True,
                  chunk: Optional[int] = None,
                  progress: Optional[Callable[[int], None]] = None, threads: int = 1):
    """Features ``(n, len(atoms), irreps_out.dim)`` of the given atoms of every configuration
    ``positions[i] @ rotations[i].T``, and the energies ``(n,)`` (eV) or ``None``.

    ``backbone`` follows the protocol (:mod:`empirical.backbone._protocol`). A backbone with
    the batch path (``features_batch``; this package's :class:`Backbone` through
    ``features_and_energy``) is run :func:`batch_size` configurations at a time, features
    and energy in one pass under ``torch.no_grad``; any other object one configuration at a
    time (energies with autograd enabled, since a model may compute them through forces).
    Positions go to the model's dtype and device (:func:`model_dtype`,
    :func:`model_device`). With ``threads > 1`` a backbone that is :func:`thread_safe` has
    its batches split over that many threads of one intra-op thread each (on the CPU); the
    results do not depend on it. ``progress(k)`` is called after every ``k`` configurations
    (from worker threads, when there are any).
    Raises ``ValueError`` if the backbone returns features of the wrong shape or non-finite
    values."""
    check_protocol(backbone)
    irreps = o3.Irreps(backbone.irreps_out)
    atoms = list(atoms)
    has_energy = with_energy and supports(backbone, "energy")
    rotated = rotate(positions, rotations)
    n, n_atoms, _ = rotated.shape
    feats = np.empty((n, len(atoms), irreps.dim))
    energies = np.empty(n) if has_energy else None
    dtype, device = model_dtype(backbone), model_device(backbone)
    name = type(backbone).__name__
    batched = _batched(backbone)
    if batched is not None:
        size = batch_size(backbone, chunk)
        nums = torch.tensor(np.asarray(numbers), dtype=torch.long, device=device)

        def one_batch(start: int, intra: Optional[int] = None) -> None:
            if intra is not None:
                torch.set_num_threads(intra)     # per calling thread (OpenMP)
            stop = min(start + size, n)
            m = stop - start
            pos = torch.as_tensor(rotated[start:stop], dtype=dtype).to(device)
            with torch.no_grad():
                h, e = batched(pos, nums, with_energy=has_energy)
            h = torch.as_tensor(h)
            if tuple(h.shape) != (m, n_atoms, irreps.dim):
                raise ValueError(f"{name}.features_batch returned features of shape "
                                 f"{tuple(h.shape)}, expected ({m}, {n_atoms}, {irreps.dim}) "
                                 "(configurations, n_atoms, irreps_out.dim)")
            feats[start:stop] = h[:, atoms].detach().cpu().double().numpy()
            if has_energy:
                e = torch.as_tensor(e) if e is not None else None
                if e is None or tuple(e.reshape(-1).shape) != (m,):
                    raise ValueError(f"{name}.features_batch returned no energies of shape "
                                     f"({m},) although the backbone has an energy")
                energies[start:stop] = e.reshape(-1).detach().cpu().double().numpy()
            if progress:
                progress(m)

        starts = range(0, n, size)
        if threads > 1 and thread_safe(backbone) and device.type == "cpu" and n > size:
            # batches split over threads of one intra-op thread each: a small graph network
            # leaves a second core idle inside one forward pass (docs/method.md §2.2)
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for f in [pool.submit(one_batch, start, 1) for start in starts]:
                    f.result()
        else:
            for start in starts:
                one_batch(start)
    else:
        nums = torch.tensor(np.asarray(numbers), dtype=torch.long, device=device)
        for i in range(n):
            pos = torch.as_tensor(rotated[i], dtype=dtype).to(device)
            with torch.no_grad():
                h = torch.as_tensor(backbone.node_features(pos, nums))
                if tuple(h.shape) != (n_atoms, irreps.dim):
                    raise ValueError(f"{name}.node_features returned shape "
                                     f"{tuple(h.shape)}, expected ({n_atoms}, {irreps.dim}) "
                                     f"(n_atoms, irreps_out.dim)")
                feats[i] = h[atoms].detach().cpu().double().numpy()
            if has_energy:
                with torch.enable_grad():
                    energies[i] = float(backbone.energy(pos, nums))
            if progress:
                progress(1)
    if not np.isfinite(feats).all():
        raise ValueError(f"{name} returned non-finite features")
    if has_energy and not np.isfinite(energies).all():
        raise ValueError(f"{name} returned non-finite energies")
    return feats, energies


def marked_features(backbone, positions: np.ndarray, numbers: np.ndarray,
                    rotations: np.ndarray, a: int, b: int, with_energy: bool = True,
                    chunk: Optional[int] = None,
                    progress: Optional[Callable[[int], None]] = None,
                    threads: int = 1) -> MarkedFeatures:
    """Features of atoms ``a``, ``b`` (and energies) of every configuration
    ``positions[i] @ rotations[i].T`` (see :func:`atom_features`), as
    :class:`MarkedFeatures` ``[h_a, h_b]``."""
    feats, energies = atom_features(backbone, positions, numbers, rotations, [a, b],
                                    with_energy=with_energy, chunk=chunk, progress=progress,
                                    threads=threads)
    irreps = o3.Irreps(backbone.irreps_out)
    return MarkedFeatures(feats.reshape(len(feats), -1), irreps + irreps, energies)


def equivariance_at(backbone, positions: np.ndarray, numbers: np.ndarray,
                  rotation: np.ndarray, dtype: torch.dtype) -> Dict[str, float]:
    """Max abs equivariance error of the features for one rotation and one roto-reflection
    (:func:`empirical.backbone.equivariance_error`) on one configuration: recorded so that
    a reader sees the probe's premise (equivariant features) hold."""
    device = model_device(backbone)
    pos = torch.tensor(np.asarray(positions), dtype=dtype, device=device)
    num = torch.tensor(np.asarray(numbers), dtype=torch.long, device=device)
    R = torch.tensor(rotation, dtype=dtype, device=device)
    return {"rotation": equivariance_error(backbone, pos, num, R),
            "reflection": equivariance_error(backbone, pos, num, -R)}


def feature_equivariance(backbone, dataset, plan, index: int = 0) -> Dict[str, float]:
    """The equivariance error :func:`extract_features` records, on the first sample of the
    plan under backbone ``index``'s first rotation. It sets torch's default dtype for a
    moment (e3nn builds its Wigner matrices in it): call it from one thread at a time."""
    rotation = plan.rotations(index)[0]
    return equivariance_at(backbone, plan.positions(dataset)[0], dataset.numbers, rotation,
                         model_dtype(backbone))


def shortest_distances(positions: np.ndarray) -> np.ndarray:
    """Shortest interatomic distance of every configuration ``(frames, atoms, 3)`` ->
    ``(frames,)`` (a k-d tree per frame, :func:`empirical.data.nearest_neighbour_distances`:
    ``O(atoms log atoms)``, no ``(atoms, atoms)`` array; ``inf`` for a single atom)."""
    return nearest_neighbour_distances(positions)[0].min(axis=1)


def check_cutoff(backbone, dataset, plan) -> None:
    """A message-passing backbone sees nothing of a configuration with no atom pair inside
    its cutoff (ours fails inside the model): refuse it naming the frames, before work.
    The cutoff is ``backbone.config.r_max`` or ``backbone.r_max`` when the model has one."""
    r_max = getattr(getattr(backbone, "config", None), "r_max", None)
    if r_max is None:
        r_max = getattr(backbone, "r_max", None)
    if not isinstance(r_max, (int, float)) or isinstance(r_max, bool):
        return
    shortest = shortest_distances(dataset.positions[plan.frames])
    lonely = plan.frames[shortest >= r_max]
    if lonely.size:
        shown = ", ".join(str(int(f)) for f in lonely[:5])
        more = f" and {lonely.size - 5} more" if lonely.size > 5 else ""
        raise ValueError(f"frame {shown}{more}: no atom pair within the backbone's cutoff "
                         f"r_max = {r_max} A (shortest distance {shortest.min():.3g}): the "
                         "network sees no neighbours there; check the units or drop them")


def extract_features(backbone, dataset, plan, index: int = 0, *,
                     chunk: Optional[int] = None,
                     progress: Optional[Callable[[int], None]] = None,
                     equivariance: Optional[Dict[str, float]] = None,
                     threads: int = 1) -> FeatureSet:
    """Run ``backbone`` on the plan's samples under the rotations of backbone ``index``
    (:meth:`DiagnosePlan.rotations`) and keep what the probe stage needs.

    Parameters
    ----------
    backbone : protocol object (``irreps_out``, ``node_features``; ``energy`` optional)
    dataset : :class:`empirical.data.Dataset` the plan was made for
    plan : :class:`empirical.diagnostic.DiagnosePlan`
    index : backbone index in the run (selects the independent rotation stream)
    chunk : configurations per batch for a backbone with the batch path (default
        :func:`batch_size`)
    progress : called with the number of configurations done since the last call
    equivariance : the backbone's :func:`feature_equivariance`, when already measured
        (the pipeline measures it before it starts worker threads)
    threads : threads over which a :func:`thread_safe` backbone's batches are split
    """
    check_protocol(backbone)
    ls = sorted({ir.l for _, ir in o3.Irreps(backbone.irreps_out)})
    if tuple(ls) != tuple(plan.feature_degrees):
        raise ValueError(f"the backbone has feature degrees {ls}, the plan was made for "
                         f"{list(plan.feature_degrees)}")
    a, b = plan.marked
    from ._plan import check_backbone_memory

    check_backbone_memory(backbone, dataset, plan.frames)
    check_cutoff(backbone, dataset, plan)
    positions = plan.positions(dataset)
    rotations = plan.rotations(index)
    dtype = model_dtype(backbone)
    equi = (dict(equivariance) if equivariance is not None else
            equivariance_at(backbone, positions[0], dataset.numbers, rotations[0], dtype))
    mf = marked_features(backbone, positions, dataset.numbers, rotations, a, b, chunk=chunk,
                         progress=progress, threads=threads)
    u = marked_direction(rotate(positions, rotations), a, b)
    return FeatureSet(features=mf.features, irreps=mf.irreps, energies=mf.energies,
                      directions=u, dtype=str(dtype).replace("torch.", ""),
                      equivariance_error=equi, rotation_seed=plan.rotation_seed(index))


def signals(directions: np.ndarray, coefficients: Dict[int, np.ndarray]) -> np.ndarray:
    """The targets ``s_l(u)`` of every sample, ``(samples, lmax + 1)``, ``l = 0..lmax``."""
    return np.stack([signal(l, directions, coefficients[l]) for l in sorted(coefficients)],
                    axis=1)
