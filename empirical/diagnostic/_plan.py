"""Stage 1 of the diagnostic: a validated plan (docs/method.md §2.1, §2.4-§2.6).

:func:`make_plan` checks every option and draws every random choice that does not depend
on a backbone: the frame subset, the split by configuration, the sample-to-configuration
map, the signal coefficients, the SPN width per ``d`` and spanthm's predictions. The
rotations of backbone ``i`` come from :meth:`DiagnosePlan.rotations` (seed stream
``[seed, 13, i]``). A plan is a frozen value: the features, probe and summary stages are
functions of it and their other inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import spanthm

from ..checks import is_int
from ..data import Dataset
from ..runtime import (MAX_BYTES, SAMPLES_PER_COEFFICIENT, STREAMS, WorkLimitExceeded,
                       max_bytes, stream)
from ._injection import haar_rotations, marked_atoms, signal_coefficients
from ._probe import n_monomials
from ._result import Prediction

__all__ = ["DiagnosePlan", "make_plan", "validate_options", "auto_k", "stream",
           "choose_frames", "split_configurations", "predictions",
           "MAX_AUTO_CHANNELS", "STREAMS", "MAX_LMAX", "MAX_BYTES", "WorkLimitExceeded",
           "estimate_bytes", "backbone_bytes", "pairs_within", "check_backbone_memory",
           "MIN_N_BOOT", "ADAPTER_EDGE_BYTES", "PLAN_STREAMS", "seed_streams",
           "MAX_AUTO_ROTATIONS", "MAX_CAPACITY_CHANNELS", "CAPACITY_MODES", "capacity_steps",
           "widened_plan"]

#: The random streams of the diagnostic's plan (docs/method.md §2.6), keys of
#: :data:`empirical.runtime.STREAMS`, in the order ``results.json`` records them.
PLAN_STREAMS = ("frames", "split", "rotations", "cv", "bootstrap", "refit", "equivariance",
                "derivation_check")


def seed_streams() -> dict:
    """``config.seed_streams`` of ``results.json``: the plan's stream keys and how the
    injected signal's coefficients are drawn."""
    return {**{name: STREAMS[name] for name in PLAN_STREAMS},
            "signal_coefficients": f"[seed, {STREAMS['coefficients']}, l]"}


#: Upper bound of the automatic width, in channels per feature degree.
MAX_AUTO_CHANNELS = 4
#: ``capacity="auto"`` (docs/method.md §2.6): the widest rotations per configuration the
#: widened probe may draw to buy samples, and its widest width in channels per feature degree.
MAX_AUTO_ROTATIONS = 4
MAX_CAPACITY_CHANNELS = 8
#: ``"auto"``: widen the probe where the boundary is not recovered; ``"fixed"``: one width.
CAPACITY_MODES = ("auto", "fixed")
#: Highest target degree: e3nn's spherical harmonics stop at l = 12.
MAX_LMAX = 12
#: Fewest bootstrap resamples a run accepts: the confidence intervals and the cliff ratio's
#: confidence set (which needs the covariance of the resampled rho) mean nothing below it;
#: between this and 200 (``_pipeline.MIN_BOOT``) the run warns that they are rough.
MIN_N_BOOT = 10
#: Bytes one edge (an atom pair inside the cutoff) may take inside a backbone that brings its
#: own neighbour list and whose size is unknown here (the NequIP, SevenNet and MACE adapters):
#: 16k float32 values, four times what this package's aspirin backbone measures (12 kB).
ADAPTER_EDGE_BYTES = 64 * 1024
#: Frames, spread over the plan's, whose atom pairs inside the cutoff are counted for the
#: estimate (the largest count is used).
PAIR_SAMPLE_FRAMES = 16


def estimate_bytes(n_samples: int, n_train: int, n_test: int, k_by_d: Dict[int, int],
                   n_boot: int, feature_dim: int, n_backbones: int,
                   activations: int = 0) -> Dict[str, int]:
    """Memory the stages will hold at their peak, by stage (bytes): every backbone's
    features, the widest probe's monomials (three copies) and Gram matrix (three), the
    bootstrap's resampling plan and counts, and (``activations``, when given) the backbones'
    own activations of the batches that run at the same time (:func:`backbone_bytes`).

    >>> est = estimate_bytes(5000, 4000, 1000, {1: 36, 2: 36, 3: 18}, 2000, 1152, 4)
    >>> round(sum(est.values()) / 1e9, 2)          # the default run: four shipped backbones
    0.45
    """
    widest = max(n_monomials(k, d) for d, k in k_by_d.items())
    out = {"features": n_backbones * n_samples * (feature_dim + 8) * 8,
           "probe": 3 * 8 * widest * (n_train + widest),
           "bootstrap": 12 * n_boot * n_test * n_backbones}
    if activations:
        out["backbone activations"] = int(activations)
    return out


