r"""The spectral-injection diagnostic end to end (docs/method.md §2, §5).

:func:`diagnose` measures, for every backbone, probe degree ``d`` and target degree ``l``,
how well a degree-``d`` SPN of the frozen marked-atom features recovers :math:`s_l` on
held-out rotated configurations, and sets every cell beside :mod:`spanthm`'s prediction.
It is the stages in order, each a function of its inputs with a typed object between them:

1. :func:`~._plan.make_plan` (options, dataset, feature degrees -> :class:`DiagnosePlan`):
   frame subset, split by configuration, samples, SPN width per ``d``, seeds, predictions;
2. :func:`~._features.extract_features` (backbone, dataset, plan -> :class:`FeatureSet`):
   marked-atom features and energies of every rotated sample, dtype, equivariance error;
3. :func:`~._cells.probe_backbone` (FeatureSet, plan -> :class:`BackboneProbes`): one
   :class:`SpectralProbe` per ``d``, held-out predictions, per-backbone numbers, k sweep;
4. :func:`~._summary.summarize` (probes, plan -> summaries, cells): point estimates,
   hierarchical bootstrap, the cliff-ratio confidence set, verdicts;
5. :class:`DiagnoseResult` (typed records; JSON only at the file boundary).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from e3nn import o3

from ..adapters import BackboneEntry, resolve_backbones
from ..runtime import (FIT_UNITS, Progress, dataset_fingerprint, place, resolve_device,
                       versions)
from ..backbone import equivariance_tolerance
from ..data import Dataset
from ..data import load as load_dataset
from ..data import unit_warnings
from ._cells import EPS_DEFINITION, probe_backbone
from ._capacity import capacity_config, widen_and_refit
from ..cache import model_key, open_cache
from ._features import (ROTATE_MODES, FeatureSet, extract_features, feature_equivariance,
                        model_device, thread_safe)
from ._plan import MAX_AUTO_CHANNELS, DiagnosePlan, make_plan, seed_streams, validate_options
from ._result import BackboneRecord, DiagnoseResult
from ._summary import summarize
from ._verdict import THRESHOLDS

__all__ = ["diagnose", "resolve_device", "place", "run_config", "PAPER",
           "assemble_result", "backbone_facts", "backbone_record",
           "feature_facts", "FeatureFacts", "common_degrees", "dataset_fingerprint",
           "versions"]

#: The paper's headline figures (d = 2, L = 2 NequIP on aspirin), for the report.
PAPER = {"rho": {"4": 0.913, "5": 0.078}, "cliff_ratio": 11.7, "r2_inj": {"4": 0.374, "5": 0.006}}



def diagnose(backbones=None, dataset: Union[str, Path, Dataset] = "aspirin",
             marked: Optional[Sequence[int]] = None, degrees: Sequence[int] = (1, 2, 3),
             lmax: int = 7, seed: int = 0, k: Optional[int] = None, reduction: str = "irrep",
             spn: str = "ridge", n_boot: int = 2000, frames: Optional[int] = None,
             test_fraction: float = 0.2, eps: Optional[float] = None, folds: int = 3,
             k_sweep: Sequence[int] = (1, 2, 3, 4), rotations_per_config: int = 1,
             names: Optional[Sequence[str]] = None, features=None,
             workers: Optional[int] = None, trust_checkpoints: bool = False,
             device=None, progress=None, capacity: str = "auto", cache=False,
             rotate: str = "auto") -> DiagnoseResult:
    """Run the diagnostic (see the module docstring and docs/method.md §2).

    Parameters
    ----------
    backbones : list of checkpoint names / paths / protocol objects, optional
        Default: the four shipped aspirin backbones. Objects need ``irreps_out`` and
        ``node_features(positions, numbers)``; ``energy`` enables ``r2_inj``; an optional
        ``dtype`` says what dtype positions must have. All must carry the same feature
        degrees (they are pooled).
    dataset : ``"aspirin"``, a path, or a :class:`~empirical.data.Dataset`
    marked : (a, b), optional
        Marked atom pair (0-based); default the dataset's ``marked_bond``.
    degrees : probe degrees ``d >= 1``;  lmax : highest target degree.
    k : SPN width (default :func:`~._plan.auto_k` per ``d``).
    reduction : ``"irrep"`` or ``"pca"``;  spn : ``"ridge"`` or ``"trained"``.
    n_boot : bootstrap resamples;  frames : use a seeded subset of this many frames.
    eps : injection amplitude in eV (default: per backbone, its energy-error SD on the
        probe-training configurations, docs/method.md §2.5).
    rotations_per_config : samples per configuration, each under its own rotation (the
        train/test split and the cross-validation folds keep a configuration's samples
        together).
    k_sweep : channels per degree for the capacity sweep (ridge point estimates; empty to
        skip); widths whose monomial count exceeds half the training samples are skipped.
    features : list of :class:`FeatureSet`, optional
        Features already extracted for these backbones with an identical plan (for
        example by an earlier call on the same backbones, dataset, frames, seed and
        rotations); entry ``i`` replaces stage 2 for backbone ``i`` (``None`` entries are
        extracted).
    workers : int, optional
        Backbones taken through stages 2 and 3 (features, then probes) at the same time,
        each in its own thread with ``torch.get_num_threads() // workers`` intra-op
        threads (default: as many as there are backbones, at most the torch thread
        count). Small batched networks use several cores better side by side than
        through intra-op parallelism. Results do not depend on it (tested).
    trust_checkpoints : bool
        Load third-party checkpoints named in ``backbones`` (``nequip:PATH``), which are
        pickled code, only when True (this package's own ``.pt`` files never need it: they
        load with ``weights_only=True``).
    device : ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or None (leave each backbone where it
        is). Backbones move there with the protocol's ``to(device)``; positions follow
        each backbone's device; probes and statistics run on the CPU in float64.
    progress : bool or None (None: a bar when stderr is a terminal).
    capacity : ``"auto"`` (default: where a degree's boundary ``l = dL`` is not recovered,
        refit it at wider probes and more rotations per configuration, docs/method.md
        §2.6; :mod:`._capacity`) or ``"fixed"`` (the one width ``k``). Either way every
        boundary cell gets its refit spread.
    cache : the feature cache (docs/method.md §2.12): ``False`` (default in the Python
        API: none), ``None`` (the default location, :func:`empirical.cache.resolve_cache_dir`),
        a directory, or a :class:`~empirical.cache.FeatureCache`. Model runs are read from
        and written to it; each backbone's record says which entries were reused.
    rotate : ``"auto"`` (a configuration's further rotations derived by ``D(R' R^-1)``
        from its first, for a backbone that passes its equivariance check, and checked
        per run) or ``"model"`` (the model runs on every rotation); docs/method.md §2.13.

    Raises
    ------
    ValueError
        For bad input (named in the message), before any backbone runs.
    """
    start = time.perf_counter()
    validate_options(degrees, lmax, seed, n_boot, test_fraction, folds, k, reduction, spn,
                     eps, rotations_per_config, k_sweep, capacity)
    if rotate not in ROTATE_MODES:
        raise ValueError(f"rotate must be 'auto' or 'model', got {rotate!r}")
    dev = resolve_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    entries = resolve_backbones(backbones, names, trust_checkpoints=trust_checkpoints)
    place(entries, dev)
    store = open_cache(cache)
    keys = [model_key(e.backbone, e.sha256) if store is not None else None for e in entries]
    plan = make_plan(data, common_degrees(entries), marked=marked, degrees=degrees,
                     lmax=lmax, seed=seed, k=k, reduction=reduction, spn=spn, n_boot=n_boot,
                     frames=frames, test_fraction=test_fraction, eps=eps, folds=folds,
                     k_sweep=k_sweep, rotations_per_config=rotations_per_config,
                     feature_dim=max(2 * o3.Irreps(e.backbone.irreps_out).dim for e in entries),
                     n_backbones=len(entries), backbones=[e.backbone for e in entries],
                     concurrent=_concurrent_batches(entries, workers), capacity=capacity)
    given = _given_features(features, entries, plan)
    fits = len(plan.degrees) * (1 + len(plan.k_sweep))
    bar = Progress(len(entries) * (plan.n_samples + FIT_UNITS * fits) + FIT_UNITS,
                   enabled=progress)
    feature_sets, probes = features_and_probes(entries, data, plan, given, workers, bar,
                                               cache=store, keys=keys, rotate=rotate)
    bar.set_label("bootstrap")
    summaries, cells = summarize(probes, plan)
    # widened rotations, one backbone at a time: batches split over threads of one intra-op
    # thread each (the numbers do not depend on it; OpenMP on a shared core stalls)
    split = min(workers or torch.get_num_threads(), torch.get_num_threads())
    probes, summaries, cells = widen_and_refit(
        plan, probes, feature_sets, summaries, cells,
        extract=lambda i, p: _widened(entries[i].backbone, data, p, i, split, store, keys[i],
                                      rotate, feature_sets[i]),
        reference=lambda p: p.energies(data), progress=bar.set_label)
    bar.advance(FIT_UNITS)
    bar.close()
    if store is not None:
        store.close()
    return assemble_result(
        [(e, backbone_facts(e.backbone)) for e in entries], data, dataset,
        plan, [feature_facts(fs) for fs in feature_sets], probes, summaries, cells, dev,
        seconds=time.perf_counter() - start,
        run_facts={"rotate": rotate,
                   "feature_cache": store.record() if store is not None else {"used": False}})


def _widened(backbone, data, plan, index, threads, cache, key, rotate, base) -> FeatureSet:
    """A widened plan's features (stage 4b's ``extract``); the base run's cache record is
    extended with what this extraction reused and wrote (how its rotations were obtained
    goes into its capacity step, :class:`CapacityStep`)."""
    fs = extract_features(backbone, data, plan, index, threads=threads, cache=cache,
                          model=key, rotate=rotate)
    if cache is not None and base.cache is not None and fs.cache is not None:
        base.cache["reused"] += fs.cache["reused"]
        base.cache["written"] += fs.cache["written"]
    return fs


def assemble_result(entries, data: Dataset, dataset, plan: DiagnosePlan, features, probes,
                    summaries, cells, device=None, seconds: float = 0.0,
                    run_facts: Optional[Dict] = None) -> DiagnoseResult:
    """Stage 5: the typed result of one run from what the stages returned.

    ``entries`` are ``(entry, facts)`` per backbone (its
    :class:`~empirical.adapters.BackboneEntry`, whose ``backbone`` may be ``None``, and its
    :func:`backbone_facts`), ``features`` their :func:`feature_facts`: nothing here needs a
    backbone object or a feature array, so a sweep assembles the result of tasks that ran
    elsewhere exactly as :func:`diagnose` does."""
    records = [backbone_record(entry, facts, ff, p)
               for (entry, facts), ff, p in zip(entries, features, probes)]
    warnings: List[str] = _premise_warnings(records, plan, data, summaries)
    for p in probes:
        warnings += [w for w in p.warnings if w not in warnings]
    return DiagnoseResult(
        config={**run_config(plan, data, dataset, {d: p.k for d, p in probes[0].fits.items()},
                             device), **(run_facts or {})},
        backbones=records, predicted=dict(plan.predicted),
        probes=[r for p in probes for r in p.records], summaries=summaries, cells=cells,
        k_sweep=[r for p in probes for r in p.sweep], paper=PAPER, warnings=warnings,
        seconds=seconds)


def _concurrent_batches(entries, workers: Optional[int]) -> int:
    """Backbone batches that run at the same time in :func:`features_and_probes` (for the
    memory estimate): one per worker thread, or one per torch thread for a single
    thread-safe backbone whose batches are split over the threads."""
    threads = torch.get_num_threads()
    n = len(entries)
    if n == 1:
        return threads if workers is None and thread_safe(entries[0].backbone) else 1
    wanted = workers if isinstance(workers, int) and not isinstance(workers, bool) else threads
    return max(1, min(n, wanted, threads) if workers is None else min(n, wanted))


def _given_features(features, entries, plan) -> List:
    """The caller's feature sets (``None``: extract), each checked against the plan."""
    given = list(features) if features is not None else [None] * len(entries)
    if len(given) != len(entries):
        raise ValueError(f"{len(given)} feature sets for {len(entries)} backbones")
    for i, fs in enumerate(given):
        if fs is not None and (len(fs.features) != plan.n_samples
                               or fs.rotation_seed != plan.rotation_seed(i)):
            raise ValueError(f"the feature set given for backbone {entries[i].name!r} was "
                             "extracted for another plan (frames, seed, rotations or position)")
    return given


