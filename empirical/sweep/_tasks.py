"""The sweep's tasks (docs/method.md §2.11): pure functions of their arguments, run by
Dask workers, each one stage of :func:`empirical.diagnose` on one piece of the work.

* :func:`extract_chunk` (backbone spec, configurations, rotations -> marked-atom
  features and energies): stage 2 on one chunk of a backbone's samples;
* :func:`measure_equivariance`: the backbone's equivariance error, recorded beside its
  verdicts;
* :func:`fit_probe` (feature chunks, plan, ``d`` -> :class:`BackboneProbes` of one
  degree): stage 3 for one backbone and one probe degree;
* :func:`summarize_group` (every backbone's probe parts, plan -> pooled summaries and
  cells): stage 4, the hierarchical bootstrap of one group, then (given the group's
  feature chunks) stage 4b, :func:`~empirical.diagnostic.widen_and_refit`: the capacity
  curve and refit spread of every degree, with the features of a widened plan extracted
  on the worker by the same :func:`~empirical.diagnostic.extract_features` as
  ``diagnose``.

A worker loads a backbone from its spec once and keeps it (:func:`worker_backbone`,
a small per-process cache), and checks that the file it loaded has the weights the
sweep planned with (SHA-256), so that a cluster node that sees another file under the
same path fails loudly instead of measuring the wrong model.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["extract_chunk", "measure_equivariance", "fit_probe", "summarize_group",
           "worker_backbone", "preload", "feature_set"]

#: Backbones a worker process keeps loaded (least recently used dropped first).
CACHE_SIZE = 8

_cache: "OrderedDict[tuple, object]" = OrderedDict()
_lock = threading.Lock()


def worker_backbone(spec: str, trusted: bool, sha256: Optional[str], device=None):
    """The backbone ``spec`` as this process loaded it (cached), in eval mode, on
    ``device`` when given; ``ValueError`` when its file's SHA-256 is not ``sha256``
    (``None``: not checked)."""
    from ..runtime import place, resolve_device
    from ..adapters import resolve_backbones

    key = (spec, bool(trusted), None if device is None else str(device))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            obj, found = _cache[key]
        else:
            entry = resolve_backbones([spec], trust_checkpoints=trusted)[0]
            place([entry], resolve_device(device))
            obj, found = entry.backbone, entry.sha256
            _cache[key] = (obj, found)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    if sha256 is not None and found != sha256:
        raise ValueError(f"backbone {spec!r} on this worker has SHA-256 {found}, the sweep "
                         f"was planned with {sha256}: the file differs between machines")
    return obj


def preload(specs: Sequence[str], trusted: bool, device=None) -> int:
    """Load up to :data:`CACHE_SIZE` backbones into this worker's cache (and import what
    the tasks need), while the sweep is still being planned; returns how many. A spec
    that fails to load is skipped here: the plan reports it."""
    from .._malloc import tune_malloc

    tune_malloc()
    n = 0
    for spec in list(specs)[:CACHE_SIZE]:
        try:
            worker_backbone(spec, trusted, None, device)
            n += 1
        except Exception:       # noqa: BLE001 - the driver's plan names the problem
            pass
    return n


def _threads(intra: Optional[int]) -> None:
    """Every task's first step: one intra-op thread (by default), and glibc's allocator
    set for torch (:func:`empirical._malloc.tune_malloc`: Dask's nanny switches its
    adaptive mmap threshold off, which made forward passes twice as slow)."""
    from .._malloc import tune_malloc

    tune_malloc()
    if intra is not None:
        import torch

        torch.set_num_threads(int(intra))


def extract_chunk(spec: str, trusted: bool, sha256: Optional[str], positions: np.ndarray,
                  rotations: np.ndarray, numbers: np.ndarray, a: int, b: int,
                  device=None, intra_threads: Optional[int] = 1) -> Dict:
    """Features ``[h_a, h_b]`` and energies of ``positions[i] @ rotations[i].T`` (one
    chunk of a backbone's samples; the batch size is the backbone's own, as in
    ``diagnose``). Returns ``{"features", "energies" (or None), "dtype", "scale"
    (largest absolute feature), "seconds"}``."""
    from ..diagnostic import marked_features, model_dtype

    _threads(intra_threads)
    start = time.perf_counter()
    backbone = worker_backbone(spec, trusted, sha256, device)
    mf = marked_features(backbone, positions, numbers, rotations, a, b)
    dtype = str(model_dtype(backbone)).replace("torch.", "")
    features = mf.features
    if dtype in ("float32", "float16", "bfloat16"):
        # every value came from that dtype: float32 holds it exactly, at half the bytes
        # to send and store (feature_set widens it back, bit for bit)
        features = features.astype(np.float32)
    return {"features": features, "energies": mf.energies, "dtype": dtype,
            "scale": float(np.abs(mf.features).max()) if mf.features.size else 0.0,
            "seconds": time.perf_counter() - start}


def measure_equivariance(spec: str, trusted: bool, sha256: Optional[str],
                         positions: np.ndarray, matrices: np.ndarray, numbers: np.ndarray,
                         device=None, intra_threads: Optional[int] = 1) -> Dict:
    """The equivariance check ``diagnose`` records (docs/method.md §2.13): configurations
    ``positions`` ``(m, atoms, 3)``, each under its matrices ``(m, k, 3, 3)``
    (:func:`~empirical.diagnostic.check_sample`): ``{"rotation", "reflection", "seconds"}``."""
    from ..diagnostic import equivariance_of

    _threads(intra_threads)
    start = time.perf_counter()
    backbone = worker_backbone(spec, trusted, sha256, device)
    out = equivariance_of(backbone, positions, numbers, matrices)
    return {**out, "seconds": time.perf_counter() - start}


def feature_set(chunks: Sequence[Dict], irreps: str, directions: np.ndarray,
                rotation_seed: int, equivariance: Optional[Dict] = None):
    """A :class:`~empirical.diagnostic.FeatureSet` from a backbone's chunks, in order."""
    from e3nn import o3

    from ..diagnostic import FeatureSet

    feats = np.concatenate([c["features"] for c in chunks], axis=0).astype(np.float64)
    energies = (None if any(c["energies"] is None for c in chunks) else
                np.concatenate([c["energies"] for c in chunks]))
    irr = o3.Irreps(irreps)
    return FeatureSet(features=feats, irreps=irr + irr, energies=energies,
                      directions=directions, dtype=chunks[0]["dtype"],
                      equivariance_error=dict(equivariance or {}), rotation_seed=rotation_seed)


