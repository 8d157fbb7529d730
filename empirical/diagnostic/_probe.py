r"""The Spectral Prediction Network (SPN, ``docs/method.md`` §2.6) as a scikit-learn estimator.

An SPN of degree ``d`` reads the frozen features ``x`` of the marked atoms, reduces them
to ``k`` numbers ``z = W x`` and predicts :math:`\sum_{|\alpha| \le d} w_\alpha z^\alpha`
(every monomial of degree ``<= d``, the constant included). The way to fit one is
:class:`SpectralProbe`::

    probe = SpectralProbe(d=2, k=36, irreps=irreps).fit(X_train, y_train, groups_train)
    probe.predict(X_test)              # (n,) for a 1-D y, else (n, T)
    probe.correlation(X_test, y_test)  # held-out Pearson rho per target
    probe.score(X_test, y_test)        # R^2 (scikit-learn's, averaged over targets)

``X`` is ``(n, D)``, one feature vector per sample, or ``(n, m, D)``, the *ring form*: m
atoms per sample that share one reduction (fitted on the pooled ``(n * m, D)`` rows) and
whose polynomial values are summed, i.e. the ridge runs on the monomials of every atom's
``z`` summed over the m atoms (the C5 ring probe; the C5 axis probe is the one-atom ring
``X[:, None, :]``, see :class:`SpectralProbe`). ``y`` is ``(n,)`` or ``(n, T)``, every
target from the same factorization; ``groups`` ``(n,)`` are the configuration ids that
cross-validation never splits.

Reductions (fitted on the training split only; transformers of their own)
-------------------------------------------------------------------------
* :class:`IrrepReduction` (``reduction="irrep"``, default): equivariance-respecting. For
  every degree ``l`` present, the ``(mul, 2l + 1)`` blocks of that degree (both atoms, both
  parities) are mixed over channels only, by the top eigenvectors of the
  rotation-invariant second-moment matrix :math:`C_l = E[X_l X_l^T]` (summed over the
  ``2l + 1`` components), so every reduced channel is again a whole degree-``l`` block;
  scalars (``l = 0``) are centred first. Width ``k``: ``m = k // sum_l (2l + 1)`` channels
  of every degree (at least 1), then the rest of ``k`` as one more channel per degree from
  the highest degree down while a whole block fits (:func:`channel_allocation`); the
  effective width ``k_ <= k`` is recorded. The automatic width of the diagnostic is always
  a multiple of ``sum_l (2l + 1)`` (``m`` channels of every degree).
* :class:`PCAReduction` (``reduction="pca"``): plain PCA of the centred features, top
  ``k`` components. It splits the ``(2l + 1)``-blocks and ranks the high-variance scalars
  first; offered for comparison.

Each reduced channel is scaled to unit mean square per component.

Solvers
-------
* ``solver="ridge"`` (default, :func:`fit_ridge`): closed-form ridge regression on the
  standardized monomials (the constant is the unpenalized intercept), all targets at once
  from one eigendecomposition per fold. The penalty of each target is chosen by K-fold
  cross-validation with folds grouped by configuration (:func:`group_folds`: no
  configuration in two folds, the assignment shuffled by ``seed``), from
  :data:`LAMBDA_GRID` (multiples of the number of samples), then refitted on all training
  samples.
* ``solver="trained"``: the gradient-trained variant: the reduction ``W`` (per degree,
  initialized from the ``"irrep"`` reduction) and the coefficients are learned together by
  Adam on the mean squared error, with early stopping on a grouped validation part.

Why not scikit-learn's ``Ridge``/``RidgeCV``/``GroupKFold``/``Pipeline``
-----------------------------------------------------------------------
The estimators follow scikit-learn's conventions (``BaseEstimator``, ``clone``,
``get_params``, fitted attributes ending in ``_``, ``NotFittedError``), but the numerics
are this module's own, on purpose:

* ``RidgeCV`` with grouped folds (``cv=`` an iterable) refits every fold for every alpha;
  with per-target alphas (``alpha_per_target``) it needs its efficient leave-one-out mode,
  which cannot group. Here one eigendecomposition of the standardized Gram matrix per fold
  serves all 19 penalties and all targets (14 in the diagnostic), which is the cost of
  the probe; the columns are standardized with each fold's own training statistics.
* ``GroupKFold`` assigns groups to folds by size, unseeded (and ``GroupKFold(shuffle=True)``
  draws differently); it would change which penalty is chosen and so the published
  numbers. :func:`group_folds` is the seeded assignment all results were produced with.
* ``Pipeline.fit`` does not route ``groups`` to a step without metadata routing, and the
  ring form (reduce per atom, sum the monomials over atoms) is not a chain of
  ``(n, D) -> (n, D')`` steps. :class:`SpectralProbe` composes reduction -> monomials ->
  ridge itself, with exactly the arithmetic of the hand-assembled functions, so a result
  is bit-for-bit the same either way.

The low-level building blocks (:func:`monomials`, :func:`n_monomials`,
:func:`monomial_exponents`, :func:`fit_ridge`, :func:`group_folds`,
:func:`channel_allocation`, :func:`channels_per_degree`, :data:`LAMBDA_GRID`) stay public;
a reduction is fitted on its own by :func:`make_reduction` (``make_reduction(method, irreps,
k).fit(X)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement
from math import comb
from numbers import Real
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from e3nn import o3
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..checks import check_int
from .statistics import pearson

__all__ = ["SpectralProbe", "IrrepReduction", "PCAReduction", "make_reduction",
           "n_monomials", "monomial_exponents", "monomials", "RidgeFit", "fit_ridge",
           "group_folds", "channels_per_degree", "channel_allocation", "LAMBDA_GRID"]

#: Ridge penalties, as multiples of the number of training samples (columns standardized).
LAMBDA_GRID = tuple(float(x) for x in np.logspace(-7, 2, 19))

#: Reductions and solvers by name.
REDUCTIONS = ("irrep", "pca")
SOLVERS = ("ridge", "trained")


# -- validation helpers ---------------------------------------------------------------------

def _check_width(k) -> int:
    return check_int("SPN width k", k, 1)


def _as_float_array(name: str, a, ndims: Tuple[int, ...], shape_text: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim not in ndims:
        raise ValueError(f"{name} must have shape {shape_text}, got shape {a.shape}")
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf")
    return a


# -- reductions -------------------------------------------------------------------------------

def _degree_indices(irreps: o3.Irreps) -> Dict[int, np.ndarray]:
    """For every degree ``l``: column indices ``(mul_total, 2l + 1)`` of its blocks."""
    out: Dict[int, list] = {}
    offset = 0
    for mul, ir in irreps:
        d = ir.dim
        idx = offset + np.arange(mul * d).reshape(mul, d)
        out.setdefault(ir.l, []).append(idx)
        offset += mul * d
    return {l: np.concatenate(v, axis=0) for l, v in sorted(out.items())}


def channels_per_degree(irreps: o3.Irreps, k: int) -> int:
    """``m = max(1, k // sum_l (2l + 1))`` over the degrees present in ``irreps``."""
    width = sum(2 * l + 1 for l in {ir.l for _, ir in o3.Irreps(irreps)})
    return max(1, int(k) // width)


def channel_allocation(irreps: o3.Irreps, k: int) -> Dict[int, int]:
    """Channels per degree for width ``k``: :func:`channels_per_degree` of every degree,
    then the rest of the width, one more channel per degree from the highest degree down,
    as long as a whole ``(2l + 1)``-block still fits (``k = 16`` over degrees 0, 1, 2: two
    channels of l = 2 and of l = 0, one of l = 1, 15 dimensions)."""
    degrees = sorted({ir.l for _, ir in o3.Irreps(irreps)})
    m = channels_per_degree(irreps, k)
    alloc = {l: m for l in degrees}
    budget = int(k) - m * sum(2 * l + 1 for l in degrees)
    for l in reversed(degrees):
        if budget >= 2 * l + 1:
            alloc[l] += 1
            budget -= 2 * l + 1
    return alloc


def _irrep_transform(x: np.ndarray, blocks, centre) -> np.ndarray:
    parts = []
    for l, idx, W, scale in blocks:
        xl = x[:, idx]                                   # (n, mul, 2l+1)
        if l == 0:
            xl = xl - centre[None, :, None]
        # z[n, j, m] = sum_i W[j, i] xl[n, i, m], as one BLAS product
        z = np.tensordot(xl, W, axes=([1], [1])).transpose(0, 2, 1) / scale[None, :, None]
        parts.append(z.reshape(len(x), -1))
    return np.concatenate(parts, axis=1)


def _pca_transform(x: np.ndarray, centre, components, scale) -> np.ndarray:
    return ((x - centre) @ components.T) / scale


def _check_rows(est, X) -> np.ndarray:
    """``X`` as a float ``(n, D)`` array with the ``D`` seen in ``fit``."""
    X = _as_float_array("X", X, (2,), f"(n, {est.n_features_in_})")
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"X must have shape (n, {est.n_features_in_}) (the features seen in "
                         f"fit), got shape {X.shape}")
    return X


class IrrepReduction(TransformerMixin, BaseEstimator):
    """Per-degree (equivariance-respecting) reduction of features with layout ``irreps``
    to width ``k`` (see the module docstring).

    Parameters
    ----------
    irreps : the feature layout (``o3.Irreps`` or its string), ``D = irreps.dim`` columns.
    k : requested width (``>= 1``); whole ``(2l + 1)``-blocks only, so the effective width
        ``k_`` may be smaller (:func:`channel_allocation`).

    Fitted attributes
    -----------------
    k_ : effective width (columns of the output).
    allocation_ : ``{l: channels}`` kept per degree.
    blocks_ : ``[(l, indices (mul, 2l+1), W (m, mul), scale (m,))]`` per degree.
    centre_ : mean of the scalar channels ``(mul_0,)`` (``None`` without scalars).
    n_features_in_ : ``D``.
    """

    def __init__(self, irreps, k):
        self.irreps = irreps
        self.k = k

    def fit(self, X, y=None):
        if self.irreps is None:
            raise ValueError("the irrep reduction needs irreps (the feature layout)")
        irreps = o3.Irreps(self.irreps)
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != irreps.dim:
            raise ValueError(f"features must have shape (n, {irreps.dim}), got {x.shape}")
        k = _check_width(self.k)
        alloc = channel_allocation(irreps, k)
        blocks, centre, width, kept = [], None, 0, {}
        for l, idx in _degree_indices(irreps).items():
            xl = x[:, idx]
            if l == 0:
                centre = xl[:, :, 0].mean(axis=0)
                xl = xl - centre[None, :, None]
            # C_l = sum over samples and the 2l+1 components, as one BLAS product
            xt = xl.transpose(1, 0, 2).reshape(xl.shape[1], -1)
            cov = (xt @ xt.T) / len(x)
            vals, vecs = np.linalg.eigh(cov)
            order = np.argsort(vals)[::-1][:min(alloc[l], len(vals))]
            W = vecs[:, order].T
            scale = np.sqrt(np.maximum(vals[order], 0.0) / (2 * l + 1))
            scale = np.where(scale > 1e-300, scale, 1.0)
            blocks.append((l, idx, W, scale))
            kept[l] = len(order)
            width += len(order) * (2 * l + 1)
        self.blocks_, self.centre_, self.k_, self.allocation_ = blocks, centre, width, kept
        self.n_features_in_ = irreps.dim
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        return _irrep_transform(_check_rows(self, X), self.blocks_, self.centre_)


class PCAReduction(TransformerMixin, BaseEstimator):
    """PCA of the centred features to width ``k`` (``min(k, D, n)`` components), each
    scaled to unit mean square.

    Fitted attributes
    -----------------
    k_ : effective width. centre_ : ``(D,)`` feature means. components_ : ``(k_, D)``.
    scale_ : ``(k_,)`` root mean square of each component. n_features_in_ : ``D``.
    """

    def __init__(self, k):
        self.k = k

    def fit(self, X, y=None):
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"features must have shape (n, D) with n >= 1, got {x.shape}")
        k = min(_check_width(self.k), x.shape[1], x.shape[0])
        centre = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - centre, full_matrices=False)
        scale = s[:k] / np.sqrt(len(x))
        scale = np.where(scale > 0, scale, 1.0)
        self.k_, self.centre_, self.components_, self.scale_ = k, centre, vt[:k], scale
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        return _pca_transform(_check_rows(self, X), self.centre_, self.components_, self.scale_)


