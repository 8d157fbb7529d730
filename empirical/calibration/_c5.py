r"""The synthetic C5 calibration (docs/method.md §3): axis and ring probes with known ground truth.

For every feature source (``ideal``: the spherical harmonics themselves; ``random``: a
random-initialized backbone of the aspirin class; ``trained``: the same, trained briefly on
the synthetic energy of :mod:`._structures`), every ``L`` and every probe degree ``d``:

* Axis probe: the marked direction is centre -> apex; targets :math:`s_l`, ``l = 0..lmax``,
  exactly as in :mod:`empirical.diagnostic` (reduction of the centre's and apex's features,
  all monomials up to ``d``, ridge with grouped cross-validation, held-out Pearson rho).
  Predicted recoverable iff ``l`` is in :func:`spanthm.recoverable_degrees` (``l <= dL``).
* Ring probe: target :math:`t = \sum_k c \cdot Y_5(v_k)`, ``v_k`` the unit vector from the
  centre to ring atom ``k``; the SPN polynomial is applied to each ring atom's (reduced)
  features and summed over the ring, i.e. the ridge runs on ring-summed monomials.
  Predicted with :func:`spanthm.ring_recoverable` (``n = 5``, target degree 5): recoverable
  iff ``dL >= 5``.

Ideal features: ring atom ``k`` carries :math:`Y_{\le L}(v_k)`; the centre and the apex carry
:math:`Y_{\le L}` of the axis. Samples: ``n`` jittered structures, each under its own
Haar-random rotation (independent per feature source), split by structure into probe
training and held-out parts. Verdicts use the diagnostic's thresholds (rho >= 0.5
recoverable, ``|rho| <= 0.2`` blind); the calibration bar of the acceptance (rho >= 0.9
where recoverable for ideal and trained features, ``|rho| <= 0.1`` where blind) is reported
per cell as ``meets_bar``.

Training length of the ``trained`` source (``train_epochs = 20`` on 400 structures): with 8
epochs the L = 2, d = 3, l = 6 axis cell reached rho = 0.896 (k = 18), 0.899 with k = 27
(11000 structures), and 0.934 with 20 epochs at k = 18: the cell was limited by how
cleanly the briefly trained features encode the axis, not by the probe's width.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from e3nn import o3

import spanthm

from .._result import RunResult
from ..backbone import (MAX_CHANNELS, MAX_L, Backbone, BackboneConfig, TrainSettings,
                        dataset_statistics, train, training_bytes)
from ..backbone import load as load_backbone
from ..checks import check_float, check_int, is_int
from ..diagnostic import (MAX_LMAX, THRESHOLDS, SpectralProbe, agrees, as_float, atom_features,
                          auto_k, haar_rotations, n_monomials, rotate, signal,
                          signal_coefficients)
from ..diagnostic.statistics import pearson
from ..runtime import STREAMS, Progress, WorkLimitExceeded, max_bytes, stream, versions
from ._structures import APEX, CENTRE, RING, RING_RADIUS, c5_structures

__all__ = ["run_c5", "C5Result", "C5Config", "C5Cell", "SourceSummary", "TrainingRecord",
           "IdealFeatures", "CALIBRATION_BAR", "SCHEMA_VERSION", "MAX_STRUCTURES",
           "MAX_TRAIN_EPOCHS", "c5_bytes", "validate_c5"]

#: Most C5 structures (``n``; default 6000, the widest check of the module docstring used
#: 11000): the features of one source hold ``n x 7 x dim`` float64 values, and every
#: structure is run through each backbone once per source and L.
MAX_STRUCTURES = 100_000
#: Most epochs of the briefly trained source (default 20).
MAX_TRAIN_EPOCHS = 1000

SCHEMA_VERSION = 1
#: The acceptance bar of the calibration (stricter than the verdict thresholds).
CALIBRATION_BAR = {"recoverable": 0.9, "blind": 0.1}
RING_DEGREE = 5
SOURCES = ("ideal", "random", "trained")
#: How the probe width is chosen (recorded in ``config.k_rule``).
K_RULE = ("per (source, L, d): auto_k of empirical.diagnostic (<= 4 channels per degree, "
          ">= 2 training samples per monomial)")


def _pick(cls, m: Dict, key: str) -> Dict:
    """The keys of ``m`` that are fields of the record ``cls`` (others are ignored);
    ``ValueError`` naming ``key`` and the first missing one."""
    if not isinstance(m, dict):
        raise ValueError(f"{key}: expected an object, got {type(m).__name__}")
    names = [f.name for f in fields(cls) if f.init]
    missing = [n for n in names if n not in m]
    if missing:
        raise ValueError(f"{key}: missing {', '.join(missing)}")
    return {n: m[n] for n in names}


# ------------------------------------------------------------------------------ records

@dataclass(frozen=True)
class C5Cell:
    """One C5 cell: a probe's held-out rho for one (source, L, d, l) beside spanthm's
    prediction; ``agrees`` is the diagnostic's verdict rule, ``meets_bar`` the same rule
    at :data:`CALIBRATION_BAR` (both ``None`` where rho is undefined)."""

    features: str
    source: str
    L: int
    d: int
    probe: str          # "axis" or "ring"
    l: int
    rho: Optional[float]
    predicted: str      # "recoverable" or "blind"
    agrees: Optional[bool]
    meets_bar: Optional[bool]
    k: int

    @classmethod
    def measured(cls, features: str, source: str, L: int, d: int, probe: str, l: int, rho,
                 predicted: str, k: int) -> "C5Cell":
        """The cell of a measured ``rho``, its two verdicts derived."""
        rho = as_float(rho)
        return cls(features=features, source=source, L=int(L), d=int(d), probe=probe,
                   l=int(l), rho=rho, predicted=predicted, agrees=agrees(rho, predicted),
                   meets_bar=agrees(rho, predicted, CALIBRATION_BAR), k=int(k))

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, m: Dict, key: str = "cell") -> "C5Cell":
        return cls(**_pick(cls, m, key))


@dataclass(frozen=True)
class SourceSummary:
    """One feature source's counts over its defined cells."""

    cells: int
    agree: int
    meet_bar: int