def fit_probe(name: str, chunks: Sequence[Dict], irreps: str, directions: np.ndarray,
              rotation_seed: int, plan, reference: np.ndarray, d: int,
              intra_threads: Optional[int] = 1) -> Dict:
    """One backbone's probes of degree ``d`` (:func:`~empirical.diagnostic.probe_backbone`
    with ``degrees=[d]``): ``{"probes": BackboneProbes, "seconds"}``."""
    from ..diagnostic import probe_backbone

    _threads(intra_threads)
    start = time.perf_counter()
    fs = feature_set(chunks, irreps, directions, rotation_seed)
    probes = probe_backbone(name, fs, plan, reference, degrees=[d])
    return {"probes": probes, "seconds": time.perf_counter() - start}


def summarize_group(parts: Sequence[Sequence], plan,
                    intra_threads: Optional[int] = 1, widen: Optional[Dict] = None) -> Dict:
    """Every backbone's probe parts (:func:`fit_probe` results, one per ``d``) merged and
    pooled: ``{"probes" (merged, per backbone), "summaries", "cells", "seconds"}``. With
    ``widen`` (:func:`widen_group`'s keywords), the probes, summaries and cells are those
    of :func:`~empirical.diagnostic.widen_and_refit`, as ``diagnose`` returns them."""
    from ..diagnostic import merge_probes
    from ..diagnostic import summarize

    _threads(intra_threads)
    start = time.perf_counter()
    merged: List = [merge_probes([x["probes"] for x in p], plan) for p in parts]
    summaries, cells = summarize(merged, plan)
    if widen is not None:
        merged, summaries, cells = widen_group(plan, merged, summaries, cells, **widen)
    return {"probes": merged, "summaries": summaries, "cells": cells,
            "seconds": time.perf_counter() - start}


def widen_group(plan, probes, summaries, cells, chunks: Sequence[Sequence[Dict]],
                backbones: Sequence[Dict], dataset, trusted: bool, device=None):
    """Stage 4b for one group (:func:`~empirical.diagnostic.widen_and_refit`):
    ``chunks[i]`` are backbone ``i``'s feature chunks, ``backbones[i]`` its ``spec``,
    ``sha256``, ``irreps`` and ``directions``; the features of a widened plan are
    extracted here, from the backbone this worker loads (:func:`worker_backbone`)."""
    from ..diagnostic import extract_features, widen_and_refit

    features = [feature_set(c, bb["irreps"], bb["directions"], plan.rotation_seed(i))
                for i, (c, bb) in enumerate(zip(chunks, backbones))]

    def extract(i: int, wider):
        bb = backbones[i]
        backbone = worker_backbone(bb["spec"], trusted, bb["sha256"], device)
        return extract_features(backbone, dataset, wider, i)

    return widen_and_refit(plan, probes, features, summaries, cells, extract=extract,
                           reference=lambda p: p.energies(dataset))