def make_reduction(method: str, irreps, k: int) -> Union[IrrepReduction, PCAReduction]:
    """An unfitted reduction by name: ``"irrep"`` -> :class:`IrrepReduction` ``(irreps, k)``,
    ``"pca"`` -> :class:`PCAReduction` ``(k)``."""
    if method == "irrep":
        return IrrepReduction(irreps, k)
    if method == "pca":
        return PCAReduction(k)
    raise ValueError(f"reduction must be 'irrep' or 'pca', got {method!r}")


# -- monomials and the ridge ------------------------------------------------------------------

def n_monomials(k: int, d: int) -> int:
    """Number of monomials of degree ``<= d`` in ``k`` variables: ``C(k + d, d)``."""
    return comb(k + d, d)


def monomial_exponents(k: int, d: int) -> List[Tuple[int, ...]]:
    """The monomials as sorted variable-index tuples, degree by degree (``()`` first)."""
    out: List[Tuple[int, ...]] = []
    for degree in range(d + 1):
        out.extend(combinations_with_replacement(range(k), degree))
    return out


def monomials(z: np.ndarray, d: int) -> np.ndarray:
    """All monomials of degree ``<= d`` of the columns of ``z`` ``(n, k)``: ``(n, C(k+d, d))``
    in the order of :func:`monomial_exponents` (column 0 is the constant 1).

    Degree ``t`` is built from degree ``t - 1``: the lexicographic tuples of degree
    ``t - 1``, each extended by every index ``j >= `` its last one, are again in
    lexicographic order."""
    z = np.asarray(z, dtype=np.float64)
    n, k = z.shape
    cols = [np.ones((n, 1))]
    prev, prev_last = np.ones((n, 1)), [0]
    for _ in range(d):
        new, new_last = [], []
        for i, last in enumerate(prev_last):
            new.append(prev[:, i:i + 1] * z[:, last:])
            new_last.extend(range(last, k))
        prev, prev_last = np.concatenate(new, axis=1), new_last
        cols.append(prev)
    return np.concatenate(cols, axis=1)