def pairs_within(positions: np.ndarray, r_max: float) -> int:
    """Most ordered atom pairs closer than ``r_max`` in any configuration of ``positions``
    ``(frames, atoms, 3)`` (a k-d tree per frame: no ``(atoms, atoms)`` array)."""
    from scipy.spatial import cKDTree

    most = 0
    for pos in np.asarray(positions, dtype=np.float64):
        tree = cKDTree(pos)
        most = max(most, int(tree.count_neighbors(tree, float(r_max))) - len(pos))
    return most


def _r_max(backbone) -> Optional[float]:
    r_max = getattr(getattr(backbone, "config", None), "r_max", None)
    if r_max is None:
        r_max = getattr(backbone, "r_max", None)
    if isinstance(r_max, bool) or not isinstance(r_max, (int, float, np.floating)):
        return None
    return float(r_max)


def backbone_bytes(backbone, n_atoms: int, pairs: int, chunk: int) -> int:
    """Memory one batch of ``chunk`` configurations of ``n_atoms`` atoms with ``pairs``
    ordered pairs inside the cutoff each takes inside ``backbone`` (bytes).

    This package's :class:`~empirical.backbone.Backbone` (and its layers) builds the dense
    all-pairs distance matrix of the whole batch (``(chunk * atoms)^2`` times a 3-vector, a
    norm and six masks) and carries ``edge_floats`` values per edge
    (:func:`empirical.backbone._model.estimate_size`, all blocks: an upper bound of one
    evaluation without gradients). A backbone with an ``r_max`` that brings its own
    neighbour list (adapters) is counted at :data:`ADAPTER_EDGE_BYTES` per edge; a protocol
    object without a cutoff is counted as 0 (nothing is known of it).

    >>> from empirical.backbone import load
    >>> round(backbone_bytes(load("aspirin_L2_seed0"), 21, 420, 8) / 1e6)   # aspirin
    134
    >>> round(backbone_bytes(load("aspirin_L2_seed0"), 1500, 200_000, 8) / 1e9)
    67
    """
    from ..backbone import Backbone, BackboneLayer

    edges = int(chunk) * int(pairs)
    if isinstance(backbone, (Backbone, BackboneLayer)):
        from ..backbone import estimate_size

        model = backbone.backbone if isinstance(backbone, BackboneLayer) else backbone
        item = torch_itemsize(model.dtype)
        nodes = int(chunk) * int(n_atoms)
        dense = nodes * nodes * (4 * item + 6)
        per_edge = estimate_size(model.config)["edge_floats"] * item + 16 + 3 * item
        return dense + edges * per_edge
    if _r_max(backbone) is None:
        return 0
    return edges * ADAPTER_EDGE_BYTES


def torch_itemsize(dtype) -> int:
    """Bytes of one element of a torch dtype (4 when unknown)."""
    size = getattr(dtype, "itemsize", None)
    return int(size) if isinstance(size, int) else 4


def _activation_bytes(backbone, dataset: Dataset, frames: np.ndarray) -> Tuple[int, int]:
    """``(bytes of one batch, pairs)`` of ``backbone`` on the plan's ``frames``."""
    from ._features import batch_size

    r_max = _r_max(backbone)
    if r_max is None:
        return 0, 0
    pick = np.unique(np.linspace(0, len(frames) - 1, min(PAIR_SAMPLE_FRAMES, len(frames)))
                     .astype(np.int64))
    pairs = pairs_within(dataset.positions[np.asarray(frames)[pick]], r_max)
    return backbone_bytes(backbone, dataset.n_atoms, pairs, batch_size(backbone)), pairs


