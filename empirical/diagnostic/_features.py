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
from ..backbone import equivariance_tolerance
from ..data import nearest_neighbour_distances
from ..runtime import STREAMS, stream
from ._equivariance import (CHECK_CONFIGURATIONS, CHECK_ROTATIONS, DERIVATION_CHECK_SAMPLES,
                            check_sample, equivariance_errors, rotate_features)
from ._injection import marked_direction, signal

__all__ = ["FeatureSet", "MarkedFeatures", "extract_features", "feature_equivariance", "marked_features",
           "atom_features", "rotate", "rotate_positions", "cached_features", "ROTATE_MODES",
           "equivariance_of", "rotation_record", "model_dtype", "model_device", "batch_size",
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
    equivariance_error : ``{"rotation": float, "reflection": float}`` (max abs over the
        equivariance check's sample, :func:`feature_equivariance`)
    rotation_seed : the seed of the samples' Haar rotations
    rotations : how the further rotations were obtained (``method``: ``"model"`` or
        ``"equivariance"``, ``model_runs``, ``derived``, the per-run ``check``, any
        ``fallback``; docs/method.md §2.13), or None
    cache : what the feature cache gave and took (``reused``, ``written``: entry keys;
        ``model_key``), or None without a cache
    """

    features: np.ndarray
    irreps: o3.Irreps
    energies: Optional[np.ndarray]
    directions: np.ndarray
    dtype: str
    equivariance_error: Dict[str, float]
    rotation_seed: int
    rotations: Optional[Dict] = None
    cache: Optional[Dict] = None

    @property
    def feature_degrees(self):
        return sorted({ir.l for _, ir in self.irreps})


def rotate_positions(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
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
    rotated = rotate_positions(positions, rotations)
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


def feature_equivariance(backbone, dataset, plan, index: int = 0, *, cache=None,
                        model: Optional[str] = None) -> Dict[str, float]:
    """The equivariance check of backbone ``index`` (docs/method.md §2.13): the largest
    ``|h(R x) - D(R) h(x)|`` over every atom's features of :data:`CHECK_CONFIGURATIONS`
    configurations of the plan, each under :data:`CHECK_ROTATIONS` Haar rotations
    (``"rotation"``) and their roto-reflections (``"reflection"``), drawn from stream
    ``[seed, STREAMS["equivariance"], index]`` (:func:`._equivariance.check_sample`). The
    model runs on every rotated configuration (through ``cache`` when given, under backbone
    key ``model``). Thread-safe: ``D(R)`` is built in float64 without torch's default
    dtype."""
    chosen, matrices = check_sample(len(plan.frames), plan.seed, index)
    return equivariance_of(backbone, dataset.positions[plan.frames[chosen]], dataset.numbers,
                           matrices, cache=cache, model=model)


def equivariance_of(backbone, positions: np.ndarray, numbers: np.ndarray,
                    matrices: np.ndarray, *, cache=None,
                    model: Optional[str] = None) -> Dict[str, float]:
    """:func:`feature_equivariance` of configurations ``positions`` ``(m, atoms, 3)``, each
    under its ``k`` orthogonal matrices ``matrices`` ``(m, k, 3, 3)`` (the identity first:
    :func:`._equivariance.check_sample`)."""
    m, k = matrices.shape[:2]
    n_atoms = positions.shape[1]
    feats, _, _ = cached_features(backbone, np.repeat(positions, k, axis=0), numbers,
                                  matrices.reshape(-1, 3, 3), range(n_atoms),
                                  with_energy=False, cache=cache, model=model)
    irreps = o3.Irreps(backbone.irreps_out)
    per_atom = feats.reshape(m, k, n_atoms, irreps.dim)
    per_atom = per_atom.transpose(0, 2, 1, 3).reshape(-1, k, irreps.dim)
    return equivariance_errors(per_atom, irreps, np.repeat(matrices, n_atoms, axis=0))


def cached_features(backbone, positions: np.ndarray, numbers: np.ndarray,
                    rotations: np.ndarray, atoms: Sequence[int], *, with_energy: bool = True,
                    cache=None, model: Optional[str] = None, chunk: Optional[int] = None,
                    progress: Optional[Callable[[int], None]] = None, threads: int = 1):
    """:func:`atom_features` through the feature cache: ``(features (n, len(atoms) *
    dim), energies (n,) or None, written entries)``. The samples are cut into entries of
    :data:`empirical.cache.CACHE_CHUNK`; an entry found in ``cache`` (a
    :class:`~empirical.cache.FeatureCache`) is read, the rest are computed in one call
    (so the threads split them as without a cache) and stored. Without ``cache`` or a
    backbone key ``model`` (:func:`empirical.cache.model_key`) it is :func:`atom_features`.
    The numbers do not depend on the cache: an entry holds the model's float32 output
    exactly, and float64 as float64."""
    from ..cache import CACHE_CHUNK, features_key

    atoms = [int(a) for a in atoms]
    dim = o3.Irreps(backbone.irreps_out).dim
    n = len(positions)
    has_energy = with_energy and supports(backbone, "energy")
    if cache is None or model is None:
        f, e = atom_features(backbone, positions, numbers, rotations, atoms,
                             with_energy=with_energy, chunk=chunk, progress=progress,
                             threads=threads)
        return f.reshape(n, -1), e, 0
    feats = np.empty((n, len(atoms) * dim))
    energies = np.empty(n) if has_energy else None
    todo = []
    for start in range(0, n, CACHE_CHUNK):
        stop = min(start + CACHE_CHUNK, n)
        key = features_key(model, positions[start:stop], rotations[start:stop], numbers,
                           atoms, has_energy)
        found = cache.get("features", key)
        if found is not None:
            arrays, _ = found
            f = arrays["features"]
            e = arrays.get("energies")
            if f.shape == (stop - start, len(atoms) * dim) and np.isfinite(f).all() and (
                    not has_energy or (e is not None and e.shape == (stop - start,)
                                       and np.isfinite(e).all())):
                feats[start:stop] = f
                if has_energy:
                    energies[start:stop] = e
                if progress:
                    progress(stop - start)
                continue
            cache.reject("features", key, f"it holds features of shape {f.shape}, expected "
                         f"({stop - start}, {len(atoms) * dim}), non-finite values, or no "
                         "energies")
        todo.append((key, start, stop))
    if todo:
        idx = np.concatenate([np.arange(s0, s1) for _, s0, s1 in todo])
        f, e = atom_features(backbone, positions[idx], numbers, rotations[idx], atoms,
                             with_energy=with_energy, chunk=chunk, progress=progress,
                             threads=threads)
        f = f.reshape(len(idx), -1)
        dtype = str(model_dtype(backbone)).replace("torch.", "")
        at = 0
        for key, s0, s1 in todo:
            part = f[at:at + s1 - s0]
            feats[s0:s1] = part
            if has_energy:
                energies[s0:s1] = e[at:at + s1 - s0]
            # a float32 model's output is exact in float32: half the bytes
            kept = part.astype(np.float32) if dtype in ("float32", "float16", "bfloat16") \
                else part
            cache.put("features", key,
                      {"features": kept,
                       "energies": None if e is None else e[at:at + s1 - s0]},
                      {"dtype": dtype, "scale": float(np.abs(part).max()) if part.size else 0.0,
                       "seconds": 0.0})
            at += s1 - s0
    return feats, energies, len(todo)


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


def rotation_record(rotate: str, per_configuration: int, samples: int,
                    configurations: int) -> Dict:
    """``FeatureSet.rotations`` of features the model produced for every sample."""
    return {"mode": rotate, "per_configuration": int(per_configuration), "method": "model",
            "model_runs": int(samples), "derived": 0,
            "equivariance_sample": {"configurations": min(CHECK_CONFIGURATIONS,
                                                          int(configurations)),
                                    "rotations_each": CHECK_ROTATIONS},
            "check": None}


#: How a run obtains the features of a configuration's further rotations
#: (docs/method.md §2.13): ``"auto"`` derives them by ``D(R' R^-1)`` from the first
#: rotation's when the backbone passes its equivariance check, ``"model"`` runs the model
#: on every rotation.
ROTATE_MODES = ("auto", "model")


def _derive(backbone, positions, numbers, rotations, pair, first, equi, parity, dtype,
            record, check_seed, run, progress):
    """:func:`extract_features`' derivation: the model on each configuration's first
    rotation (``first``), the rest by ``D(R' R^-1)`` when the equivariance check passes,
    then the per-run check (``check_seed``). Returns ``(features, energies, f0, e0)``;
    ``features`` is ``None`` when the derivation was refused (``record["fallback"]``)."""
    n, R = len(rotations), len(rotations) // len(first)
    a, b = pair
    f0, e0, _ = cached_features(backbone, positions[first], numbers, rotations[first], [a, b],
                                progress=progress, **run)
    tol = equivariance_tolerance(dtype, float(np.abs(f0).max()) if f0.size else 0.0)
    considered = [equi["rotation"], equi["reflection"]] if parity else [equi["rotation"]]
    if max(considered) > tol:
        record["fallback"] = (f"the equivariance check failed (max error "
                              f"{max(considered):.3g} > tolerance {tol:.3g})")
        return None, None, f0, e0
    src = np.repeat(first, R)
    turn = np.einsum("nij,nkj->nik", rotations, rotations[src])   # R' R^-1
    irreps = o3.Irreps(backbone.irreps_out)
    features = rotate_features(np.repeat(f0, R, axis=0), irreps + irreps, turn)
    energies = None if e0 is None else np.repeat(e0, R)
    features[first] = f0                     # the model's own, bit for bit
    derived = np.setdiff1d(np.arange(n), first)
    if progress:
        progress(len(derived))
    rng = np.random.default_rng(check_seed)
    picked = np.sort(rng.choice(derived, min(DERIVATION_CHECK_SAMPLES, len(derived)),
                                replace=False))
    fm, _, _ = cached_features(backbone, positions[picked], numbers, rotations[picked], [a, b],
                               with_energy=False, **run)
    deviation = float(np.abs(fm - features[picked]).max())
    record["check"] = {"samples": int(len(picked)), "max_deviation": deviation,
                       "tolerance": tol, "passed": deviation <= tol}
    if deviation > tol:
        record["fallback"] = (f"the per-run check failed (max deviation {deviation:.3g} > "
                              f"tolerance {tol:.3g})")
        if progress:
            progress(-len(derived))     # they are run now after all
        return None, None, f0, e0
    record.update(model_runs=int(len(first)), derived=int(len(derived)))
    return features, energies, f0, e0


def _model_on_the_rest(backbone, positions, numbers, rotations, pair, first, f0, e0, run,
                       progress):
    """Features and energies of every sample when the derivation was refused: the first
    rotations' model runs ``f0``, ``e0`` kept, the model run on the rest."""
    n = len(rotations)
    rest = np.setdiff1d(np.arange(n), first)
    fr, er, _ = cached_features(backbone, positions[rest], numbers, rotations[rest],
                                list(pair), progress=progress, **run)
    features = np.empty((n, f0.shape[1]))
    features[first], features[rest] = f0, fr
    energies = None
    if e0 is not None:
        energies = np.empty(n)
        energies[first], energies[rest] = e0, er
    return features, energies


def extract_features(backbone, dataset, plan, index: int = 0, *,
                     chunk: Optional[int] = None,
                     progress: Optional[Callable[[int], None]] = None,
                     equivariance: Optional[Dict[str, float]] = None,
                     threads: int = 1, cache=None, model: Optional[str] = None,
                     rotate: str = "auto") -> FeatureSet:
    """Run ``backbone`` on the plan's samples under the rotations of backbone ``index``
    (:meth:`DiagnosePlan.rotations`) and keep what the probe stage needs.

    The first rotation of every configuration always runs the model on rotated positions:
    the measurement does not assume equivariance. With ``rotate="auto"`` and more than
    one rotation per configuration, a backbone whose equivariance check passes at its
    dtype's tolerance (:func:`feature_equivariance`; rotations alone for ``parity =
    False``) has its further rotations ``R'`` derived as ``D(R' R^-1) h(R x)``
    (:func:`._equivariance.rotate_features`), and energies copied (they are invariant).
    Then :data:`DERIVATION_CHECK_SAMPLES` derived samples (stream ``[seed,
    STREAMS["derivation_check"], index]``) are run through the model too, and the largest
    deviation is recorded; above the tolerance the run falls back to the model for every
    rotation. ``rotate="model"`` runs the model on every rotation (docs/method.md §2.13).

    Parameters
    ----------
    backbone : protocol object (``irreps_out``, ``node_features``; ``energy`` optional)
    dataset : :class:`empirical.data.Dataset` the plan was made for
    plan : :class:`empirical.diagnostic.DiagnosePlan`
    index : backbone index in the run (selects the independent rotation stream)
    chunk : configurations per batch for a backbone with the batch path (default
        :func:`batch_size`)
    progress : called with the number of samples done since the last call
    equivariance : the backbone's :func:`feature_equivariance`, when already measured
    threads : threads over which a :func:`thread_safe` backbone's batches are split
    cache, model : a :class:`~empirical.cache.FeatureCache` and the backbone's key
        (:func:`empirical.cache.model_key`): model runs are read from and written to it
    rotate : ``"auto"`` or ``"model"`` (:data:`ROTATE_MODES`)
    """
    check_protocol(backbone)
    if rotate not in ROTATE_MODES:
        raise ValueError(f"rotate must be 'auto' or 'model', got {rotate!r}")
    ls = sorted({ir.l for _, ir in o3.Irreps(backbone.irreps_out)})
    if tuple(ls) != tuple(plan.feature_degrees):
        raise ValueError(f"the backbone has feature degrees {ls}, the plan was made for "
                         f"{list(plan.feature_degrees)}")
    a, b = plan.marked
    from ._plan import check_backbone_memory

    check_backbone_memory(backbone, dataset, plan.frames)
    check_cutoff(backbone, dataset, plan)
    mark = cache.mark() if cache is not None else None
    positions = plan.positions(dataset)
    rotations = plan.rotations(index)
    dtype = model_dtype(backbone)
    dtype_name = str(dtype).replace("torch.", "")
    irreps = o3.Irreps(backbone.irreps_out)
    pair = irreps + irreps
    equi = (dict(equivariance) if equivariance is not None else
            feature_equivariance(backbone, dataset, plan, index, cache=cache, model=model))
    R = plan.rotations_per_config
    n = plan.n_samples
    parity = getattr(backbone, "parity", None) is not False
    derive = rotate == "auto" and R > 1
    record = rotation_record(rotate, R, n, len(plan.frames))
    features = energies = f0 = e0 = None
    first = np.arange(0, n, R)
    if derive:
        features, energies, f0, e0 = _derive(backbone, positions, dataset.numbers, rotations,
                                             (a, b), first, equi, parity, dtype, record,
                                             stream(plan.seed, STREAMS["derivation_check"],
                                                    index),
                                             dict(cache=cache, model=model, chunk=chunk,
                                                  threads=threads), progress)
    if features is None and f0 is not None:
        # derivation refused: the model runs on the further rotations too
        features, energies = _model_on_the_rest(backbone, positions, dataset.numbers,
                                                rotations, (a, b), first, f0, e0,
                                                dict(cache=cache, model=model, chunk=chunk,
                                                     threads=threads), progress)
    elif features is None:
        features, energies, _ = cached_features(backbone, positions, dataset.numbers,
                                                rotations, [a, b], cache=cache, model=model,
                                                chunk=chunk, progress=progress,
                                                threads=threads)
    record["method"] = "model" if record["derived"] == 0 else "equivariance"
    record = {k: record[k] for k in ("mode", "per_configuration", "method", "model_runs",
                                     "derived", "equivariance_sample", "check", "fallback")
              if k in record}
    u = marked_direction(rotate_positions(positions, rotations), a, b)
    return FeatureSet(features=features, irreps=pair, energies=energies,
                      directions=u, dtype=dtype_name,
                      equivariance_error=equi, rotation_seed=plan.rotation_seed(index),
                      rotations=record,
                      cache=None if cache is None else {**cache.since(mark),
                                                        "model_key": model})


def signals(directions: np.ndarray, coefficients: Dict[int, np.ndarray]) -> np.ndarray:
    """The targets ``s_l(u)`` of every sample, ``(samples, lmax + 1)``, ``l = 0..lmax``."""
    return np.stack([signal(l, directions, coefficients[l]) for l in sorted(coefficients)],
                    axis=1)


#: The name this module's positions rotation had before ``extract_features`` took a
#: ``rotate`` option (kept: the sweep and users call it).
rotate = rotate_positions
