r"""The hierarchical cluster bootstrap and its percentile intervals (private).

Clusters are backbones; cluster ``c`` has ``sizes[c]`` held-out samples. One resample
draws ``C = len(sizes)`` clusters with replacement and then, independently for every
drawn copy, ``sizes[c]`` samples of that cluster with replacement. A statistic of a
resample is the mean, over the ``C`` drawn copies (with their multiplicity), of the
per-cluster statistic of each copy's samples.

Point estimates follow one rule everywhere (:meth:`ClusterBootstrap.point_estimate`):
the mean over clusters of the per-cluster statistic of the original samples, clusters
where it is undefined left out, ``None`` where it is undefined on every cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ...checks import check_int
from ._checks import _check_level, _vector
from ._metrics import Statistic

__all__ = ["Interval", "percentile_interval", "BootstrapPlan", "cluster_bootstrap_indices",
           "ClusterBootstrap"]


# ------------------------------------------------------------------------------ intervals

class Interval(NamedTuple):
    """A confidence interval ``(low, high)``; both bounds ``None`` when it is undefined.

    The one shape of an interval between the typed records (a named pair: it unpacks as
    ``low, high = ci`` and a record holding it still becomes JSON as ``[low, high]``);
    :meth:`to_list` and :meth:`from_list` are its file form.

    >>> Interval.from_list([0.1, 0.3]), Interval.from_list(None)
    (Interval(low=0.1, high=0.3), None)
    """

    low: Optional[float]
    high: Optional[float]

    @property
    def defined(self) -> bool:
        """Both bounds are known."""
        return self.low is not None and self.high is not None

    def to_list(self) -> list:
        """``[low, high]`` (JSON form; ``None`` stays ``None``)."""
        return [self.low, self.high]

    @classmethod
    def from_list(cls, pair) -> Optional["Interval"]:
        """An interval from its JSON form ``[low, high]`` (or an ``Interval``); ``None`` for
        ``None`` (no interval: the quantity was not measured)."""
        if pair is None:
            return None
        low, high = pair
        return cls(low, high)


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
    nb = check_int("n_boot", n_boot, 1)
    sd = check_int("seed", seed, 0)
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
StatLike = Union[Statistic, Callable[..., np.ndarray]]


def _forms(stat: StatLike):
    """``(rows, weighted)`` of a :class:`Statistic`, ``(stat, None)`` of a plain callable."""
    if isinstance(stat, Statistic):
        return stat.rows, stat.weighted
    if not callable(stat):
        raise ValueError(f"stat must be a Statistic or a row-wise callable, got {stat!r}")
    return stat, None


class ClusterBootstrap:
    """One hierarchical cluster-bootstrap plan and the statistics evaluated on it.

    Build one per run and pass every statistic of every (d, l) cell through it: the
    ``(n_boot,)`` arrays it returns are then aligned (entry ``b`` of each is computed on the
    same resample), so a contrast between cells is formed elementwise and gets its
    percentile interval from :meth:`interval`. A ratio between cells (the cliff ratio)
    gets the Fieller confidence set of
    :func:`~empirical.diagnostic.statistics.ratio_confidence_set` from the aligned
    distributions of its numerator and denominator (``level=self.level``), not a
    percentile interval of per-resample ratios. Point estimates come from
    :meth:`point_estimate`, the one rule for every statistic.

    Parameters
    ----------
    sizes, n_boot, seed
        The resampling plan (:func:`cluster_bootstrap_indices`).
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

    def mean_of_cluster_stat(self, stat: StatLike, *arrays_per_cluster,
                             cluster_kwargs: ClusterKwargs = None) -> np.ndarray:
        """Bootstrap distribution of the mean over clusters of a per-cluster statistic.

        Parameters
        ----------
        stat : Statistic or callable
            The per-cluster statistic. A :class:`~._metrics.Statistic` with a ``weighted``
            form (:data:`PEARSON`, :data:`RAW_GAIN`, :data:`R2_INJECTED`) is evaluated as
            ``stat.weighted(counts, *arrays_c, **kwargs)`` from the ``(K_c, sizes[c])``
            sample counts of the plan: one matrix product instead of gathering every
            resample, equal to the gather path up to rounding (about 1e-12). Any other
            ``Statistic`` (``weighted=None``) or plain row-wise callable takes the gather
            path: ``rows(*resampled, **kwargs)`` gets, per cluster ``c``, one 2-D array
            ``(K_c, sizes[c])`` per input (row ``k``: the values of copy ``k`` of the
            cluster, see :class:`BootstrapPlan`; ``K_c`` is about ``n_boot`` but varies by
            cluster, so it must work for any number of rows) and returns ``(K_c,)``
            values; NaN (or inf) marks a row where it is undefined. The statistic must be
            symmetric in the samples (a function of the multiset of a row's values), as
            every statistic here is.
        *arrays_per_cluster : one per input of the statistic
            A sequence over clusters of finite 1-D arrays of length ``sizes[c]`` (e.g.
            predictions and targets of one backbone on its held-out samples).
        cluster_kwargs : mapping, or sequence of one mapping per cluster, optional
            Keyword arguments of the statistic, the same for every cluster or per cluster
            (e.g. ``[{"train_mean": m_c} for m_c in means]`` with :data:`RAW_GAIN`).

        Returns
        -------
        (n_boot,) float array: per resample, the mean of the finite cluster statistics of
        its ``C`` drawn copies (with multiplicity); NaN where none is finite.

        Raises
        ------
        ValueError
            Inputs that do not match the plan (see :meth:`point_estimate`), or a
            statistic that does not return one value per resampled row.

        Examples
        --------
        >>> from empirical.diagnostic.statistics import PEARSON, pearson_rows
        >>> bs = ClusterBootstrap([30, 40], n_boot=50, seed=0)
        >>> rng = np.random.default_rng(0)
        >>> x = [rng.normal(size=30), rng.normal(size=40)]
        >>> y = [v + rng.normal(size=v.size) for v in x]
        >>> fast = bs.mean_of_cluster_stat(PEARSON, x, y)          # weighted path
        >>> slow = bs.mean_of_cluster_stat(pearson_rows, x, y)     # gather path
        >>> bool(np.allclose(fast, slow, rtol=0, atol=1e-12))
        True
        """
        rows, weighted = _forms(stat)
        data = self._inputs(arrays_per_cluster)
        kwargs = self._kwargs(cluster_kwargs)
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
                vals = rows(*[np.take(a, idx) for a in cluster_arrays], **kwargs[c])
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

    def point_estimate(self, stat: StatLike, *arrays_per_cluster,
                       cluster_kwargs: ClusterKwargs = None) -> Optional[float]:
        """The point estimate: mean over clusters of the per-cluster statistic.

        This is the one rule for point estimates of the diagnostic, used for every
        statistic and every cell (``docs/method.md`` §2.7): evaluate the statistic on each
        cluster's original samples, leave out the clusters where it is undefined (NaN or
        inf), and average the rest with equal weight per cluster; ``None`` when it is
        undefined on every cluster. It is the statistic of the resample that draws every
        cluster once with all of its samples, so it matches
        :meth:`mean_of_cluster_stat`.

        Parameters
        ----------
        stat, *arrays_per_cluster, cluster_kwargs
            As in :meth:`mean_of_cluster_stat`. The row-wise form is used (``stat.rows``
            for a :class:`~._metrics.Statistic`, the callable itself otherwise), with one
            row per input, ``(1, sizes[c])``.

        Returns
        -------
        float or None

        Raises
        ------
        ValueError
            An input with arrays for another number of clusters, of another length than
            ``sizes[c]``, or with NaN/inf; a statistic that does not return shape ``(1,)``.

        Examples
        --------
        >>> from empirical.diagnostic.statistics import RAW_GAIN
        >>> bs = ClusterBootstrap([2, 2], n_boot=5, seed=0)
        >>> bs.point_estimate(RAW_GAIN, [np.array([1.0, 2.0]), np.zeros(2)],
        ...                   [np.array([1.0, 3.0]), np.ones(2)],
        ...                   cluster_kwargs={"train_mean": 0.0})
        2.25
        """
        rows, _ = _forms(stat)
        data = self._inputs(arrays_per_cluster)
        kwargs = self._kwargs(cluster_kwargs)
        vals = []
        for c in range(self.n_clusters):
            v = np.asarray(rows(*[d[c][None, :] for d in data], **kwargs[c]), dtype=float)
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
        fewer than half of the values are finite. For a contrast ``b - a`` of two aligned
        distributions; for a ratio use
        :func:`~empirical.diagnostic.statistics.ratio_confidence_set`.
        """
        v = np.asarray(values, dtype=float)
        if v.shape != (self.n_boot,):
            raise ValueError(f"values must have shape ({self.n_boot},) (one per resample of "
                             f"this plan), got {v.shape}")
        return percentile_interval(v, self.level)