@dataclass(frozen=True)
class TrainingRecord:
    """How one briefly trained backbone of the ``trained`` source was trained."""

    features: str
    L: int
    epochs: int
    frames: int
    test_energy_mae_meV: float
    test_force_mae_meV_per_A: float


    @classmethod
    def from_dict(cls, m: Dict, key: str = "training") -> "TrainingRecord":
        return cls(**_pick(cls, m, key))


@dataclass(frozen=True, kw_only=True)
class C5Config:
    """The exact configuration of a C5 run (``config`` of ``results.json``, in this
    order); ``coefficients`` maps each axis target degree ``l`` to its signal
    coefficients."""

    Ls: List[int]
    degrees: List[int]
    lmax: int
    n_structures: int
    n_train: int
    n_test: int
    seed: int
    sources: List[str]
    channels: int
    train_epochs: int
    train_frames: int
    jitter_A: float
    folds: int
    ring_target_degree: int = RING_DEGREE
    thresholds: Dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    calibration_bar: Dict[str, float] = field(default_factory=lambda: dict(CALIBRATION_BAR))
    structures: str
    k_rule: str = K_RULE
    coefficients: Dict[int, List[float]]
    ring_coefficients: List[float]
    versions: Dict[str, str]

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["coefficients"] = {str(l): list(c) for l, c in self.coefficients.items()}
        return out

    @classmethod
    def from_dict(cls, m: Dict) -> "C5Config":
        values = _pick(cls, m, "config")
        values["coefficients"] = {int(l): c for l, c in values["coefficients"].items()}
        return cls(**values)