def features_and_probes(entries, data, plan, given, workers, bar, cache=None, keys=None,
                        rotate: str = "auto"):
    """Stages 2 and 3 for every backbone: ``(feature sets, probes)``, in backbone order.

    Backbones are independent until the summary, so with ``workers > 1`` each worker
    thread takes one backbone through both stages (its features, then its probes) while
    another does the same for the next; a given feature set skips stage 2. The order of
    the results, and every number in them, does not depend on ``workers``. A single
    backbone with ``workers`` not given has its feature batches split over the threads."""
    n = len(entries)
    threads = torch.get_num_threads()
    asked = workers
    if workers is None:
        workers = min(sum(fs is None for fs in given) or 1, threads)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    reference = plan.energies(data)
    lock = threading.Lock()

    def advance(m):
        with lock:
            bar.advance(m)

    # one backbone and no workers asked for: its batches are split over the threads instead
    # (a thread-safe backbone only; _features.thread_safe)
    split = threads if (n == 1 and asked is None) else 1

    def run(i, intra_threads=None, equivariance=None):
        if intra_threads is not None:
            # OpenMP's thread count is per calling thread: set it in the worker itself
            torch.set_num_threads(intra_threads)
        entry = entries[i]
        fs = given[i]
        if fs is None:
            fs = extract_features(entry.backbone, data, plan, i, progress=advance,
                                  equivariance=equivariance, threads=split, cache=cache,
                                  model=keys[i] if keys else None, rotate=rotate)
        else:
            advance(plan.n_samples)
        return fs, probe_backbone(entry.name, fs, plan, reference,
                                  progress=lambda m: advance(FIT_UNITS * m))

    distinct = len({id(e.backbone) for e in entries}) == n
    if workers == 1 or n == 1 or not distinct:
        out = []
        for i in range(n):
            bar.set_label(f"{entries[i].name} ({i + 1}/{n})")
            out.append(run(i))
    else:
        # the equivariance check sets torch's (process-wide) default dtype for a moment:
        # measured here, one backbone at a time, before any worker starts
        equi = [None if given[i] is not None else
                feature_equivariance(entries[i].backbone, data, plan, i, cache=cache,
                                     model=keys[i] if keys else None) for i in range(n)]
        bar.set_label(f"{n} backbones, {workers} at a time")
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run, i, max(1, threads // workers), equi[i])
                           for i in range(n)]
                out = [f.result() for f in futures]
        finally:
            torch.set_num_threads(threads)
    return [fs for fs, _ in out], [p for _, p in out]


