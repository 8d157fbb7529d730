r"""The Spectral Prediction Network (SPN, DESIGN §2.6): reduction, monomials, fit.

An SPN of degree ``d`` reads the frozen features ``x`` of the marked atoms, reduces them
to ``k`` numbers ``z = W x`` and predicts :math:`\sum_{|\alpha| \le d} w_\alpha z^\alpha`
(every monomial of degree ``<= d``, the constant included).

Reductions (fitted on the training split only)
----------------------------------------------
* ``"irrep"`` (default): equivariance-respecting. For every degree ``l`` present, the
  ``(mul, 2l + 1)`` blocks of that degree (both atoms, both parities) are mixed over
  channels only, by the top eigenvectors of the rotation-invariant second-moment
  matrix :math:`C_l = E[X_l X_l^T]` (summed over the ``2l + 1`` components), so every
  reduced channel is again a whole degree-``l`` block; scalars (``l = 0``) are centred
  first. Width ``k``: ``m = k // sum_l (2l + 1)`` channels of every degree (at least 1),
  then the rest of ``k`` as one more channel per degree from the highest degree down while
  a whole block fits (:func:`channel_allocation`); the effective width ``k_eff <= k`` is
  recorded. The automatic width of the diagnostic is always a multiple of
  ``sum_l (2l + 1)`` (``m`` channels of every degree).
* ``"pca"``: plain PCA of the centred features, top ``k`` components. It splits the
  ``(2l + 1)``-blocks and ranks the high-variance scalars first; offered for comparison.

Each reduced channel is scaled to unit mean square per component.

Fits
----
* :func:`fit_ridge` (default): closed-form ridge regression on the standardized monomials
  (the constant is the unpenalized intercept), all targets at once from one
  eigendecomposition per fold. The penalty of each target is chosen by K-fold
  cross-validation with folds grouped by configuration (no configuration in two folds),
  from a grid relative to the number of samples, then refitted on all training samples.
* :func:`fit_trained`: the gradient-trained variant: the reduction ``W`` (per degree,
  initialized from the ``"irrep"`` reduction) and the coefficients are learned together by
  Adam on the mean squared error, with early stopping on a grouped validation part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from math import comb
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from e3nn import o3

__all__ = ["Reduction", "fit_reduction", "n_monomials", "monomial_exponents", "monomials",
           "RidgeFit", "fit_ridge", "fit_trained", "channels_per_degree",
           "channel_allocation",
           "LAMBDA_GRID"]

#: Ridge penalties, as multiples of the number of training samples (columns standardized).
LAMBDA_GRID = tuple(float(x) for x in np.logspace(-7, 2, 19))


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


@dataclass
class Reduction:
    """A fitted linear reduction ``x -> z`` (see the module docstring)."""

    method: str
    k: int                                   # effective width (columns of z)
    blocks: List[Tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    # irrep: (l, indices (mul, 2l+1), W (m, mul), scale (m,)); centre for l = 0 in `centre`
    centre: Optional[np.ndarray] = None      # pca: (D,), irrep: mean of the scalars (mul0,)
    components: Optional[np.ndarray] = None  # pca: (k, D)
    pca_scale: Optional[np.ndarray] = None   # pca: (k,)

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.method == "pca":
            return ((x - self.centre) @ self.components.T) / self.pca_scale
        parts = []
        for l, idx, W, scale in self.blocks:
            xl = x[:, idx]                                   # (n, mul, 2l+1)
            if l == 0:
                xl = xl - self.centre[None, :, None]
            z = np.einsum("ji,nim->njm", W, xl) / scale[None, :, None]
            parts.append(z.reshape(len(x), -1))
        return np.concatenate(parts, axis=1)


def fit_reduction(x: np.ndarray, irreps: o3.Irreps, k: int, method: str = "irrep") -> Reduction:
    """Fit the ``"irrep"`` or ``"pca"`` reduction on training features ``x`` ``(n, D)``."""
    x = np.asarray(x, dtype=np.float64)
    irreps = o3.Irreps(irreps)
    if x.ndim != 2 or x.shape[1] != irreps.dim:
        raise ValueError(f"features must have shape (n, {irreps.dim}), got {x.shape}")
    if k < 1:
        raise ValueError(f"SPN width k must be >= 1, got {k}")
    if method == "pca":
        k = min(int(k), x.shape[1], x.shape[0])
        centre = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - centre, full_matrices=False)
        scale = s[:k] / np.sqrt(len(x))
        scale = np.where(scale > 0, scale, 1.0)
        return Reduction("pca", k, centre=centre, components=vt[:k], pca_scale=scale)
    if method != "irrep":
        raise ValueError(f"reduction must be 'irrep' or 'pca', got {method!r}")
    alloc = channel_allocation(irreps, k)
    blocks, centre, width = [], None, 0
    for l, idx in _degree_indices(irreps).items():
        xl = x[:, idx]
        if l == 0:
            centre = xl[:, :, 0].mean(axis=0)
            xl = xl - centre[None, :, None]
        cov = np.einsum("nim,njm->ij", xl, xl) / len(x)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][:min(alloc[l], len(vals))]
        W = vecs[:, order].T
        scale = np.sqrt(np.maximum(vals[order], 0.0) / (2 * l + 1))
        scale = np.where(scale > 1e-300, scale, 1.0)
        blocks.append((l, idx, W, scale))
        width += len(order) * (2 * l + 1)
    return Reduction("irrep", width, blocks=blocks, centre=centre)


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
    """Fold number of every sample; all samples of one group share a fold."""
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
              seed: int = 0, lambdas: Sequence[float] = LAMBDA_GRID) -> RidgeFit:
    """Ridge fit of every column of ``y`` ``(n, T)`` on monomials ``phi`` ``(n, M)``.

    Columns are standardized with training statistics (constant columns left at scale
    1); the intercept is the target mean (unpenalized). The penalty ``lam * n`` of each
    target minimizes the ``folds``-fold cross-validated MSE (folds grouped by ``groups``,
    shuffled by ``seed``); the fit on all samples uses it."""
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = len(phi)
    fold = group_folds(np.asarray(groups), folds, seed)
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


class _TrainedSPN(torch.nn.Module):
    """Learned per-degree channel mixing (equivariant) and monomial coefficients."""

    def __init__(self, reduction: Reduction, d: int, n_targets: int = 1):
        super().__init__()
        self.ls = [l for l, *_ in reduction.blocks]
        self.idx = [torch.as_tensor(idx) for _, idx, _, _ in reduction.blocks]
        self.W = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.as_tensor(W / s[:, None])) for _, _, W, s in reduction.blocks])
        self.register_buffer("centre", torch.as_tensor(reduction.centre if reduction.centre is not None
                                                       else np.zeros(1)))
        k = reduction.k
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


def fit_trained(x_train: np.ndarray, y_train: np.ndarray, groups: np.ndarray,
                reduction: Reduction, d: int, seed: int = 0, epochs: int = 400,
                lr: float = 1e-2, weight_decay: float = 1e-4, patience: int = 40,
                val_fraction: float = 0.2):
    """Gradient-trained SPN; returns a function ``x -> prediction`` (same shape as ``y``).

    ``y_train`` is ``(n,)`` or ``(n, T)``: several targets share the learned reduction and
    each has its own coefficients (one training for all ``l``, as the ridge shares one
    factorization). Full-batch Adam on the mean squared error of the standardized targets;
    the reduction starts from ``reduction`` (``"irrep"`` only) and the coefficients from
    zero; the weights of the epoch with the lowest validation error (a grouped
    ``val_fraction`` of the configurations) are kept. Deterministic for a given ``seed``."""
    if reduction.method != "irrep":
        raise ValueError("the trained SPN learns a per-degree (irrep) reduction")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        fold = group_folds(np.asarray(groups), max(2, int(round(1 / val_fraction))), seed)
        tr, va = fold != 0, fold == 0
        y_arr = np.asarray(y_train, dtype=np.float64)
        single = y_arr.ndim == 1
        y_arr = y_arr[:, None] if single else y_arr
        y_mean = y_arr[tr].mean(axis=0)
        y_std = y_arr[tr].std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        model = _TrainedSPN(reduction, d, n_targets=y_arr.shape[1])
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

    def predict(x_new: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.as_tensor(np.asarray(x_new, dtype=np.float64)))
        out = out.numpy() * y_std + y_mean
        return out[:, 0] if single else out

    return predict
