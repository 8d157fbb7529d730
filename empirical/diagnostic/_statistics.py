r"""Statistics of the spectral-injection diagnostic, and their hierarchical cluster bootstrap.

Point statistics (one probe, held-out samples)
----------------------------------------------
* :func:`pearson`: Pearson correlation :math:`\rho` of prediction and target; ``None``
  ("undefined", never a number) when either is constant, as the ``l = 0`` target is.
* :func:`raw_gain`: :math:`G = \mathrm{mean}(e_0 - e_1)`, the mean squared error of the
  training-mean predictor minus that of the probe.
* :func:`r2_injected`: :math:`R^2_\mathrm{inj} = 1 - \mathrm{mean}((p - \epsilon s_l)^2)
  / \epsilon^2`, against the injected part, whose power :math:`\epsilon^2` is known exactly.
* :func:`cliff_ratio`: :math:`\rho(d_L) / \rho(d_L + 1)`.

Each has a row-wise twin (:func:`pearson_rows`, :func:`raw_gain_rows`,
:func:`r2_injected_rows`) evaluated on 2-D arrays ``(rows, n)``, one resample a row; a
row-wise statistic returns NaN where it is undefined. :func:`ratio_rows` divides two such
arrays elementwise (NaN where the denominator is 0).

Hierarchical cluster bootstrap
------------------------------
Clusters are backbones; cluster ``c`` has ``sizes[c]`` held-out samples. One resample
draws ``C = len(sizes)`` clusters with replacement and then, independently for every
drawn copy, ``sizes[c]`` samples of that cluster with replacement. A statistic of a
resample is the mean, over the ``C`` drawn copies (with their multiplicity), of the
per-cluster statistic of each copy's samples; the point estimate is the mean over
clusters of the per-cluster statistic of the original samples.

:func:`cluster_bootstrap_indices` returns the whole resampling plan
(:class:`BootstrapPlan`) from one integer seed; :class:`ClusterBootstrap` holds one plan
and evaluates any per-cluster statistic on every resample at once
(:meth:`ClusterBootstrap.mean_of_cluster_stat`, shape ``(n_boot,)``). Every statistic of
one run must go through the same plan: then resample ``b`` of every (d, l) cell is made
of the same backbones and the same samples, and a contrast or ratio between cells,
computed elementwise from their ``(n_boot,)`` arrays (e.g. ``G_b - G_a``, or
``ratio_rows(rho_b, rho_a)``), has a correct interval (:meth:`ClusterBootstrap.interval`).

With few clusters (the four backbones of a run) the between-cluster spread is estimated
from very few values, and a percentile interval is then narrower than a 95 % interval
should be; the level is nominal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["pearson", "raw_gain", "r2_injected", "cliff_ratio", "Interval",
           "percentile_interval", "BootstrapPlan", "cluster_bootstrap_indices",
           "ClusterBootstrap", "pearson_rows", "raw_gain_rows", "r2_injected_rows",
           "ratio_rows"]

#: Values whose spread (max - min) is within this many ulps of their magnitude are
#: constant: a correlation computed from rounding noise would be a meaningless number.
CONSTANT_ULPS = 8

# Weighted (moment) path of pearson_rows: rows whose resampled variance falls below this
# fraction of the cluster's variance are recomputed exactly from their values.
_SMALL_VARIANCE = 1e-6


# --------------------------------------------------------------------------- validation

def _vector(x, name: str, min_size: int = 1) -> np.ndarray:
    """``x`` as a finite float64 1-D array of at least ``min_size`` entries."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _pair(pred, target, names: Tuple[str, str], min_size: int = 1):
    p = _vector(pred, names[0], min_size)
    t = _vector(target, names[1], min_size)
    if p.shape != t.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {p.size} != {t.size}")
    return p, t


def _rows_pair(a, b, names: Tuple[str, str]):
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"{names[0]} must be a 2-D array (rows, n), got shape {x.shape}")
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {x.shape} != {y.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"{names[0]} has rows of length 0")
    return x, y