def common_degrees(entries) -> List[int]:
    """The feature degrees shared by every backbone (``ValueError`` when they differ)."""
    first = None
    for entry in entries:
        ls = sorted({ir.l for _, ir in o3.Irreps(entry.backbone.irreps_out)})
        if first is None:
            first = ls
        elif ls != first:
            raise ValueError(f"backbone {entry.name!r} has feature degrees {ls}, the first one "
                             f"{first}: backbones of different L cannot be pooled")
    if max(first) < 1:
        raise ValueError("the backbones' features carry no l > 0 component: nothing to probe")
    return first


#: Below this many resamples the bootstrap intervals are not worth their name.
MIN_BOOT = 200


def _equivariant(features: "FeatureFacts", parity: bool = True) -> bool:
    """Within :data:`empirical.backbone.EQUIVARIANCE_TOLERANCE` (outside: the backbone is
    outside the theorem's premise). A backbone that says ``parity = False`` (an SO(3) model
    such as SevenNet's) is judged on the rotation alone: the theorem needs rotations
    (docs/method.md §2.2), and such a model's irreps labels say nothing about reflections."""
    tol = equivariance_tolerance(features.dtype, features.scale)
    errors = features.equivariance_error
    considered = errors.values() if parity else [errors["rotation"]]
    return max(considered) <= tol


