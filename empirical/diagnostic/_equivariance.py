"""Equivariance, measured and used (docs/method.md §2.2, §2.13).

* :func:`wigner` and :func:`rotate_features`: the representation ``D(R)`` of an e3nn
  ``Irreps`` for a batch of orthogonal matrices, in float64 and without touching torch's
  process-wide default dtype (so worker threads may call them while others run models).
  Each degree's block is read off e3nn's own real spherical harmonics,
  ``Y_l(R x) = D_l(R) Y_l(x)`` on a fixed set of points, and the parity of each irrep is
  applied for an improper ``R`` as e3nn's ``Irreps.D_from_matrix`` does; a property test
  holds it equal to ``D_from_matrix`` (built in float64) to 1e-12.
* :func:`check_sample`: the configurations and orthogonal matrices of the equivariance
  check (:data:`CHECK_CONFIGURATIONS` configurations, each under
  :data:`CHECK_ROTATIONS` rotations and their roto-reflections), drawn from stream
  ``[seed, STREAMS["equivariance"], backbone index]``.
* :func:`equivariance_errors`: ``max |h(R x) - D(R) h(x)|`` over that sample, from
  features of the unrotated and the rotated configurations.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Tuple

import numpy as np
import torch
from e3nn import o3

from ..runtime import STREAMS, stream

__all__ = ["wigner", "rotate_features", "check_sample", "equivariance_errors",
           "CHECK_CONFIGURATIONS", "CHECK_ROTATIONS", "DERIVATION_CHECK_SAMPLES"]

#: Configurations of the equivariance check (each under :data:`CHECK_ROTATIONS`
#: rotations and as many roto-reflections).
CHECK_CONFIGURATIONS = 16
CHECK_ROTATIONS = 2
#: Derived samples the per-run check runs through the model (docs/method.md §2.13).
DERIVATION_CHECK_SAMPLES = 32


@lru_cache(maxsize=None)
def _points(l: int) -> Tuple[np.ndarray, np.ndarray]:
    """Fixed unit vectors (a Fibonacci sphere, ``4 (2l + 1)`` of them) and the
    pseudo-inverse of their degree-``l`` harmonics: ``D_l(R)^T = pinv(Y) Y(R x)``."""
    n = 4 * (2 * l + 1) + 8
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z * z)
    x = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    y = _harmonics(l, x)
    return x, np.linalg.pinv(y)


def _harmonics(l: int, x: np.ndarray) -> np.ndarray:
    """e3nn's real spherical harmonics of degree ``l`` (component normalization) of unit
    vectors ``x`` ``(..., 3)``, in float64."""
    t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    return o3.spherical_harmonics(l, t, normalize=False,
                                  normalization="component").numpy()


def wigner(l: int, R: np.ndarray) -> np.ndarray:
    """``D_l(R)`` ``(..., 2l+1, 2l+1)`` of proper rotations ``R`` ``(..., 3, 3)`` (float64),
    e3nn's convention: ``Y_l(x @ R.T) = Y_l(x) @ D_l(R).T``."""
    R = np.asarray(R, dtype=np.float64)
    if l == 0:
        return np.ones(R.shape[:-2] + (1, 1))
    x, pinv = _points(l)
    rotated = _harmonics(l, np.einsum("...ij,nj->...ni", R, x))    # (..., n, 2l+1)
    return np.swapaxes(pinv @ rotated, -1, -2)


def rotate_features(features: np.ndarray, irreps, R: np.ndarray) -> np.ndarray:
    """``D(R) h`` for every row: ``features`` ``(n, irreps.dim)``, ``R`` ``(n, 3, 3)``
    orthogonal (a roto-reflection multiplies an irrep of parity ``p`` by ``p``)."""
    irreps = o3.Irreps(irreps)
    features = np.asarray(features, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    det = np.sign(np.linalg.det(R))
    proper = det[:, None, None] * R
    out = np.empty_like(features)
    blocks: Dict[int, np.ndarray] = {}
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        if ir.l not in blocks:
            blocks[ir.l] = wigner(ir.l, proper)
        part = features[:, sl].reshape(len(features), mul, 2 * ir.l + 1)
        turned = np.einsum("nij,nmj->nmi", blocks[ir.l], part)
        if ir.p == -1:
            turned = turned * det[:, None, None]
        out[:, sl] = turned.reshape(len(features), -1)
    return out


def check_sample(n_configurations: int, seed: int, index: int,
                 configurations: int = CHECK_CONFIGURATIONS,
                 rotations: int = CHECK_ROTATIONS) -> Tuple[np.ndarray, np.ndarray]:
    """``(chosen configurations (m,), matrices (m, 1 + 2 * rotations, 3, 3))``: for each
    of ``m = min(configurations, n_configurations)`` configurations, the identity, then
    ``rotations`` Haar rotations, then their roto-reflections ``-R``."""
    from ._injection import haar_rotations

    rng = np.random.default_rng(stream(seed, STREAMS["equivariance"], index))
    m = min(int(configurations), int(n_configurations))
    chosen = np.sort(rng.choice(n_configurations, m, replace=False))
    turns = haar_rotations(m * rotations, int(rng.integers(2 ** 32))).reshape(
        m, rotations, 3, 3)
    eye = np.broadcast_to(np.eye(3), (m, 1, 3, 3))
    return chosen, np.concatenate([eye, turns, -turns], axis=1)


def equivariance_errors(features: np.ndarray, irreps, matrices: np.ndarray) -> Dict[str, float]:
    """``{"rotation", "reflection"}``: the largest ``|h(R x) - D(R) h(x)|`` over the
    sample, from ``features`` ``(m, k, irreps.dim)`` of every configuration under each of
    :func:`check_sample`'s ``k`` matrices (the identity first)."""
    m, k, dim = features.shape
    base = np.repeat(features[:, :1], k - 1, axis=1).reshape(-1, dim)
    turned = rotate_features(base, irreps, matrices[:, 1:].reshape(-1, 3, 3))
    err = np.abs(turned - features[:, 1:].reshape(-1, dim)).max(axis=1).reshape(m, k - 1)
    half = (k - 1) // 2
    return {"rotation": float(err[:, :half].max()), "reflection": float(err[:, half:].max())}