def _finite_scalar(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {v!r}")
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return float(v)


def _positive_eps(eps) -> float:
    e = _finite_scalar(eps, "eps")
    if e <= 0:
        raise ValueError(f"eps (injection amplitude) must be > 0, got {e}")
    return e


def _is_constant(x: np.ndarray) -> bool:
    """True when the spread of the (finite) values ``x`` is at the rounding level."""
    hi, lo = float(np.max(x)), float(np.min(x))
    return hi - lo <= CONSTANT_ULPS * np.finfo(float).eps * max(abs(hi), abs(lo))


# ----------------------------------------------------------------------- point statistics

def pearson(pred: np.ndarray, target: np.ndarray) -> Optional[float]:
    """Pearson correlation of two 1-D arrays.

    Parameters
    ----------
    pred, target : (n,) arrays, ``n >= 2``, finite.

    Returns
    -------
    float in [-1, 1], or ``None`` when either array is constant (its spread is within
    :data:`CONSTANT_ULPS` ulps of its magnitude): the correlation is undefined there
    (e.g. against the constant ``l = 0`` target), never reported as a number.

    Raises
    ------
    ValueError
        Arrays not 1-D, of different lengths, shorter than 2, or with NaN/inf.

    Examples
    --------
    >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])) > 0.99
    True
    >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])) is None
    True
    """
    p, t = _pair(pred, target, ("pred", "target"), min_size=2)
    if _is_constant(p) or _is_constant(t):
        return None
    return float(_pearson_unchecked(p[None, :], t[None, :])[0])


def raw_gain(pred: np.ndarray, target: np.ndarray, train_mean: float) -> float:
    """Raw gain ``G = mean(e0 - e1)`` of a probe over the training-mean predictor.

    ``e0 = (target - train_mean)**2`` is the squared error of predicting the training
    mean, ``e1 = (target - pred)**2`` that of the probe, both on held-out samples. ``G``
    is in squared target units; ``G > 0`` means the probe beats the mean.

    Parameters
    ----------
    pred, target : (n,) arrays, ``n >= 1``, finite.
    train_mean : float
        Mean of the target on the training split.

    Examples
    --------
    >>> raw_gain(np.array([1.0, 2.0]), np.array([1.0, 3.0]), train_mean=0.0)
    4.5
    """
    p, t = _pair(pred, target, ("pred", "target"))
    m = _finite_scalar(train_mean, "train_mean")
    return float(np.mean((t - m) ** 2 - (t - p) ** 2))


def r2_injected(pred: np.ndarray, signal: np.ndarray, eps: float) -> float:
    """Fraction of the injected power recovered: ``1 - mean((pred - signal)**2) / eps**2``.

    ``signal = eps * s_l`` is the injected part of the target, known exactly, and
    ``eps**2`` its power (``E[s_l^2] = 1``). The denominator is this known power, not a
    variance estimated from the samples. 1 for a perfect predictor, ``1 -
    mean(signal**2) / eps**2`` (about 0) for the zero predictor, unbounded below.

    Parameters
    ----------
    pred, signal : (n,) arrays, ``n >= 1``, finite.
    eps : float > 0
        Injection amplitude.

    Examples
    --------
    >>> r2_injected(np.array([0.5, -0.5]), np.array([1.0, -1.0]), eps=1.0)
    0.75
    """
    p, s = _pair(pred, signal, ("pred", "signal"))
    e = _positive_eps(eps)
    return float(1.0 - np.mean((p - s) ** 2) / e ** 2)


def cliff_ratio(rho_boundary: Optional[float], rho_above: Optional[float]) -> Optional[float]:
    """The cliff ``rho(d_L) / rho(d_L + 1)`` between the boundary degree and the next.

    ``None`` when either correlation is undefined (``None``) or ``rho_above == 0``.
    Above the boundary the correlation sits at the noise floor, so the ratio of a large
    number to one near zero is unstable (its sign and size follow the noise): always
    report ``rho(d_L + 1)`` (with its interval) beside it. Per resample, use
    :func:`ratio_rows`.

    Raises
    ------
    ValueError
        A correlation that is not a finite number (NaN is not "undefined"; pass ``None``).

    Examples
    --------
    >>> cliff_ratio(0.9, 0.25)
    3.6
    >>> cliff_ratio(0.9, None) is None, cliff_ratio(0.9, 0.0) is None
    (True, True)
    """
    if rho_boundary is None or rho_above is None:
        return None
    b = _finite_scalar(rho_boundary, "rho_boundary")
    a = _finite_scalar(rho_above, "rho_above")
    if a == 0:
        return None
    return b / a


# ------------------------------------------------------------------ row-wise statistics

def _pearson_unchecked(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of non-constant rows (no checks)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    # Scale each row to unit max-abs first: no under/overflow in the squares.
    xc /= np.max(np.abs(xc), axis=1, keepdims=True)
    yc /= np.max(np.abs(yc), axis=1, keepdims=True)
    sxy = np.einsum("ij,ij->i", xc, yc)
    sxx = np.einsum("ij,ij->i", xc, xc)
    syy = np.einsum("ij,ij->i", yc, yc)
    return np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)


def _constant_rows(x: np.ndarray) -> np.ndarray:
    hi, lo = x.max(axis=1), x.min(axis=1)
    return hi - lo <= CONSTANT_ULPS * np.finfo(float).eps * np.maximum(np.abs(hi), np.abs(lo))


def pearson_rows(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation.

    Parameters
    ----------
    pred, target : (rows, n) arrays of the same shape (e.g. ``(n_boot, n)`` resamples).

    Returns
    -------
    (rows,) float array; NaN for a row where either array is constant (the criterion of
    :func:`pearson`) and where the row holds NaN/inf (no finiteness check: it propagates).
    Row ``i`` equals ``pearson(pred[i], target[i])`` (None -> NaN).
    """
    x, y = _rows_pair(pred, target, ("pred", "target"))
    out = np.full(x.shape[0], np.nan)
    with np.errstate(invalid="ignore"):
        ok = ~(_constant_rows(x) | _constant_rows(y))
    if ok.all():
        return _pearson_unchecked(x, y)
    if ok.any():
        out[ok] = _pearson_unchecked(x[ok], y[ok])
    return out


def raw_gain_rows(pred: np.ndarray, target: np.ndarray, train_mean: float) -> np.ndarray:
    """Row-wise :func:`raw_gain`: ``mean((target - train_mean)**2 - (target - pred)**2, axis=1)``.

    Parameters
    ----------
    pred, target : (rows, n) arrays of the same shape.
    train_mean : float
        One training mean for all rows (per cluster in the bootstrap: pass it through
        ``cluster_kwargs`` of :meth:`ClusterBootstrap.mean_of_cluster_stat`).

    Returns
    -------
    (rows,) float array.
    """
    p, t = _rows_pair(pred, target, ("pred", "target"))
    m = _finite_scalar(train_mean, "train_mean")
    return np.mean((t - m) ** 2 - (t - p) ** 2, axis=1)


def r2_injected_rows(pred: np.ndarray, signal: np.ndarray, eps: float) -> np.ndarray:
    """Row-wise :func:`r2_injected`: ``1 - mean((pred - signal)**2, axis=1) / eps**2``.

    Parameters
    ----------
    pred, signal : (rows, n) arrays of the same shape.
    eps : float > 0

    Returns
    -------
    (rows,) float array.
    """
    p, s = _rows_pair(pred, signal, ("pred", "signal"))
    e = _positive_eps(eps)
    return 1.0 - np.mean((p - s) ** 2, axis=1) / e ** 2


def ratio_rows(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise ``num / den``, NaN where ``den == 0`` (NaN in either propagates).

    For ratios between cells per bootstrap resample, e.g. the cliff
    ``ratio_rows(rho_boundary, rho_above)`` of two ``(n_boot,)`` arrays of one plan.

    Examples
    --------
    >>> ratio_rows(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, -1.0]))
    array([ 0.5,  nan, -3. ])
    """
    n = np.asarray(num, dtype=float)
    d = np.asarray(den, dtype=float)
    if n.shape != d.shape:
        raise ValueError(f"num and den differ in shape: {n.shape} != {d.shape}")
    out = np.full(n.shape, np.nan)
    np.divide(n, d, out=out, where=d != 0)
    return out


# Weighted (count) forms of the row-wise statistics. ``counts`` (K, n) float64 holds how
# often each of the cluster's n samples occurs in each of K resamples (rows sum to n);
# the arrays are the cluster's original (n,) values. The result equals the row-wise
# statistic of the resampled values (up to rounding): one matrix product replaces the
# gather of K x n values, which is what keeps the full bootstrap of a run fast.

def _resampled_from_counts(counts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The (K, n) resampled values of the count rows (in sample order, not draw order)."""
    reps = np.rint(counts).astype(np.intp).ravel()
    return np.repeat(np.tile(x, counts.shape[0]), reps).reshape(counts.shape[0], x.size)


def _pearson_weighted(counts: np.ndarray, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    k, n = counts.shape
    if _is_constant(pred) or _is_constant(target):
        return np.full(k, np.nan)
    # Centre and scale by the cluster's own moments (Pearson is invariant): the resampled
    # moments are then O(1) and the one-pass variance loses no precision.
    xs = (pred - pred.mean()) / pred.std()
    ys = (target - target.mean()) / target.std()
    m = counts @ np.stack([xs, ys, xs * xs, ys * ys, xs * ys], axis=1) / n
    vx = m[:, 2] - m[:, 0] ** 2
    vy = m[:, 3] - m[:, 1] ** 2
    cxy = m[:, 4] - m[:, 0] * m[:, 1]
    small = (vx <= _SMALL_VARIANCE) | (vy <= _SMALL_VARIANCE)
    out = np.empty(k)
    good = ~small
    out[good] = np.clip(cxy[good] / np.sqrt(vx[good] * vy[good]), -1.0, 1.0)
    if small.any():   # possibly constant resamples: decide on the values themselves
        out[small] = pearson_rows(_resampled_from_counts(counts[small], pred),
                                  _resampled_from_counts(counts[small], target))
    return out


def _raw_gain_weighted(counts: np.ndarray, pred: np.ndarray, target: np.ndarray,
                       train_mean: float) -> np.ndarray:
    m = _finite_scalar(train_mean, "train_mean")
    g = (target - m) ** 2 - (target - pred) ** 2
    return counts @ g / pred.size


def _r2_injected_weighted(counts: np.ndarray, pred: np.ndarray, signal: np.ndarray,
                          eps: float) -> np.ndarray:
    e = _positive_eps(eps)
    return 1.0 - counts @ ((pred - signal) ** 2) / (pred.size * e ** 2)


pearson_rows.weighted = _pearson_weighted
raw_gain_rows.weighted = _raw_gain_weighted
r2_injected_rows.weighted = _r2_injected_weighted


# ------------------------------------------------------------------------------ intervals

@dataclass(frozen=True)
class Interval:
    """A percentile interval; both bounds ``None`` when it is undefined."""

    low: Optional[float]
    high: Optional[float]

    def to_list(self) -> list:
        """``[low, high]`` (JSON form; ``None`` stays ``None``)."""
        return [self.low, self.high]


def _check_level(level) -> float:
    lv = _finite_scalar(level, "level")
    if not 0 < lv < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {lv}")
    return lv


def percentile_interval(values: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of the finite ``values`` at ``level``.

    The bounds are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
    interpolation) of the finite entries; ``Interval(None, None)`` when fewer than half of
    the entries are finite (the statistic is undefined on most resamples).

    Parameters
    ----------
    values : (n,) array, NaN/inf allowed (dropped).
    level : float in (0, 1)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {v.shape}")
    lv = _check_level(level)
    finite = v[np.isfinite(v)]
    if 2 * finite.size < v.size:
        return Interval(None, None)
    lo, hi = np.percentile(finite, [50.0 * (1.0 - lv), 50.0 * (1.0 + lv)])
    return Interval(float(lo), float(hi))


# ---------------------------------------------------------------------- resampling plan

@dataclass(frozen=True, eq=False)
class BootstrapPlan:
    """The hierarchical cluster-bootstrap resampling plan of one run.

    Resample ``b`` (``0 <= b < n_boot``) consists of ``C = len(sizes)`` slots; slot ``j``
    holds a copy of cluster ``cluster_draws[b, j]``. The copies of cluster ``c`` over all
    resamples are numbered ``k = 0 .. K_c - 1`` in (b, j) order, ``K_c`` being the number
    of times ``c`` was drawn in all (about ``n_boot``); copy ``k`` belongs to resample
    ``owners[c][k]`` and consists of the cluster's samples ``sample_draws[c][k]`` (each
    copy has its own, independent within-cluster resample, also when ``c`` is drawn twice
    into one resample). So a per-cluster statistic is evaluated on the ``(K_c, sizes[c])``
    array ``x_c[sample_draws[c]]`` of cluster ``c``, and its per-resample mean is the
    ``owners[c]``-grouped mean over all clusters.

    Attributes
    ----------
    sizes : tuple of int, length C
    n_boot, seed : int
    cluster_draws : (n_boot, C) int32, read-only
    owners : tuple over clusters of (K_c,) int32, read-only, nondecreasing
    sample_draws : tuple over clusters of (K_c, sizes[c]) int32, read-only
    """

    sizes: Tuple[int, ...]
    n_boot: int
    seed: int
    cluster_draws: np.ndarray
    owners: Tuple[np.ndarray, ...]
    sample_draws: Tuple[np.ndarray, ...]

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)


def _check_int(v, name: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def _check_sizes(sizes) -> Tuple[int, ...]:
    try:
        s = tuple(sizes)
    except TypeError:
        raise ValueError(f"sizes must be a sequence of cluster sizes, got {sizes!r}") from None
    if not s:
        raise ValueError("sizes is empty: the bootstrap needs at least one cluster")
    out = []
    for c, v in enumerate(s):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"sizes[{c}] must be an integer sample count, got {v!r}")
        if v < 1:
            raise ValueError(f"sizes[{c}] is {v}: every cluster needs at least one sample")
        out.append(int(v))
    return tuple(out)


def cluster_bootstrap_indices(sizes: Sequence[int], n_boot: int, seed: int) -> BootstrapPlan:
    """The hierarchical cluster-bootstrap resampling plan (see :class:`BootstrapPlan`).

    For each of ``n_boot`` resamples: draw ``len(sizes)`` clusters with replacement, then,
    within each drawn copy of cluster ``c``, ``sizes[c]`` sample indices with replacement.
    Deterministic given ``seed``: ``numpy.random.default_rng(seed)`` draws all cluster
    slots first (``(n_boot, C)``), then the within-cluster indices cluster by cluster.
    Memory: about ``n_boot * sum(sizes)`` int32.

    Parameters
    ----------
    sizes : sequence of int >= 1
        Held-out samples per cluster (backbone).
    n_boot : int >= 1
    seed : int >= 0

    Examples
    --------
    >>> plan = cluster_bootstrap_indices([3, 5], n_boot=4, seed=0)
    >>> plan.cluster_draws.shape, [d.shape[1] for d in plan.sample_draws]
    ((4, 2), [3, 5])
    >>> sum(len(o) for o in plan.owners)     # n_boot * C copies in all
    8
    """
    s = _check_sizes(sizes)
    nb = _check_int(n_boot, "n_boot", 1)
    sd = _check_int(seed, "seed", 0)
    n_c = len(s)
    rng = np.random.default_rng(sd)
    draws = rng.integers(0, n_c, size=(nb, n_c), dtype=np.int32)
    flat = draws.ravel()
    owners, samples = [], []
    for c in range(n_c):
        own = (np.flatnonzero(flat == c) // n_c).astype(np.int32)
        idx = rng.integers(0, s[c], size=(own.size, s[c]), dtype=np.int32)
        own.setflags(write=False)
        idx.setflags(write=False)
        owners.append(own)
        samples.append(idx)
    draws.setflags(write=False)
    return BootstrapPlan(sizes=s, n_boot=nb, seed=sd, cluster_draws=draws,
                         owners=tuple(owners), sample_draws=tuple(samples))


# ------------------------------------------------------------------------ the bootstrap

ClusterKwargs = Union[None, Mapping[str, object], Sequence[Mapping[str, object]]]


class ClusterBootstrap:
    """One hierarchical cluster-bootstrap plan and the statistics evaluated on it.

    Build one per run and pass every statistic of every (d, l) cell through it: the
    ``(n_boot,)`` arrays it returns are then aligned (entry ``b`` of each is computed on the
    same resample), so contrasts and ratios between cells are formed elementwise.

    Parameters
    ----------
    sizes : sequence of int >= 1
        Held-out samples per cluster (backbone).
    n_boot : int >= 1
    seed : int >= 0
    level : float in (0, 1)
        Level of :meth:`interval`.

    Attributes
    ----------
    plan : BootstrapPlan
    sizes, n_boot, seed, level, n_clusters

    Examples
    --------
    >>> bs = ClusterBootstrap([4, 6], n_boot=200, seed=1)
    >>> x = [np.array([0.0, 1, 2, 3]), np.arange(6.0)]
    >>> dist = bs.mean_of_cluster_stat(lambda v: v.mean(axis=1), x)
    >>> dist.shape, bs.point_estimate(lambda v: v.mean(axis=1), x)
    ((200,), 2.0)
    """

    def __init__(self, sizes: Sequence[int], n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95):
        self.level = _check_level(level)
        self.plan = cluster_bootstrap_indices(sizes, n_boot, seed)

    @property
    def sizes(self) -> Tuple[int, ...]:
        return self.plan.sizes

    @property
    def n_boot(self) -> int:
        return self.plan.n_boot

    @property
    def seed(self) -> int:
        return self.plan.seed

    @property
    def n_clusters(self) -> int:
        return self.plan.n_clusters

    def __repr__(self) -> str:
        return (f"ClusterBootstrap(sizes={list(self.sizes)}, n_boot={self.n_boot}, "
                f"seed={self.seed}, level={self.level})")

    @cached_property
    def _counts(self) -> Tuple[np.ndarray, ...]:
        """Per cluster, (K_c, sizes[c]) float64: occurrences of each sample in each copy."""
        out = []
        for idx, n in zip(self.plan.sample_draws, self.sizes):
            k = idx.shape[0]
            flat = (idx + (np.arange(k, dtype=np.intp) * n)[:, None]).ravel()
            cnt = np.bincount(flat, minlength=k * n).reshape(k, n).astype(float)
            cnt.setflags(write=False)
            out.append(cnt)
        return tuple(out)

    def _inputs(self, arrays_per_cluster) -> list:
        """Validate: per input, a list over clusters of finite (sizes[c],) float arrays."""
        if not arrays_per_cluster:
            raise ValueError("no input arrays given")
        out = []
        for i, per_cluster in enumerate(arrays_per_cluster):
            if isinstance(per_cluster, np.ndarray) and per_cluster.ndim < 2:
                raise ValueError(f"input {i} must give one array per cluster "
                                 f"({self.n_clusters}), got a single array")
            per_cluster = list(per_cluster)
            if len(per_cluster) != self.n_clusters:
                raise ValueError(f"input {i} has arrays for {len(per_cluster)} clusters, "
                                 f"the plan has {self.n_clusters}")
            arrs = []
            for c, a in enumerate(per_cluster):
                v = _vector(a, f"input {i}, cluster {c}")
                if v.size != self.sizes[c]:
                    raise ValueError(f"input {i}, cluster {c} has {v.size} samples, the plan "
                                     f"has sizes[{c}] = {self.sizes[c]}")
                arrs.append(v)
            out.append(arrs)
        return out

    def _kwargs(self, cluster_kwargs: ClusterKwargs) -> list:
        if cluster_kwargs is None:
            return [{}] * self.n_clusters
        if isinstance(cluster_kwargs, Mapping):
            return [dict(cluster_kwargs)] * self.n_clusters
        kw = list(cluster_kwargs)
        if len(kw) != self.n_clusters or not all(isinstance(k, Mapping) for k in kw):
            raise ValueError(f"cluster_kwargs must be one mapping or {self.n_clusters} "
                             f"mappings (one per cluster), got {cluster_kwargs!r}")
        return [dict(k) for k in kw]

    def mean_of_cluster_stat(self, fn: Callable[..., np.ndarray], *arrays_per_cluster,
                             cluster_kwargs: ClusterKwargs = None) -> np.ndarray:
        """Bootstrap distribution of the mean over clusters of a per-cluster statistic.

        Parameters
        ----------
        fn : callable
            Row-wise statistic: ``fn(*resampled, **kwargs)`` gets, per cluster ``c``, one
            2-D array ``(K_c, sizes[c])`` per input (row ``k``: the values of copy ``k``
            of the cluster, see :class:`BootstrapPlan`; ``K_c`` is about ``n_boot`` but
            varies by cluster, so ``fn`` must work for any number of rows) and returns
            ``(K_c,)`` values; NaN (or inf) marks a row where it is undefined. The
            statistic must be symmetric in the samples (a function of the multiset of a
            row's values), as every statistic here is.
        *arrays_per_cluster : one per input of ``fn``
            A sequence over clusters of finite 1-D arrays of length ``sizes[c]`` (e.g.
            predictions and targets of one backbone on its held-out samples).
        cluster_kwargs : mapping, or sequence of one mapping per cluster, optional
            Keyword arguments of ``fn``, the same for every cluster or per cluster (e.g.
            ``[{"train_mean": m_c} for m_c in means]`` with :func:`raw_gain_rows`).

        Returns
        -------
        (n_boot,) float array: per resample, the mean of the finite cluster statistics of
        its ``C`` drawn copies (with multiplicity); NaN where none is finite.

        Notes
        -----
        A ``fn`` with a ``weighted`` attribute (:func:`pearson_rows`,
        :func:`raw_gain_rows`, :func:`r2_injected_rows`; not a lambda or partial around
        them) is evaluated as ``fn.weighted(counts, *arrays_c, **kwargs)`` from the
        ``(K_c, sizes[c])`` sample counts of the plan, one matrix product instead of
        gathering every resample; the result is the same up to rounding.
        """
        data = self._inputs(arrays_per_cluster)
        kwargs = self._kwargs(cluster_kwargs)
        weighted = getattr(fn, "weighted", None)
        nb = self.n_boot
        sums = np.zeros(nb)
        counts = np.zeros(nb)
        for c in range(self.n_clusters):
            idx = self.plan.sample_draws[c]
            k = idx.shape[0]
            if k == 0:
                continue
            cluster_arrays = [d[c] for d in data]
            if weighted is not None:
                vals = weighted(self._counts[c], *cluster_arrays, **kwargs[c])
            else:
                vals = fn(*[np.take(a, idx) for a in cluster_arrays], **kwargs[c])
            vals = np.asarray(vals, dtype=float)
            if vals.shape != (k,):
                raise ValueError(f"the statistic returned shape {vals.shape} for cluster {c}, "
                                 f"expected ({k},): one value per resampled row")
            ok = np.isfinite(vals)
            own = self.plan.owners[c][ok]
            sums += np.bincount(own, weights=vals[ok], minlength=nb)
            counts += np.bincount(own, minlength=nb)
        out = np.full(nb, np.nan)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out

    def point_estimate(self, fn: Callable[..., np.ndarray], *arrays_per_cluster,
                       cluster_kwargs: ClusterKwargs = None) -> Optional[float]:
        """Mean over clusters of the per-cluster statistic of the original samples.

        ``fn``, inputs and ``cluster_kwargs`` as in :meth:`mean_of_cluster_stat`; ``fn``
        gets one row per input, ``(1, sizes[c])``. Clusters where the statistic is
        undefined (NaN) are left out; ``None`` when it is undefined on every cluster.
        """
        data = self._inputs(arrays_per_cluster)
        kwargs = self._kwargs(cluster_kwargs)
        vals = []
        for c in range(self.n_clusters):
            v = np.asarray(fn(*[d[c][None, :] for d in data], **kwargs[c]), dtype=float)
            if v.shape != (1,):
                raise ValueError(f"the statistic returned shape {v.shape} for cluster {c}, "
                                 "expected (1,): one value per row")
            vals.append(v[0])
        vals = np.asarray(vals)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if vals.size else None

    def interval(self, values: np.ndarray) -> Interval:
        """Percentile interval at ``level`` of a ``(n_boot,)`` bootstrap distribution.

        See :func:`percentile_interval`: bounds of the finite values, ``None`` bounds when
        fewer than half of the values are finite.
        """
        v = np.asarray(values, dtype=float)
        if v.shape != (self.n_boot,):
            raise ValueError(f"values must have shape ({self.n_boot},) (one per resample of "
                             f"this plan), got {v.shape}")
        return percentile_interval(v, self.level)
