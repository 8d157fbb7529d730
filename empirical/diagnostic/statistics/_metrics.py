r"""Point statistics of the diagnostic, their row-wise forms, and :class:`Statistic` (private).

Each statistic comes in up to three forms:

* scalar (:func:`pearson`, :func:`raw_gain`, :func:`r2_injected`, :func:`cliff_ratio`):
  one probe on its held-out samples, checked inputs, ``None`` where undefined;
* row-wise (:func:`pearson_rows`, :func:`raw_gain_rows`, :func:`r2_injected_rows`,
  :func:`ratio_rows`): 2-D arrays ``(rows, n)``, one resample a row, NaN where undefined;
* weighted (count-based): ``weighted(counts, *arrays, **kwargs)`` with ``counts``
  ``(K, n)`` the occurrences of each of a cluster's ``n`` samples in each of ``K``
  resamples and ``arrays`` the cluster's original ``(n,)`` values; equal to the row-wise
  form of the resampled values up to rounding (about 1e-12), one matrix product instead
  of a gather of ``K x n`` values.

A :class:`Statistic` bundles the row-wise form with its optional weighted form, so the
fast path is chosen explicitly by passing the object (:data:`PEARSON`,
:data:`RAW_GAIN`, :data:`R2_INJECTED`) to
:meth:`~empirical.diagnostic.statistics.ClusterBootstrap.mean_of_cluster_stat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._checks import _finite_scalar, _pair, _positive_eps, _rows_pair

__all__ = ["CONSTANT_ULPS", "pearson", "raw_gain", "r2_injected", "cliff_ratio",
           "pearson_rows", "raw_gain_rows", "r2_injected_rows", "ratio_rows",
           "Statistic", "PEARSON", "RAW_GAIN", "R2_INJECTED"]

#: Values whose spread (max - min) is within this many ulps of their magnitude are
#: constant: a correlation computed from rounding noise would be a meaningless number.
CONSTANT_ULPS = 8

# Weighted (moment) path of Pearson: rows whose resampled variance falls below this
# fraction of the cluster's variance are recomputed exactly from their values.
_SMALL_VARIANCE = 1e-6


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
    report ``rho(d_L + 1)`` (with its interval) beside it, and give the ratio the Fieller
    confidence set of :func:`ratio_confidence_set` (``docs/method.md`` §2.7), not a
    percentile interval of per-resample ratios (:func:`ratio_rows`), which can exclude
    the point estimate when the denominator's distribution straddles 0.

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
        ``cluster_kwargs`` of ``ClusterBootstrap.mean_of_cluster_stat``, with
        :data:`RAW_GAIN`).

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
    A percentile interval of these ratios is not a valid interval for the ratio when the
    denominator is not clearly non-zero; use :func:`ratio_confidence_set`.

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
    """Count-based :func:`pearson_rows` (from resampled first and second moments)."""
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
    """Count-based :func:`raw_gain_rows`: resampled mean of the per-sample gain."""
    m = _finite_scalar(train_mean, "train_mean")
    g = (target - m) ** 2 - (target - pred) ** 2
    return counts @ g / pred.size


def _r2_injected_weighted(counts: np.ndarray, pred: np.ndarray, signal: np.ndarray,
                          eps: float) -> np.ndarray:
    """Count-based :func:`r2_injected_rows`: resampled mean of the squared error."""
    e = _positive_eps(eps)
    return 1.0 - counts @ ((pred - signal) ** 2) / (pred.size * e ** 2)


# ------------------------------------------------------------------------- Statistic

@dataclass(frozen=True)
class Statistic:
    """A per-cluster statistic: its row-wise form and, optionally, its count-based form.

    Parameters
    ----------
    name : str
        Short name (e.g. ``"pearson"``), for messages and reprs.
    rows : callable
        Row-wise form ``rows(*arrays, **kwargs) -> (K,)``: each of ``arrays`` is
        ``(K, n)``, one resample a row; NaN marks a row where the statistic is undefined.
    weighted : callable, optional
        Count-based form ``weighted(counts, *arrays, **kwargs) -> (K,)``: ``counts`` is
        ``(K, n)`` float64 (occurrences of each of the ``n`` samples in each of ``K``
        resamples, rows summing to ``n``), each of ``arrays`` the original ``(n,)``
        values. It must equal ``rows`` of the resampled values up to rounding. ``None``:
        no fast path, the bootstrap gathers the resampled values and calls ``rows``.

    Notes
    -----
    Calling a ``Statistic`` evaluates its row-wise form, so it can stand wherever a
    row-wise callable is expected. The statistic must be symmetric in the samples (a
    function of the multiset of a row's values), which is what makes the count-based
    form possible.

    Examples
    --------
    >>> PEARSON.weighted is not None, Statistic("mean", lambda v: v.mean(axis=1)).weighted
    (True, None)
    >>> float(RAW_GAIN(np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]]), train_mean=0.0)[0])
    4.5
    """

    name: str
    rows: Callable[..., np.ndarray]
    weighted: Optional[Callable[..., np.ndarray]] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not callable(self.rows):
            raise ValueError(f"rows of statistic {self.name!r} must be callable, "
                             f"got {self.rows!r}")
        if self.weighted is not None and not callable(self.weighted):
            raise ValueError(f"weighted of statistic {self.name!r} must be callable or None, "
                             f"got {self.weighted!r}")

    def __call__(self, *arrays, **kwargs) -> np.ndarray:
        """The row-wise form: ``self.rows(*arrays, **kwargs)``."""
        return self.rows(*arrays, **kwargs)


#: Pearson correlation (:func:`pearson_rows`), with its moment-based weighted form.
PEARSON = Statistic("pearson", pearson_rows, _pearson_weighted)
#: Raw gain (:func:`raw_gain_rows`; keyword ``train_mean``), with its weighted form.
RAW_GAIN = Statistic("raw_gain", raw_gain_rows, _raw_gain_weighted)
#: Injected-power R^2 (:func:`r2_injected_rows`; keyword ``eps``), with its weighted form.
R2_INJECTED = Statistic("r2_injected", r2_injected_rows, _r2_injected_weighted)
