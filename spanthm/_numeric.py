r"""Floating-point cross-checks: a sanity check of the exact methods, never a proof.

:func:`numeric_spectrum`
    Least-squares projection of sampled random elements of ``P`` onto an orthonormal basis of
    each :math:`H_l`, reporting singular values. The samples are the nodes of a product
    quadrature on the sphere (Gauss-Legendre in :math:`z = \cos\theta`, uniform in
    :math:`\phi`) that integrates every product involved exactly, so the least-squares
    projection is the :math:`L^2` projection up to rounding; the numerical rank of each
    projection matrix (singular values above ``tol`` times the largest one over all ``l``)
    estimates :math:`\dim(P \cap H_l)`. Orthonormal harmonics come from
    :func:`scipy.special.sph_harm_y` (complex, Condon-Shortley phase) as
    :math:`Y_l^0`, :math:`\sqrt2\,\mathrm{Re}\,Y_l^m`, :math:`\sqrt2\,\mathrm{Im}\,Y_l^m`,
    ``m > 0``; any orthonormal basis gives the same ranks.

    Random elements of ``P``: :math:`\sum_j a_j \prod_{i \le j} f_{ij}` over the allowed
    product sizes ``j``, each :math:`f_{ij}` a random combination of all features. Products of
    generic linear forms span every symmetric power, so ``K`` such elements are generic in
    ``P``; ``K = 2 (max(S) d + 2) + 5`` exceeds every :math:`2l+1` checked.

:func:`rotation_overlap`
    The rotation corollary (docs/method.md §1.3) measured: the fraction of a degree-``l`` target's
    Haar norm that degree-``d`` polynomials of SO(3)-equivariant features of degree ``<= L``
    can explain, by exact quadrature over SO(3) with e3nn's Wigner matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from . import _validate

__all__ = ["NumericSpectrum", "sphere_quadrature", "real_harmonics_numeric", "numeric_spectrum",
           "rotation_overlap"]


@dataclass
class NumericSpectrum:
    """Result of :func:`numeric_spectrum`.

    ``dims[l]``: numerical rank; ``singular_values[l]``: all singular values of the
    projection matrix (descending); ``scale``: the largest singular value over all ``l``;
    ``tol``: relative threshold used; ``gap``: the smallest retained singular value divided
    by the largest discarded one over all ``l`` (``inf`` when nothing was discarded).
    """

    features: tuple
    d: int
    exactly: bool
    dims: Dict[int, int]
    singular_values: Dict[int, List[float]] = field(default_factory=dict)
    scale: float = 0.0
    tol: float = 1e-9
    gap: float = float("inf")
    seed: int = 0

    @property
    def degrees(self) -> List[int]:
        return sorted(l for l, n in self.dims.items() if n)


def sphere_quadrature(degree: int):
    """Nodes ``(theta, phi)`` and weights (summing to 1) exact for polynomials of ``degree``.

    Gauss-Legendre in ``cos(theta)`` with ``degree // 2 + 1`` nodes, ``degree + 1`` uniform
    azimuths.
    """
    n_z = degree // 2 + 1
    n_phi = degree + 1
    z, wz = np.polynomial.legendre.leggauss(n_z)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    theta = np.arccos(z)
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    ww = np.outer(wz / 2.0, np.full(n_phi, 1.0 / n_phi))
    return tt.ravel(), pp.ravel(), ww.ravel()


def real_harmonics_numeric(l: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Orthonormal (``"integral"``) real basis of :math:`H_l` at the points, shape ``(2l+1, n)``."""
    from scipy.special import sph_harm_y

    rows = [np.real(sph_harm_y(l, 0, theta, phi))]
    for m in range(1, l + 1):
        y = sph_harm_y(l, m, theta, phi)
        rows.append(np.sqrt(2.0) * np.real(y))
        rows.append(np.sqrt(2.0) * np.imag(y))
    return np.asarray(rows)