def check_backbone_memory(backbone, dataset: Dataset, frames: np.ndarray,
                          concurrent: int = 1) -> int:
    """The activations of ``concurrent`` batches of ``backbone`` on the plan's ``frames``
    (bytes; :func:`backbone_bytes`); :class:`WorkLimitExceeded` above :data:`MAX_BYTES`."""
    one, pairs = _activation_bytes(backbone, dataset, frames)
    total = one * max(1, int(concurrent))
    _check_budget({"backbone activations": total},
                  f"{dataset.n_atoms} atoms and up to {pairs} atom pairs inside the cutoff "
                  f"per configuration, {max(1, int(concurrent))} batch(es) at a time")
    return total


def _check_budget(est: Dict[str, int], why: str = "") -> None:
    limit = max_bytes()
    total = sum(est.values())
    if total > limit:
        parts = ", ".join(f"{k} {v / 1e9:.3g} GB" for k, v in est.items())
        if why and max(est, key=est.get) == "backbone activations":
            raise WorkLimitExceeded(
                f"this request needs about {total / 1e9:.3g} GB ({parts}; {why}), above the "
                f"limit of {limit / 1e9:.3g} GB: the molecules are too large for this backbone "
                "here; use fewer threads or raise EMPIRICAL_MAX_BYTES if you mean it")
        raise WorkLimitExceeded(
            f"this request needs about {total / 1e9:.3g} GB ({parts}), above the limit of "
            f"{limit / 1e9:.3g} GB: use fewer frames, rotations, bootstrap resamples or a "
            "narrower or lower-degree probe, or raise EMPIRICAL_MAX_BYTES if you mean it")


def auto_k(width: int, d: int, n_train: int) -> int:
    """Default SPN width for degree ``d``: ``m * width`` with the largest ``m <=``
    :data:`MAX_AUTO_CHANNELS` (channels per feature degree, ``width = sum_l (2l + 1)``)
    whose ``C(k + d, d)`` monomials are at most half of ``n_train`` (the probe then has at
    least two samples per coefficient); at least one channel per degree.

    >>> auto_k(9, 2, 4000), auto_k(9, 3, 4000)
    (36, 18)
    """
    best = 1
    for m in range(1, MAX_AUTO_CHANNELS + 1):
        if SAMPLES_PER_COEFFICIENT * n_monomials(m * width, d) <= n_train:
            best = m
    return best * width