@dataclass(kw_only=True)
class C5Result(RunResult):
    """What :func:`run_c5` measured, as typed records; :meth:`to_dict` is exactly
    ``results.json`` (``summary`` and ``agreement`` follow from the cells) and
    :meth:`from_dict` reads one back (checked first: ``ValueError`` naming the bad key)."""

    config: C5Config
    cells: List[C5Cell]
    training: List[TrainingRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> Dict[str, SourceSummary]:
        """Per feature source (in the run's order): its defined cells, how many agree with
        the prediction and how many meet the calibration bar."""
        out = {}
        for source in self.config.sources:
            mine = [c for c in self.cells if c.source == source and c.rho is not None]
            out[source] = SourceSummary(cells=len(mine), agree=sum(1 for c in mine if c.agrees),
                                        meet_bar=sum(1 for c in mine if c.meets_bar))
        return out

    @property
    def agreement(self) -> bool:
        """Whether every cell with a verdict agrees with the prediction."""
        return all(c.agrees for c in self.cells if c.agrees is not None)

    def to_dict(self) -> Dict:
        return {"schema_version": SCHEMA_VERSION, "config": self.config.to_dict(),
                "cells": [c.to_dict() for c in self.cells],
                "summary": {s: asdict(v) for s, v in self.summary.items()},
                "training": [asdict(t) for t in self.training],
                "agreement": self.agreement}

    @classmethod
    def from_dict(cls, payload: Dict, seconds: float = 0.0) -> "C5Result":
        """The records of a C5 ``results.json`` dictionary, after
        :func:`~empirical.calibration.validate_c5_results`; unknown keys are ignored."""
        from ._compare import validate_c5_results

        validate_c5_results(payload)
        return cls(config=C5Config.from_dict(payload["config"]),
                   cells=[C5Cell.from_dict(c, f"cells[{i}]")
                          for i, c in enumerate(payload["cells"])],
                   training=[TrainingRecord.from_dict(t, f"training[{i}]")
                             for i, t in enumerate(payload["training"])],
                   seconds=seconds)

    def save(self, out_dir: Union[str, Path], plots: bool = True,
             overwrite: bool = False) -> List[Path]:
        """Write the outputs into ``out_dir`` as one set (it must not hold files unless
        ``overwrite``)."""
        from ._report import write_c5_outputs
        return write_c5_outputs(self, Path(out_dir), plots=plots, overwrite=overwrite)


class IdealFeatures:
    """Protocol object whose per-atom features are :math:`Y_0..Y_L` (e3nn, component
    normalization) of the atom's direction from the centre; the centre (and the apex) carry
    the axis direction."""

    #: exact harmonics: positions reach it in float64 (docs/method.md §2.2)
    dtype = torch.float64

    def __init__(self, L: int):
        self.L = int(L)
        self.irreps_out = o3.Irreps.spherical_harmonics(self.L)

    def node_features(self, positions: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        v = positions - positions[CENTRE]
        v = v.clone()
        v[CENTRE] = positions[APEX] - positions[CENTRE]
        return o3.spherical_harmonics(self.irreps_out, v, normalize=True,
                                      normalization="component")


def _train_briefly(L: int, channels: int, seed: int, epochs: int,
                   frames: int) -> Tuple[Backbone, TrainingRecord]:
    """A backbone of the aspirin class trained for ``epochs`` on ``frames`` C5 structures
    with the synthetic energy (its own seeded structures, never probed), and its record."""
    data = c5_structures(frames + 200, seed=stream(seed, STREAMS["c5_train"], L))
    config = BackboneConfig(L=L, channels=channels, layers=3, species=[6, 8])
    settings = TrainSettings(epochs=epochs, batch_size=16, train_frames=frames,
                             val_frames=100, test_frames=100, split_seed=seed,
                             stop_patience=epochs + 1)
    with tempfile.TemporaryDirectory() as tmp:
        meta = train(data, tmp, config, seed=seed, settings=settings, progress=False,
                     log=lambda s: None)
        model = load_backbone(Path(tmp) / "backbone.pt")
    record = TrainingRecord(features=_label("trained", L), L=L, epochs=epochs, frames=frames,
                            test_energy_mae_meV=meta["test"]["energy_mae_meV"],
                            test_force_mae_meV_per_A=meta["test"]["force_mae_meV_per_A"])
    return model.eval(), record


def _label(source: str, L: int) -> str:
    """The ``features`` label of a (source, L): ``ideal`` or e.g. ``L2-trained``."""
    return "ideal" if source == "ideal" else f"L{L}-{source}"


@dataclass(frozen=True)
class _Samples:
    """The structures of one run, their probe split by structure and the targets'
    coefficients (``coefficients[l]`` for the axis probe, ``ring`` for the ring probe)."""

    data: object
    train_idx: np.ndarray
    test_idx: np.ndarray
    coefficients: Dict[int, np.ndarray]
    ring: np.ndarray

    @property
    def n(self) -> int:
        return len(self.train_idx) + len(self.test_idx)


def _samples(n: int, seed: int, lmax: int, jitter: float, test_fraction: float) -> _Samples:
    """Step 1: ``n`` jittered structures, split by structure into probe training and
    held-out parts, and the signal coefficients of every target."""
    data = c5_structures(n, seed=stream(seed, STREAMS["c5_data"]), jitter=jitter)
    n_test = int(round(test_fraction * n))
    perm = np.random.default_rng(stream(seed, STREAMS["c5_split"])).permutation(n)
    return _Samples(data=data, train_idx=np.sort(perm[n_test:]),
                    test_idx=np.sort(perm[:n_test]),
                    coefficients={l: signal_coefficients(l, seed) for l in range(lmax + 1)},
                    ring=signal_coefficients(RING_DEGREE, seed))


def _feature_source(source: str, L: int, samples: _Samples, channels: int, seed: int,
                    train_epochs: int, train_frames: int
                    ) -> Tuple[object, Optional[TrainingRecord]]:
    """Step 2: the protocol object of one (source, L), and its training record for the
    ``trained`` source."""
    if source == "ideal":
        return IdealFeatures(L), None
    if source == "random":
        stats = dataset_statistics(samples.data, samples.train_idx[:400], 5.0)
        config = BackboneConfig(L=L, channels=channels, layers=3, species=[6, 8], **stats)
        return Backbone(config, seed=seed).eval(), None
    return _train_briefly(L, channels, seed, train_epochs, train_frames)


def _targets(rot_pos: np.ndarray, samples: _Samples) -> Tuple[np.ndarray, np.ndarray]:
    """Step 3: the axis targets ``S[:, l]`` (of the centre -> apex direction) and the ring
    target ``t`` (summed over the ring atoms' directions) of the rotated structures."""
    axis = rot_pos[:, APEX] - rot_pos[:, CENTRE]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    S = np.stack([signal(l, axis, c) for l, c in sorted(samples.coefficients.items())],
                 axis=1)
    v = rot_pos[:, list(RING)] - rot_pos[:, [CENTRE]]
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    t = signal(RING_DEGREE, v.reshape(-1, 3), samples.ring).reshape(len(rot_pos), len(RING))
    return S, t.sum(axis=1)


def _probe_cells(obj, feats: np.ndarray, S: np.ndarray, t: np.ndarray, samples: _Samples,
                 source: str, L: int, d: int, folds: int, seed: int) -> List[C5Cell]:
    """Step 4: the axis cells (``l = 0..lmax``) and the ring cell of one (source, L, d).

    The axis probe reads the features of centre and apex and predicts every ``s_l`` at
    once; the ring probe's input is ``(n, ring, D)``: one reduction for all ring atoms,
    the polynomial per atom, summed over the ring."""
    irreps = o3.Irreps(obj.irreps_out)
    feature_degrees = sorted({ir.l for _, ir in irreps})
    width = sum(2 * l + 1 for l in feature_degrees)
    train_idx, test_idx = samples.train_idx, samples.test_idx
    groups = np.arange(samples.n)
    x_axis, x_ring = feats[:, :2].reshape(samples.n, -1), feats[:, 2:]
    k = auto_k(width, d, len(train_idx))
    label = _label(source, L)
    rec = set(spanthm.recoverable_degrees(d, features=set(feature_degrees)))
    probe = SpectralProbe(d=d, k=k, irreps=irreps + irreps, folds=folds,
                          seed=stream(seed, STREAMS["c5_cv"]))
    probe.fit(x_axis[train_idx], S[train_idx][:, 1:], groups[train_idx])
    pred = probe.predict(x_axis[test_idx])
    cells = [C5Cell.measured(label, source, L, d, "axis", l,
                             None if l == 0 else pearson(pred[:, l - 1], S[test_idx][:, l]),
                             "recoverable" if l in rec else "blind", probe.k_)
             for l in range(S.shape[1])]
    probe = SpectralProbe(d=d, k=k, irreps=irreps, folds=folds,
                          seed=stream(seed, STREAMS["c5_cv"]))
    probe.fit(x_ring[train_idx], t[train_idx], groups[train_idx])
    rho = pearson(probe.predict(x_ring[test_idx]), t[test_idx])
    seen = spanthm.ring_recoverable(len(RING), d, features=set(feature_degrees),
                                    target_degree=RING_DEGREE)
    cells.append(C5Cell.measured(label, source, L, d, "ring", RING_DEGREE, rho,
                                 "recoverable" if seen else "blind", probe.k_))
    return cells


def run_c5(Ls: Sequence[int] = (1, 2, 3), degrees: Sequence[int] = (1, 2, 3), lmax: int = 7,
           n: int = 6000, seed: int = 0, sources: Sequence[str] = SOURCES,
           channels: int = 32, train_epochs: int = 20, train_frames: int = 400,
           test_fraction: float = 0.25, folds: int = 3, jitter: float = 0.05,
           progress=None) -> C5Result:
    """Run the C5 calibration (see the module docstring). Raises ``ValueError`` on bad
    input before any work is done."""
    start = time.perf_counter()
    Ls, degrees, sources = list(Ls), list(degrees), list(sources)
    validate_c5(Ls, degrees, lmax, n, seed, sources, channels, train_epochs, train_frames,
                test_fraction, folds, jitter)
    samples = _samples(n, seed, lmax, jitter, test_fraction)
    atoms = [CENTRE, APEX, *RING]
    jobs = [(source, L) for source in sources for L in Ls]
    bar = Progress(len(jobs) * (n + 30 * len(degrees)), enabled=progress)
    cells: List[C5Cell] = []
    training: List[TrainingRecord] = []
    for ji, (source, L) in enumerate(jobs):
        bar.set_label(f"{_label(source, L)} (L = {L})")
        obj, record = _feature_source(source, L, samples, channels, seed, train_epochs,
                                      train_frames)
        training += [record] if record is not None else []
        rotations = haar_rotations(n, stream(seed, STREAMS["c5_rotations"], ji))
        feats, _ = atom_features(obj, samples.data.positions, samples.data.numbers,
                                 rotations, atoms, with_energy=False,
                                 progress=lambda m: bar.advance(m))
        S, t = _targets(rotate(samples.data.positions, rotations), samples)
        for d in degrees:
            cells += _probe_cells(obj, feats, S, t, samples, source, L, d, folds, seed)
            bar.advance(30)
    bar.close()
    config = C5Config(Ls=Ls, degrees=degrees, lmax=int(lmax), n_structures=int(n),
                      n_train=int(len(samples.train_idx)), n_test=int(len(samples.test_idx)),
                      seed=int(seed), sources=sources, channels=int(channels),
                      train_epochs=int(train_epochs), train_frames=int(train_frames),
                      jitter_A=float(jitter), folds=int(folds),
                      structures=samples.data.metadata["source"],
                      coefficients={l: c.tolist() for l, c in samples.coefficients.items()},
                      ring_coefficients=samples.ring.tolist(), versions=versions())
    return C5Result(config=config, cells=cells, training=training,
                    seconds=time.perf_counter() - start)


def _distinct_ints(name: str, values: list, low: int, high: int) -> None:
    if not values:
        raise ValueError(f"give at least one {name}")
    for v in values:
        check_int(name, v, low, high)
    if len(set(values)) != len(values):
        raise ValueError(f"{name} values repeat: {values[:20]}")


def validate_c5(Ls, degrees, lmax, n, seed, sources, channels, train_epochs, train_frames,
                test_fraction, folds, jitter) -> None:
    """Check every option of :func:`run_c5` and the memory the request implies
    (:func:`c5_bytes` against ``EMPIRICAL_MAX_BYTES``, 8 GB by default); ``ValueError``
    naming the first bad one, before anything is built."""
    _distinct_ints("L", Ls, 1, MAX_L)
    _distinct_ints("probe degree d", degrees, 1, spanthm_max_d())
    check_int("lmax", lmax, 0, MAX_LMAX, " (e3nn's spherical harmonics stop at 12)")
    if not sources:
        raise ValueError("give at least one feature source")
    for s in sources:
        if not isinstance(s, str) or s not in SOURCES:
            raise ValueError(f"feature source must be one of {', '.join(SOURCES)}, got {s!r}")
    if len(set(sources)) != len(sources):
        raise ValueError(f"feature sources repeat: {sources}")
    if is_int(n) and n < 20:
        raise ValueError(f"need at least 20 structures, got {n}")
    check_int("structures", n, 20, MAX_STRUCTURES)
    check_int("seed", seed, 0, 2 ** 63 - 1)
    check_int("train_epochs", train_epochs, 1, MAX_TRAIN_EPOCHS)
    check_int("train_frames", train_frames, 1, MAX_STRUCTURES)
    test_fraction = check_float("test_fraction", test_fraction)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    check_int("folds", folds, 2, max(2, n // 10))
    check_float("jitter", jitter, low=0.0, high=RING_RADIUS)
    if any(s != "ideal" for s in sources):
        for L in Ls:     # the backbone's own bounds (channels, parameters), nothing built
            BackboneConfig(L=L, channels=channels, layers=3, species=[6, 8])
    else:
        check_int("channels", channels, 1, MAX_CHANNELS)
    est = c5_bytes(Ls, degrees, n, sources, channels, test_fraction)
    limit = max_bytes()
    if est > limit:
        raise WorkLimitExceeded(
            f"this C5 request ({n} structures, L = {max(Ls)}, d = {max(degrees)}, "
            f"{channels} channels) needs about {est / 1e9:.3g} GB, above the limit of "
            f"{limit / 1e9:.3g} GB: use fewer structures, a lower L or d, fewer channels, or "
            "raise EMPIRICAL_MAX_BYTES if you mean it")


def spanthm_max_d() -> int:
    """The highest probe degree spanthm accepts."""
    from spanthm import MAX_D
    return MAX_D


def c5_bytes(Ls, degrees, n: int, sources, channels: int, test_fraction: float = 0.25) -> int:
    """Peak memory of a C5 run (bytes), estimated from its options alone: for the widest
    (source, L), the float64 features of the seven atoms of ``n`` structures plus, for the
    widest probe degree, three copies of the ring probe's monomials (five ring atoms per
    training structure) and of its Gram matrix; plus the briefly trained backbone's
    training step when ``"trained"`` is a source."""
    n_train = n - int(round(test_fraction * n))
    total = 0
    for source in sources:
        for L in Ls:
            width = (L + 1) ** 2
            dim = width if source == "ideal" else 2 * channels * width
            features = 8 * n * len([CENTRE, APEX, *RING]) * dim
            widest = max(n_monomials(auto_k(width, d, n_train), d) for d in degrees)
            probe = 3 * 8 * widest * (len(RING) * n_train + widest)
            extra = 0
            if source == "trained":
                config = BackboneConfig(L=L, channels=channels, layers=3, species=[6, 8],
                                        avg_num_neighbors=6.0)
                extra = training_bytes(config, 7, 16)
            total = max(total, features + probe + extra)
    return int(total)