def group_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number of every sample; all samples of one group share a fold (the groups are
    dealt round-robin to the folds in an order shuffled by ``seed``)."""
    uniq = np.unique(groups)
    if len(uniq) < folds:
        raise ValueError(f"cross-validation needs at least {folds} configurations, got {len(uniq)}")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = np.empty(len(uniq), dtype=int)
    fold_of[perm] = np.arange(len(uniq)) % folds
    return fold_of[np.searchsorted(uniq, groups)]


@dataclass
class RidgeFit:
    """A ridge fit of several targets on the same monomials."""

    mean: np.ndarray        # (M-1,) column means (the constant column excluded)
    std: np.ndarray         # (M-1,)
    intercept: np.ndarray   # (T,)
    coef: np.ndarray        # (M-1, T) on standardized columns
    lambdas: np.ndarray     # (T,) chosen penalty (multiple of n)
    cv_mse: np.ndarray      # (len(LAMBDA_GRID), T)

    def predict(self, phi: np.ndarray) -> np.ndarray:
        a = (phi[:, 1:] - self.mean) / self.std
        return a @ self.coef + self.intercept


def _standardize(phi: np.ndarray):
    """Column means and scales of the non-constant monomials (column 0 is the constant);
    columns without spread keep scale 1."""
    mean = phi[:, 1:].mean(axis=0)
    std = phi[:, 1:].std(axis=0)
    std = np.where(std > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0))), std, 1.0)
    return mean, std


def _eigen_solve(a: np.ndarray, y: np.ndarray):
    """``(s, v, b)``: eigenpairs of ``a^T a`` and ``b = v^T a^T y``, so that the ridge
    coefficients for penalty ``lam`` are ``v @ (b / (s + lam))`` (one factorization for
    every penalty and every target)."""
    s, v = np.linalg.eigh(a.T @ a)
    return np.maximum(s, 0.0), v, v.T @ (a.T @ y)


def fit_ridge(phi: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 3,
              seed: int = 0, lambdas: Sequence[float] = LAMBDA_GRID,
              start: Optional[int] = None) -> RidgeFit:
    """Ridge fit of every column of ``y`` ``(n, T)`` on monomials ``phi`` ``(n, M)``.

    Columns are standardized with training statistics (constant columns left at scale
    1); the intercept is the target mean (unpenalized). The penalty ``lam * n`` of each
    target minimizes the ``folds``-fold cross-validated MSE (folds grouped by ``groups``,
    shuffled by ``seed``); the fit on all samples uses it.

    ``start=None`` searches the whole grid (one eigendecomposition per fold gives every
    penalty). ``start=i`` (one target only) walks the grid from ``lambdas[i]`` downhill
    to the first local minimum of the cross-validated MSE, one Cholesky solve per fold and
    penalty tried: the same penalty as the whole grid whenever the MSE is unimodal in the
    penalty (the usual ridge curve), several times cheaper for wide probes (the refit
    spread, docs/method.md §2.6). Penalties not tried have ``cv_mse`` ``inf``."""
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = len(phi)
    fold = group_folds(np.asarray(groups), folds, seed)
    if start is not None:
        return _fit_ridge_walk(phi, y, fold, folds, lambdas, int(start))
    cv = np.zeros((len(lambdas), y.shape[1]))
    for f in range(folds):
        tr, va = fold != f, fold == f
        mean, std = _standardize(phi[tr])
        a = (phi[tr, 1:] - mean) / std
        ym = y[tr].mean(axis=0)
        s, v, b = _eigen_solve(a, y[tr] - ym)
        p = ((phi[va, 1:] - mean) / std) @ v
        ntr = int(tr.sum())
        for i, lam in enumerate(lambdas):
            pred = p @ (b / (s + lam * ntr)[:, None]) + ym
            cv[i] += ((pred - y[va]) ** 2).sum(axis=0)
    cv /= n
    best = np.argmin(cv, axis=0)
    mean, std = _standardize(phi)
    a = (phi[:, 1:] - mean) / std
    ym = y.mean(axis=0)
    s, v, b = _eigen_solve(a, y - ym)
    lam = np.array([lambdas[i] for i in best])
    coef = v @ (b / (s[:, None] + lam[None, :] * n))
    return RidgeFit(mean=mean, std=std, intercept=ym, coef=coef, lambdas=lam, cv_mse=cv)


def _moment_standardized(s_raw: np.ndarray, r_raw: np.ndarray, n: int):
    """The standardized Gram matrix ``a^T a``, ``a^T (y - mean y)``, the column means and
    scales and the target mean of ``n`` rows, from their raw moments ``s_raw = phi^T phi``
    and ``r_raw = phi^T y`` (``phi``'s column 0 the constant, so row 0 holds the sums).
    Scales as :func:`_standardize`: a column whose variance is round-off of its mean
    square keeps scale 1."""
    mean = s_raw[0, 1:] / n
    ym = r_raw[0] / n
    cov = s_raw[1:, 1:] - n * np.outer(mean, mean)
    var = np.maximum(np.diag(cov) / n, 0.0)
    flat = var <= 1e-10 * np.maximum(np.diag(s_raw)[1:] / n, 1e-300)
    std = np.where(flat, 1.0, np.sqrt(var))
    cov[flat, :] = 0.0
    cov[:, flat] = 0.0
    g = cov / np.outer(std, std)
    rhs = (r_raw[1:] - n * np.outer(mean, ym)) / std[:, None]
    rhs[flat] = 0.0
    return g, rhs, mean, std, ym


def _cholesky_coef(g: np.ndarray, rhs: np.ndarray, lam_n: float) -> np.ndarray:
    """Ridge coefficients ``(g + lam_n I)^-1 rhs`` by a Cholesky solve."""
    h = g.copy()
    h[np.diag_indices_from(h)] += lam_n
    return cho_solve(cho_factor(h, lower=True, check_finite=False), rhs, check_finite=False)


def _fit_ridge_walk(phi: np.ndarray, y: np.ndarray, fold: np.ndarray, folds: int,
                    lambdas: Sequence[float], start: int) -> RidgeFit:
    """:func:`fit_ridge` with ``start``: the penalty by a downhill walk on the grid.

    One pass over the samples gives every fold's raw moments; a fold's training moments
    are the total minus its own, standardized in closed form (:func:`_moment_standardized`),
    and each penalty tried costs one Cholesky solve per fold."""
    if y.shape[1] != 1:
        raise ValueError(f"the penalty walk fits one target, got {y.shape[1]}")
    if not 0 <= start < len(lambdas):
        raise ValueError(f"start must index the {len(lambdas)} penalties, got {start}")
    n = len(phi)
    # the fit is invariant to shifting a column (each fold subtracts its own means), so
    # the columns are first centred on their overall means: raw moments then lose no
    # digits to a large mean
    shift = phi[:, 1:].mean(axis=0)
    phi = np.concatenate([phi[:, :1], phi[:, 1:] - shift], axis=1)
    blocks = [(phi[fold == f], y[fold == f]) for f in range(folds)]
    moments = [(b.T @ b, b.T @ t) for b, t in blocks]
    s_all = sum(m[0] for m in moments)
    r_all = sum(m[1] for m in moments)
    parts = []
    for (s_f, r_f), (b, t) in zip(moments, blocks):
        g, rhs, mean, std, ym = _moment_standardized(s_all - s_f, r_all - r_f, n - len(b))
        parts.append((g, rhs, mean, std, ym, b[:, 1:], t, n - len(b)))
    cv = np.full((len(lambdas), 1), np.inf)

    def mse(i: int) -> float:
        if not np.isfinite(cv[i, 0]):
            total = 0.0
            for g, rhs, mean, std, ym, x_va, y_va, ntr in parts:
                w = _cholesky_coef(g, rhs, lambdas[i] * ntr) / std[:, None]
                total += float(((x_va @ w - mean @ w + ym - y_va) ** 2).sum())
            cv[i, 0] = total / n
        return cv[i, 0]

    i = start
    while True:
        around = [j for j in (i - 1, i + 1) if 0 <= j < len(lambdas)]
        best = min(around, key=mse, default=i)
        if mse(best) >= mse(i):
            break
        i = best
    g, rhs, mean, std, ym = _moment_standardized(s_all, r_all, n)
    coef = _cholesky_coef(g, rhs, lambdas[i] * n)
    return RidgeFit(mean=mean + shift, std=std, intercept=ym, coef=coef,
                    lambdas=np.array([lambdas[i]]), cv_mse=cv)


# -- the gradient-trained variant -------------------------------------------------------------

class _TrainedSPN(torch.nn.Module):
    """Learned per-degree channel mixing (equivariant) and monomial coefficients."""

    def __init__(self, blocks, centre, k: int, d: int, n_targets: int = 1):
        super().__init__()
        self.ls = [l for l, *_ in blocks]
        self.idx = [torch.as_tensor(idx) for _, idx, _, _ in blocks]
        self.W = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.as_tensor(W / s[:, None])) for _, _, W, s in blocks])
        self.register_buffer("centre", torch.as_tensor(centre if centre is not None
                                                       else np.zeros(1)))
        self.terms = monomial_exponents(k, d)
        self.coef = torch.nn.Parameter(torch.zeros(len(self.terms), n_targets,
                                                   dtype=torch.float64))
        # index table (M, d) into [z, 1]: padding with the constant column k
        table = np.full((len(self.terms), max(d, 1)), k)
        for i, t in enumerate(self.terms):
            table[i, :len(t)] = t
        self.register_buffer("table", torch.as_tensor(table))

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for l, idx, W in zip(self.ls, self.idx, self.W):
            xl = x[:, idx]
            if l == 0:
                xl = xl - self.centre[None, :, None]
            parts.append(torch.einsum("ji,nim->njm", W, xl).reshape(len(x), -1))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.reduce(x)
        z1 = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
        phi = z1[:, self.table].prod(dim=-1)
        return phi @ self.coef


@dataclass
class _TrainedFit:
    """The trained SPN and the target standardization it was trained on."""

    model: _TrainedSPN
    y_mean: np.ndarray
    y_std: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(n, T)`` predictions for features ``x`` ``(n, D)``."""
        with torch.no_grad():
            out = self.model(torch.as_tensor(np.asarray(x, dtype=np.float64)))
        return out.numpy() * self.y_std + self.y_mean


def _train_spn(x_train: np.ndarray, y_train: np.ndarray, groups: np.ndarray, blocks, centre,
               k: int, d: int, seed: int, epochs: int, lr: float, weight_decay: float,
               patience: int, val_fraction: float) -> _TrainedFit:
    """Train the SPN on ``y_train`` ``(n, T)``: several targets share the learned
    reduction and each has its own coefficients (one training for all ``l``, as the ridge
    shares one factorization). Full-batch Adam on the mean squared error of the
    standardized targets; the reduction starts from the fitted ``"irrep"`` reduction
    (``blocks``, ``centre``) and the coefficients from zero; the weights of the epoch with
    the lowest validation error (a grouped ``val_fraction`` of the configurations) are
    kept. Deterministic for a given ``seed`` (torch's global generator is restored)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        fold = group_folds(np.asarray(groups), max(2, int(round(1 / val_fraction))), seed)
        tr, va = fold != 0, fold == 0
        y_arr = np.asarray(y_train, dtype=np.float64)
        y_mean = y_arr[tr].mean(axis=0)
        y_std = y_arr[tr].std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        model = _TrainedSPN(blocks, centre, k, d, n_targets=y_arr.shape[1])
        x = torch.as_tensor(np.asarray(x_train, dtype=np.float64))
        y = torch.as_tensor((y_arr - y_mean) / y_std)
        tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        best, best_state, wait = np.inf, None, 0
        for _ in range(epochs):
            opt.zero_grad()
            pred = model(x)
            loss = ((pred[tr_t] - y[tr_t]) ** 2).mean()
            loss.backward()
            opt.step()
            with torch.no_grad():
                val = float(((model(x)[va_t] - y[va_t]) ** 2).mean())
            if val < best - 1e-9:
                best, wait = val, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                wait += 1
                if wait >= patience:
                    break
        model.load_state_dict(best_state)
    finally:
        torch.random.set_rng_state(gen_state)
    return _TrainedFit(model=model, y_mean=y_mean, y_std=y_std)


# -- the estimator ----------------------------------------------------------------------------

class SpectralProbe(RegressorMixin, BaseEstimator):
    """The Spectral Prediction Network of degree ``d`` and width ``k`` (module docstring).

    Parameters
    ----------
    d : polynomial degree (``>= 1``): all monomials of degree ``<= d`` of the reduced
        features, the constant included.
    k : requested reduction width (``>= 1``); ``None``: two channels of every degree of
        ``irreps`` (``2 * sum_l (2l + 1)``). The effective width is ``k_``.
    irreps : feature layout of one atom's (or one sample's) ``D`` columns; required by the
        ``"irrep"`` reduction (and by ``k=None``).
    reduction : ``"irrep"`` (:class:`IrrepReduction`) or ``"pca"`` (:class:`PCAReduction`).
    solver : ``"ridge"`` (closed form, :func:`fit_ridge`) or ``"trained"`` (Adam, irrep
        reduction and 2-D ``X`` only).
    folds : grouped cross-validation folds of the ridge (``>= 2``).
    seed : all randomness: the fold assignment and, for ``"trained"``, torch's seed and the
        validation split.
    lambdas : the ridge's penalty grid, multiples of the number of samples.
    lambda_start : ``None`` (default): the penalty minimizes the cross-validated MSE over the
        whole grid; an index into ``lambdas`` (one target only): a downhill walk on the grid
        from there (:func:`fit_ridge`'s ``start``; the refit spread's cheaper search).
    epochs, lr, weight_decay, patience, val_fraction : the ``"trained"`` solver's settings.

    Fitted attributes
    -----------------
    reduction_ : the fitted :class:`IrrepReduction` or :class:`PCAReduction`.
    k_ : effective width. n_monomials_ : ``C(k_ + d, d)``.
    n_features_in_ : ``D`` (the last axis of ``X``). n_targets_ : ``T`` (1 for 1-D ``y``).
    x_ndim_, y_ndim_ : 2 or 3 (ring form), 1 or 2: the forms ``predict`` accepts/returns.
    ridge_ : the :class:`RidgeFit` (``solver="ridge"``), with
    lambdas_ : ``(T,)`` chosen penalty per target (multiple of ``n``) and
    cv_mse_ : ``(len(lambdas), T)`` cross-validated MSE of every penalty (``"ridge"`` only).
    trained_ : the trained network and its target scaling (``solver="trained"`` only).

    Notes
    -----
    ``fit(X, y, groups)`` with ``X`` ``(n, D)`` (``solver="ridge"``) is, bit for bit,
    ``fit_ridge(monomials(make_reduction(reduction, irreps, k).fit(X).transform(X), d), y,
    groups, folds, seed, lambdas)``; with ``X`` ``(n, m, D)`` (the ring form) the reduction
    is fitted on ``X.reshape(n * m, D)``, ``z = transform(...).reshape(n, m, k_)`` and the
    ridge runs on ``sum(monomials(z[:, j], d) for j in range(m))``, made C-contiguous
    (:meth:`_features`).

    Memory layout is part of "bit for bit": the final refit's column means (numpy sums a
    contiguous axis pairwise, a strided one row by row) and its Gram matrix differ in the
    last bits between a C- and an F-ordered monomial matrix. The 2-D form keeps the layout
    :func:`monomials` gives (F-ordered for the irrep reduction); the ring form is
    C-ordered, the same as monomials computed on all samples and then sliced by rows (a
    2-D ``X`` given as the one-atom ring ``X[:, None, :]`` therefore fits the C-ordered
    way). The diagnostic and the C5 axis probe use the 2-D form, the C5 ring probe the
    ring form (:mod:`empirical.calibration`, docs/method.md §3).
    """

    def __init__(self, d=2, k=None, irreps=None, reduction="irrep", solver="ridge", folds=3,
                 seed=0, lambdas=LAMBDA_GRID, epochs=400, lr=1e-2, weight_decay=1e-4,
                 patience=40, val_fraction=0.2, lambda_start=None):
        self.d = d
        self.k = k
        self.irreps = irreps
        self.reduction = reduction
        self.solver = solver
        self.folds = folds
        self.seed = seed
        self.lambdas = lambdas
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.lambda_start = lambda_start

    # -- helpers --
    def _width(self) -> int:
        if self.k is not None:
            return _check_width(self.k)
        if self.irreps is None:
            raise ValueError("k=None (two channels of every degree) needs irreps; give k")
        return 2 * sum(2 * l + 1 for l in {ir.l for _, ir in o3.Irreps(self.irreps)})

    def _check_params(self) -> int:
        check_int("degree d", self.d, 1)
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'irrep' or 'pca', got {self.reduction!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be 'ridge' or 'trained', got {self.solver!r}")
        if self.solver == "trained" and self.reduction != "irrep":
            raise ValueError("solver='trained' learns a per-degree (irrep) reduction; "
                             "reduction='pca' is not supported with it")
        if self.reduction == "irrep" and self.irreps is None:
            raise ValueError("reduction='irrep' needs irreps (the feature layout)")
        if self.solver == "ridge":
            check_int("folds", self.folds, 2)
            lam = np.asarray(self.lambdas, dtype=np.float64)
            if lam.ndim != 1 or len(lam) == 0 or not np.isfinite(lam).all() or (lam < 0).any():
                raise ValueError("lambdas must be a non-empty sequence of finite penalties >= 0")
            if self.lambda_start is not None:
                check_int("lambda_start", self.lambda_start, 0, len(lam) - 1)
        else:
            check_int("epochs", self.epochs, 1)
            check_int("patience", self.patience, 1)
            if not (isinstance(self.val_fraction, Real) and 0 < self.val_fraction < 1):
                raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        return self._width()

    def _check_X(self, X, fitting: bool) -> np.ndarray:
        X = _as_float_array("X", X, (2, 3), "(n, D) or (n, m, D) (ring form)")
        if fitting:
            return X
        if X.ndim != self.x_ndim_:
            form = "(n, D)" if self.x_ndim_ == 2 else "(n, m, D) (ring form)"
            raise ValueError(f"X must have shape {form} as in fit, got shape {X.shape}")
        if X.shape[-1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} features on its last axis "
                             f"(as in fit), got shape {X.shape}")
        return X

    def _features(self, X: np.ndarray) -> np.ndarray:
        """The monomials of ``X`` (ring form: summed over the atoms, C-ordered)."""
        if X.ndim == 2:
            return monomials(self.reduction_.transform(X), self.d)
        n, m, D = X.shape
        z = self.reduction_.transform(X.reshape(-1, D)).reshape(n, m, -1)
        return np.ascontiguousarray(sum(monomials(z[:, j], self.d) for j in range(m)))

    # -- the estimator API --
    def fit(self, X, y, groups=None):
        """Fit on features ``X`` ``(n, D)`` or ``(n, m, D)``, targets ``y`` ``(n,)`` or
        ``(n, T)`` and configuration ids ``groups`` ``(n,)`` (default: every sample its own
        configuration). Returns ``self``."""
        k = self._check_params()
        X = self._check_X(X, fitting=True)
        n = len(X)
        y = _as_float_array("y", y, (1, 2), "(n,) or (n, T)")
        if len(y) != n:
            raise ValueError(f"y has {len(y)} rows but X has {n} samples")
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError("y has no targets (shape (n, 0))")
        groups = np.arange(n) if groups is None else np.asarray(groups)
        if groups.ndim != 1 or len(groups) != n:
            raise ValueError(f"groups must have shape ({n},) (one configuration id per "
                             f"sample), got shape {groups.shape}")
        n_groups = len(np.unique(groups))
        if self.solver == "ridge":
            need, what = int(self.folds), f"folds={self.folds}"
        else:
            need = max(2, int(round(1 / self.val_fraction)))
            what = f"val_fraction={self.val_fraction} ({need} validation folds)"
        if n_groups < need:
            raise ValueError(f"groups: {n_groups} configurations are fewer than the {need} "
                             f"folds of {what}; cross-validation needs at least {need}")
        if X.ndim == 3 and self.solver == "trained":
            raise ValueError("the ring form (3-D X) is fitted by solver='ridge' only")
        rows = X.reshape(-1, X.shape[-1]) if X.ndim == 3 else X
        if self.reduction == "irrep" and rows.shape[1] != o3.Irreps(self.irreps).dim:
            raise ValueError(f"X has {rows.shape[1]} features on its last axis but irreps "
                             f"{o3.Irreps(self.irreps)} has {o3.Irreps(self.irreps).dim}")
        for name in ("ridge_", "lambdas_", "cv_mse_", "trained_"):
            self.__dict__.pop(name, None)
        self.reduction_ = make_reduction(self.reduction, self.irreps, k).fit(rows)
        self.k_ = int(self.reduction_.k_)
        self.n_monomials_ = n_monomials(self.k_, int(self.d))
        self.n_features_in_ = rows.shape[1]
        self.x_ndim_ = X.ndim
        self.n_targets_ = 1 if y.ndim == 1 else y.shape[1]
        self.y_ndim_ = y.ndim
        if self.solver == "ridge":
            fit = fit_ridge(self._features(X), y, groups, folds=self.folds, seed=self.seed,
                            lambdas=self.lambdas, start=self.lambda_start)
            self.ridge_, self.lambdas_, self.cv_mse_ = fit, fit.lambdas, fit.cv_mse
        else:
            red = self.reduction_
            self.trained_ = _train_spn(X, y[:, None] if y.ndim == 1 else y, groups,
                                       red.blocks_, red.centre_, red.k_, int(self.d),
                                       self.seed, self.epochs, self.lr, self.weight_decay,
                                       self.patience, self.val_fraction)
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions ``(n,)`` (fitted on a 1-D ``y``) or ``(n, T)``."""
        check_is_fitted(self)
        X = self._check_X(X, fitting=False)
        if hasattr(self, "ridge_"):
            pred = self.ridge_.predict(self._features(X))
        else:
            pred = self.trained_.predict(X)
        return pred[:, 0] if self.y_ndim_ == 1 else pred

    def correlation(self, X, y) -> Union[Optional[float], List[Optional[float]]]:
        """Held-out Pearson rho of the predictions with ``y``: one value for a probe fitted
        on a 1-D ``y``, else a list with one per target; ``None`` where undefined (a
        constant prediction or target, see :func:`.statistics.pearson`)."""
        pred = self.predict(X)
        y = _as_float_array("y", y, (pred.ndim,), str(pred.shape))
        if y.shape != pred.shape:
            raise ValueError(f"y must have shape {pred.shape} (as the predictions), "
                             f"got shape {y.shape}")
        if pred.ndim == 1:
            return pearson(pred, y)
        return [pearson(pred[:, t], y[:, t]) for t in range(pred.shape[1])]