def capacity_steps(d: int, width: int, k0: int, train_configurations: int,
                   rotations: int = 1, max_rotations: int = MAX_AUTO_ROTATIONS,
                   max_channels: int = MAX_CAPACITY_CHANNELS) -> List[Tuple[int, int]]:
    """The widened probes of degree ``d`` beyond width ``k0``, narrowest first, as
    ``(k, rotations per configuration)``: ``k = m * width`` for ``m`` channels per feature
    degree up to ``max_channels``, each with the fewest rotations (at least ``rotations``,
    at most ``max(rotations, max_rotations)``) that give :data:`SAMPLES_PER_COEFFICIENT`
    training samples per monomial; the list stops at the first width no allowed rotation
    count can pay for.

    >>> capacity_steps(3, 9, 18, 4000)           # d = 3 on aspirin's 5000 frames
    [(27, 3)]
    >>> capacity_steps(3, 9, 9, 800)             # 1000 frames
    [(18, 4)]
    """
    out: List[Tuple[int, int]] = []
    top = max(int(rotations), int(max_rotations))
    for m in range(int(k0) // int(width) + 1, int(max_channels) + 1):
        need = SAMPLES_PER_COEFFICIENT * n_monomials(m * width, d)
        r = max(int(rotations), -(-need // max(1, int(train_configurations))))
        if r > top:
            break
        out.append((m * width, r))
    return out


def widened_plan(plan: "DiagnosePlan", rotations: int, k: int, d: int,
                 spn: Optional[str] = None) -> "DiagnosePlan":
    """The plan of one widened probe of degree ``d`` (:mod:`._capacity`): the same frames,
    configurations on each side of the split, seeds and signals, with ``rotations`` samples
    per configuration (the rotations of backbone ``i`` are then
    ``haar_rotations(configurations * rotations, plan.rotation_seed(i))``), width ``k``,
    solver ``spn`` (default the plan's) and no k sweep."""
    groups = np.repeat(np.arange(len(plan.frames)), int(rotations))
    test = plan.test_configurations[groups]
    return replace(plan, degrees=(int(d),), groups=groups, train_idx=np.flatnonzero(~test),
                   test_idx=np.flatnonzero(test), rotations_per_config=int(rotations),
                   k={int(d): int(k)}, spn=spn or plan.spn, k_sweep=(),
                   predicted={int(d): plan.predicted[d]})


def validate_options(degrees, lmax, seed, n_boot, test_fraction, folds, k, reduction, spn,
                     eps, rotations_per_config=1, k_sweep=(),
                     capacity="fixed") -> Tuple[int, ...]:
    """Check the options of :func:`empirical.diagnose`; ``ValueError`` naming the first bad
    one. Returns the sorted probe degrees."""
    degrees = list(degrees)
    if not degrees:
        raise ValueError("give at least one probe degree d")
    for d in degrees:
        if not is_int(d) or d < 1:
            raise ValueError(f"probe degree d must be an integer >= 1, got {d!r}")
    if len(set(degrees)) != len(degrees):
        raise ValueError(f"probe degrees repeat: {degrees}")
    if not is_int(lmax) or lmax < 0:
        raise ValueError(f"lmax (the highest target degree l) must be an integer >= 0, got {lmax!r}")
    if lmax > MAX_LMAX:
        raise ValueError(f"lmax = {lmax}: target degrees stop at l = {MAX_LMAX} (e3nn's "
                         "spherical harmonics are implemented up to 12)")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not is_int(n_boot) or n_boot < MIN_N_BOOT:
        raise ValueError(f"bootstrap size (n_boot) must be an integer >= {MIN_N_BOOT}: the "
                         "confidence intervals need resamples to spread (default 2000; "
                         f"below 200 they are rough), got {n_boot!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if not is_int(folds) or folds < 2:
        raise ValueError(f"cross-validation needs an integer >= 2 folds, got {folds!r}")
    if k is not None and (not is_int(k) or k < 1):
        raise ValueError(f"SPN width k must be an integer >= 1, got {k!r}")
    if reduction not in ("irrep", "pca"):
        raise ValueError(f"reduction must be 'irrep' or 'pca', got {reduction!r}")
    if spn not in ("ridge", "trained"):
        raise ValueError(f"spn must be 'ridge' or 'trained', got {spn!r}")
    if spn == "trained" and reduction != "irrep":
        raise ValueError("the trained SPN learns a per-degree reduction: use reduction='irrep'")
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number of eV, got {eps}")
    if not is_int(rotations_per_config) or rotations_per_config < 1:
        raise ValueError(f"rotations per configuration must be an integer >= 1, "
                         f"got {rotations_per_config!r}")
    for m in k_sweep:
        if not is_int(m) or m < 1:
            raise ValueError(f"k sweep widths are channels per degree >= 1, got {m!r}")
    if capacity not in CAPACITY_MODES:
        raise ValueError(f"capacity must be 'auto' or 'fixed', got {capacity!r}")
    return tuple(sorted(int(d) for d in degrees))


@dataclass(frozen=True, eq=False)
class DiagnosePlan:
    """Everything decided before a backbone runs.

    Samples are configurations ``frames[groups[i]]``, each under its own rotation;
    ``train_idx``/``test_idx`` index samples, and no configuration has samples on both
    sides (``configurations_overlap()`` is empty by construction, and tested).
    """

    degrees: Tuple[int, ...]
    lmax: int
    seed: int
    marked: Tuple[int, int]
    feature_degrees: Tuple[int, ...]
    frames: np.ndarray            # (n,) dataset frame of each configuration, sorted
    frames_total: int
    test_configurations: np.ndarray   # (n,) bool
    groups: np.ndarray            # (samples,) configuration of each sample
    train_idx: np.ndarray         # (n_train,) sample indices
    test_idx: np.ndarray          # (n_test,) sample indices
    rotations_per_config: int
    k: Dict[int, int]             # requested SPN width per d
    k_requested: Optional[int]
    reduction: str
    spn: str
    folds: int
    n_boot: int
    test_fraction: float
    eps: Optional[float]
    k_sweep: Tuple[int, ...]
    coefficients: Dict[int, np.ndarray]
    predicted: Dict[int, Prediction]
    capacity: str = "fixed"

    @property
    def n_samples(self) -> int:
        return len(self.groups)

    @property
    def ls(self) -> range:
        return range(self.lmax + 1)

    @property
    def width(self) -> int:
        """``sum_l (2l + 1)`` over the feature degrees: one channel of every degree."""
        return sum(2 * l + 1 for l in self.feature_degrees)

    @property
    def cv_seed(self) -> int:
        return stream(self.seed, STREAMS["cv"])

    @property
    def bootstrap_seed(self) -> int:
        return stream(self.seed, STREAMS["bootstrap"])

    def rotation_seed(self, index: int) -> int:
        """Seed of the rotations of backbone ``index`` (independent clusters)."""
        return stream(self.seed, STREAMS["rotations"], index)

    def rotations(self, index: int) -> np.ndarray:
        """``(samples, 3, 3)`` Haar rotations of backbone ``index``."""
        return haar_rotations(self.n_samples, self.rotation_seed(index))

    def positions(self, dataset: Dataset) -> np.ndarray:
        """``(samples, atoms, 3)`` unrotated positions of every sample."""
        return dataset.positions[self.frames][self.groups]

    def energies(self, dataset: Dataset) -> np.ndarray:
        return dataset.energies[self.frames][self.groups]

    def configurations_overlap(self) -> np.ndarray:
        """Configurations with samples on both sides of the split (empty)."""
        return np.intersect1d(self.groups[self.train_idx], self.groups[self.test_idx])


def choose_frames(dataset: Dataset, frames: Optional[int], seed: int) -> np.ndarray:
    """The frame indices a run uses, sorted: all of them (``frames=None``) or a seeded
    subset of ``frames`` (stream ``[seed, STREAMS["frames"]]``); ``ValueError`` outside
    ``2..n_frames``."""
    n_all = dataset.n_frames
    if frames is None:
        return np.arange(n_all)
    if not is_int(frames) or frames < 2:
        raise ValueError(f"frames must lie in 2..{n_all}, got {frames!r}")
    if frames > n_all:
        raise ValueError(f"frames must lie in 2..{n_all}: frames = {frames} is more than "
                         f"the {n_all} frames of "
                         f"{dataset.metadata.get('source', 'the dataset')}")
    return np.sort(np.random.default_rng(stream(seed, STREAMS["frames"])).choice(
        n_all, frames, replace=False))


def split_configurations(n: int, n_test: int, rotations: int, seed: int):
    """``(test_configurations, groups, train_idx, test_idx)``: ``n_test`` of ``n``
    configurations held out (stream ``[seed, STREAMS["split"]]``), each configuration's
    ``rotations`` samples kept together (``groups`` is the configuration of every sample)."""
    perm = np.random.default_rng(stream(seed, STREAMS["split"])).permutation(n)
    test_cfg = np.zeros(n, dtype=bool)
    test_cfg[perm[:n_test]] = True
    groups = np.repeat(np.arange(n), rotations)
    return (test_cfg, groups, np.flatnonzero(~test_cfg[groups]),
            np.flatnonzero(test_cfg[groups]))


def predictions(degrees: Sequence[int], feature_degrees: Sequence[int],
                lmax: int) -> Dict[int, Prediction]:
    """spanthm's prediction per probe degree: the ceiling ``dL`` and the recoverable
    target degrees up to ``lmax``."""
    features = set(feature_degrees)
    return {d: Prediction(d, int(spanthm.ceiling(d, features=features)),
                          tuple(int(x) for x in spanthm.recoverable_degrees(d, features=features)
                                if x <= lmax))
            for d in degrees}


def make_plan(dataset: Dataset, feature_degrees: Sequence[int], *,
              marked: Optional[Sequence[int]] = None, degrees: Sequence[int] = (1, 2, 3),
              lmax: int = 7, seed: int = 0, k: Optional[int] = None,
              reduction: str = "irrep", spn: str = "ridge", n_boot: int = 2000,
              frames: Optional[int] = None, test_fraction: float = 0.2,
              eps: Optional[float] = None, folds: int = 3,
              k_sweep: Sequence[int] = (1, 2, 3, 4),
              rotations_per_config: int = 1, feature_dim: Optional[int] = None,
              n_backbones: int = 1, backbones: Sequence = (),
              concurrent: int = 1, capacity: str = "fixed") -> DiagnosePlan:
    """Validate the options against ``dataset`` and the backbones' ``feature_degrees`` and
    draw the plan (see :class:`DiagnosePlan`). ``ValueError`` for bad input;
    :class:`WorkLimitExceeded` when the run would need more than :data:`MAX_BYTES` (with
    ``feature_dim``, the width of the marked-atom features, and ``n_backbones``; without
    it the features are counted at one channel per degree), before anything is built;
    ``backbones`` (objects) add the activations of ``concurrent`` batches of the largest
    (:func:`backbone_bytes`, atom pairs counted on the chosen frames). With
    ``capacity="auto"`` the estimate is that of the widest probe the widening may fit
    (:func:`capacity_steps`: its rotations, beside the run's features, and its width)."""
    degrees = validate_options(degrees, lmax, seed, n_boot, test_fraction, folds, k,
                               reduction, spn, eps, rotations_per_config, k_sweep, capacity)
    if lmax < 1:
        raise ValueError(f"lmax = {lmax}: the targets need a degree l >= 1 (s_0 is a constant, "
                         "nothing to measure); give lmax >= 1")
    feature_degrees = tuple(sorted(set(int(l) for l in feature_degrees)))
    if not feature_degrees or max(feature_degrees) < 1:
        raise ValueError("the backbones' features carry no l > 0 component: nothing to probe")
    if dataset.n_frames < 2:
        raise ValueError(f"the dataset has {dataset.n_frames} frame(s): the probe needs "
                         "training and held-out configurations")
    a, b = marked_atoms(dataset, marked)
    n_all = dataset.n_frames
    chosen = choose_frames(dataset, frames, seed)
    n = len(chosen)
    n_test = int(round(test_fraction * n))
    if n_test < 2 or n - n_test < folds:
        raise ValueError(f"{n} configurations are too few for a {test_fraction:.0%} held-out "
                         f"part and {folds}-fold cross-validation")
    R = int(rotations_per_config)
    width = sum(2 * l + 1 for l in feature_degrees)
    n_train = (n - n_test) * R
    k_by_d = ({d: int(k) for d in degrees} if k is not None else
              {d: auto_k(width, d, n_train) for d in degrees})
    activations, pairs = max([_activation_bytes(b, dataset, chosen) for b in backbones]
                             or [(0, 0)])
    R_wide, k_wide = _widest(capacity, degrees, width, k_by_d, n - n_test, R)
    _check_budget(estimate_bytes(n * (R + R_wide if R_wide > R else R), (n - n_test) * R_wide,
                                 n_test * R_wide, k_wide, n_boot,
                                 feature_dim or 2 * width, n_backbones,
                                 activations * max(1, int(concurrent))),
                  f"{dataset.n_atoms} atoms and up to {pairs} atom pairs inside the cutoff "
                  f"per configuration, {max(1, int(concurrent))} batch(es) at a time")
    test_cfg, groups, train_idx, test_idx = split_configurations(n, n_test, R, seed)
    predicted = predictions(degrees, feature_degrees, lmax)
    return DiagnosePlan(
        degrees=degrees, lmax=int(lmax), seed=int(seed), marked=(a, b),
        feature_degrees=feature_degrees, frames=chosen, frames_total=n_all,
        test_configurations=test_cfg, groups=groups, train_idx=train_idx, test_idx=test_idx,
        rotations_per_config=R, k=k_by_d, k_requested=None if k is None else int(k),
        reduction=reduction, spn=spn, folds=int(folds), n_boot=int(n_boot),
        test_fraction=float(test_fraction), eps=None if eps is None else float(eps),
        k_sweep=tuple(int(m) for m in k_sweep),
        coefficients={l: signal_coefficients(l, seed) for l in range(lmax + 1)},
        predicted=predicted, capacity=capacity)


def _widest(capacity: str, degrees, width: int, k_by_d: Dict[int, int],
            train_configurations: int, rotations: int) -> Tuple[int, Dict[int, int]]:
    """``(rotations, {d: k})`` of the widest probes ``capacity`` may fit (the run's own
    with ``"fixed"``): what the memory estimate of :func:`make_plan` covers."""
    if capacity != "auto":
        return rotations, dict(k_by_d)
    steps = {d: capacity_steps(d, width, k_by_d[d], train_configurations, rotations)
             for d in degrees}
    r_wide = max([r for s in steps.values() for _, r in s] + [rotations])
    return r_wide, {d: (s[-1][0] if s else k_by_d[d]) for d, s in steps.items()}