def numeric_spectrum(features, d: int, exactly: bool = False, seed: int = 0,
                     tol: float = 1e-9) -> NumericSpectrum:
    """Numerical ``dim(P ∩ H_l)`` for ``l = 0 .. max(S) d + 2`` (see module docstring).

    Examples
    --------
    >>> numeric_spectrum({0, 1, 2}, 2).degrees
    [0, 1, 2, 3, 4]
    """
    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    top = max(features) * d + 2
    theta, phi, w = sphere_quadrature(d * max(features) + top)
    feats = np.concatenate([real_harmonics_numeric(k, theta, phi) for k in features])
    rng = np.random.default_rng(seed)
    K = 2 * top + 5
    sizes = [d] if exactly else list(range(d + 1))
    samples = np.zeros((K, theta.size))
    for i in range(K):
        for j in sizes:
            term = np.full(theta.size, rng.standard_normal())
            for _ in range(j):
                term = term * (rng.standard_normal(feats.shape[0]) @ feats)
            samples[i] += term
    result = NumericSpectrum(features, d, exactly, dims={}, tol=tol, seed=seed)
    svals: Dict[int, np.ndarray] = {}
    for l in range(top + 1):
        basis = real_harmonics_numeric(l, theta, phi)
        coeffs = (samples * w) @ basis.T  # (K, 2l+1): weighted least squares = L2 projection
        svals[l] = np.linalg.svd(coeffs, compute_uv=False)
    scale = max(float(s.max()) for s in svals.values())
    kept_min, dropped_max = np.inf, 0.0
    for l, s in svals.items():
        keep = s > tol * scale
        result.dims[l] = int(keep.sum())
        result.singular_values[l] = [float(v) for v in s]
        if keep.any():
            kept_min = min(kept_min, float(s[keep].min()))
        if (~keep).any():
            dropped_max = max(dropped_max, float(s[~keep].max()))
    result.scale = scale
    result.gap = kept_min / dropped_max if dropped_max > 0 else float("inf")
    return result


def rotation_overlap(L: int, d: int, l: int, channels: int = 2, seed: int = 0) -> float:
    r"""Fraction of a degree-``l`` rotation signal explained by degree-``d`` probes.

    Features: for each ``k <= L`` and each of ``channels`` random vectors :math:`v`, the
    components of :math:`D^k(R) v` (e3nn's real Wigner matrices), i.e. SO(3)-equivariant
    features of degree ``<= L`` of a configuration rotated by ``R``. Target:
    :math:`g(R) = c \cdot Y_l(R u_0)` for a random unit ``c`` and direction :math:`u_0`.
    Probes: ``10 + sum_{j <= dL} (2j+1)^2`` (the dimension of the span of
    the Wigner entries of degree ``<= dL``, plus a margin) random degree-``<= d`` polynomials of the
    features (constant included). Least squares
    truncates singular values below ``1e-9`` of the largest (rounding noise). Returns
    :math:`\|\mathrm{proj}\, g\|^2 / \|g\|^2` in :math:`L^2(SO(3), \text{Haar})`, by
    Gauss-Legendre x uniform quadrature over Euler angles exact for every product involved.
    By the rotation corollary it is 0 (to rounding) for ``l > dL``.
    """
    import torch
    from e3nn import o3

    L = _validate.degree_L(L)
    d = _validate.probe_degree(d)
    l = _validate.degree_L(l)
    previous = torch.get_default_dtype()
    # e3nn builds its so(3) generators in the default dtype: float32 would leave Wigner
    # matrices accurate to 1e-7 only, far above the rounding level this check resolves.
    torch.set_default_dtype(torch.float64)
    try:
        return _rotation_overlap(L, d, l, channels, seed, torch, o3)
    finally:
        torch.set_default_dtype(previous)


def _rotation_overlap(L, d, l, channels, seed, torch, o3) -> float:
    rng = np.random.default_rng(seed)
    band = max(2 * d * L, d * L + l)
    n_ang = band + 1
    n_beta = band // 2 + 1
    cb, wb = np.polynomial.legendre.leggauss(n_beta)
    ang = 2 * np.pi * np.arange(n_ang) / n_ang
    A, Bt, G = np.meshgrid(ang, np.arccos(cb), ang, indexing="ij")
    W = np.meshgrid(np.ones(n_ang), wb / 2, np.ones(n_ang), indexing="ij")[1] / n_ang**2
    alpha, beta, gamma = (torch.as_tensor(a.ravel(), dtype=torch.float64) for a in (A, Bt, G))
    w = W.ravel()
    feats = []
    for k in range(L + 1):
        D = o3.wigner_D(k, alpha, beta, gamma).numpy()  # (n, 2k+1, 2k+1)
        for _ in range(channels):
            feats.append(D @ rng.standard_normal(2 * k + 1))
    feats = np.concatenate(feats, axis=1)  # (n, F)
    u0 = torch.as_tensor(rng.standard_normal(3), dtype=torch.float64)
    R = o3.angles_to_matrix(alpha, beta, gamma)
    Y = o3.spherical_harmonics(l, R @ (u0 / u0.norm()), normalize=True).numpy()
    c = rng.standard_normal(2 * l + 1)
    g = Y @ (c / np.linalg.norm(c))
    K = sum((2 * j + 1) ** 2 for j in range(d * L + 1)) + 10
    probes = np.empty((feats.shape[0], K))
    for i in range(K):
        term = np.full(feats.shape[0], rng.standard_normal())
        for j in range(1, d + 1):
            prod = np.ones(feats.shape[0])
            for _ in range(j):
                prod = prod * (feats @ rng.standard_normal(feats.shape[1]))
            term = term + prod
        probes[:, i] = term
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(probes * sw[:, None], g * sw, rcond=1e-9)
    fitted = probes @ coef
    return float(np.sum(w * fitted**2) / np.sum(w * g**2))