def _premise_warnings(records, plan, data, summaries) -> List[str]:
    """What a reader must know before trusting a verdict: an untested ceiling, a backbone
    that is not equivariant, data in unexpected units, too few bootstrap resamples."""
    out = []
    for d, s in sorted(summaries.items()):
        if s.agreement is None:
            out.append(f"d={d}: lmax = {plan.lmax} measures no degree above the predicted "
                       f"ceiling {s.ceiling}: the ceiling is untested (agreement null); "
                       f"use lmax >= {s.ceiling + 1}")
    for r in records:
        if r.equivariant is False:
            out.append(f"{r.name}: its features are not equivariant (max error "
                       f"{max(r.equivariance_error.values()):.3g} in {r.dtype}): the run is "
                       "outside the theorem's premise, and its verdicts say nothing about it")
    out += unit_warnings(data, plan.frames)
    if plan.n_boot < MIN_BOOT:
        out.append(f"{plan.n_boot} bootstrap resamples: the 95 % intervals are rough below "
                   f"{MIN_BOOT} (default 2000)")
    return out


@dataclass(frozen=True)
class FeatureFacts:
    """What a result records of a backbone's features: the dtype the positions reached it
    in, its equivariance error and the largest absolute feature (the tolerance's scale)."""

    dtype: str
    equivariance_error: Dict[str, float]
    scale: float
    rotations: Optional[Dict] = None
    cache: Optional[Dict] = None


def feature_facts(fs) -> FeatureFacts:
    """:class:`FeatureFacts` of a :class:`FeatureSet`."""
    return FeatureFacts(dtype=fs.dtype, equivariance_error=dict(fs.equivariance_error),
                        scale=float(np.abs(fs.features).max()),
                        rotations=getattr(fs, "rotations", None),
                        cache=getattr(fs, "cache", None))


def backbone_facts(obj) -> Dict:
    """What a result records of a backbone object itself: ``irreps_out``, ``layer``,
    ``parity`` (False: SO(3) only) and ``device`` (plain values, picklable)."""
    return {"irreps_out": str(o3.Irreps(obj.irreps_out)),
            "layer": (str(obj.layer) if getattr(obj, "layer", None) is not None else None),
            "parity": getattr(obj, "parity", None) is not False,
            "device": str(model_device(obj))}


def backbone_record(entry: BackboneEntry, facts: Dict, features: FeatureFacts,
                    probes) -> BackboneRecord:
    """One backbone's record in results.json (see :func:`assemble_result`)."""
    irreps = o3.Irreps(facts["irreps_out"])
    return BackboneRecord(
        name=entry.name, source=entry.source, sha256=entry.sha256, seed=int(entry.seed),
        test_energy_mae_meV=entry.test_energy_mae_meV,
        test_force_mae_meV_per_A=entry.test_force_mae_meV_per_A,
        irreps_out=str(irreps), L=irreps.lmax, dtype=features.dtype,
        equivariance_error=features.equivariance_error,
        equivariant=_equivariant(features, facts["parity"]),
        eps_eV=probes.eps,
        energy_error_rmse_meV=probes.energy_error_rmse_meV,
        rotations=features.rotations, cache=features.cache,
        extra={"layer": facts["layer"], "parity": facts["parity"], "device": facts["device"],
               **entry.extra})


def run_config(plan: DiagnosePlan, data: Dataset, dataset, k_eff: Dict[int, int],
               device: Optional[torch.device] = None) -> Dict:
    """``results.json["config"]``: every option, seed and version of the run."""
    a, b = plan.marked
    labels = data.metadata.get("atom_labels")
    return {
        "dataset": {"source": data.metadata.get("source", str(dataset)),
                    "frames_total": int(plan.frames_total), "frames_used": len(plan.frames),
                    "sha256": dataset_fingerprint(data)},
        "marked_atoms": [a, b],
        "marked_labels": [labels[x] for x in (a, b)] if labels else None,
        "degrees": list(plan.degrees), "lmax": plan.lmax, "seed": plan.seed,
        "seed_streams": seed_streams(),
        "test_fraction": plan.test_fraction, "n_train": int(len(plan.train_idx)),
        "n_test": int(len(plan.test_idx)),
        "configurations_train": int((~plan.test_configurations).sum()),
        "configurations_test": int(plan.test_configurations.sum()),
        "rotations_per_configuration": plan.rotations_per_config,
        "rotations": "Haar (scipy), independent per backbone (seed stream [seed, rotations, "
                     "backbone index])",
        "k_requested": plan.k_requested, "k": {str(d): int(k) for d, k in sorted(k_eff.items())},
        "k_rule": ("given" if plan.k_requested is not None else
                   f"per d: the most channels per degree (<= {MAX_AUTO_CHANNELS}) whose "
                   "monomial count is at most half the training samples"),
        "reduction": plan.reduction, "spn": plan.spn, "folds": plan.folds,
        "ridge_lambda_grid": "logspace(-7, 2, 19) x n_train",
        "n_boot": plan.n_boot, "bootstrap": "hierarchical: backbones, then held-out samples",
        "interval": "95% percentile",
        "interval_cliff_ratio": "95% Fieller-type confidence set from the bootstrap "
                                "covariance of rho(dL) and rho(dL + 1)",
        "eps": plan.eps,
        "eps_rule": ("given" if plan.eps is not None else
                     "per backbone: SD of E_ref - E_backbone on the probe-training "
                     "configurations"),
        "eps_definition": EPS_DEFINITION,
        "thresholds": dict(THRESHOLDS),
        "k_sweep_channels_per_degree": list(plan.k_sweep),
        "capacity": capacity_config(plan.capacity),
        "signal": "s_l = c . Y_l(u), e3nn real harmonics, component normalization, |c| = 1",
        "coefficients": {str(l): c.tolist() for l, c in sorted(plan.coefficients.items())},
        "versions": versions(),
        "device": str(device) if device is not None else None,
    }
