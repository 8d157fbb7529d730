r"""Marked direction, Haar-random orientations and the injected signal (docs/method.md §2.3-§2.5).

Conventions
-----------
* Marked direction :math:`u(X) = (r_b - r_a) / |r_b - r_a|` for the marked atom pair
  ``(a, b)`` (0-based atom indices). The shipped aspirin marks the carboxylic-acid C=O,
  atoms ``(6, 7)`` = C7, O8 (``dataset.metadata["marked_bond"]``).
* Orientations: ``scipy.spatial.transform.Rotation.random`` (Haar measure on SO(3)), one
  per sample, from an explicit seed. A rotated configuration is ``positions @ R.T``.
* Signal: :math:`s_l(X) = \sum_m c_m Y_l^m(u(X))` with e3nn's real spherical harmonics in
  ``"component"`` normalization (:math:`\sum_m Y_l^m(u)^2 = 2l + 1`, so every component
  has mean square 1 over the sphere) and ``c`` a seeded unit vector of :math:`R^{2l+1}`.
  Hence :math:`E[s_l^2] = |c|^2 = 1` exactly for a uniformly distributed ``u``, which the
  Haar rotations make it. ``l = 0`` gives the constant ``c_0 = +-1``.
* Injection: :math:`E_{inj} = E + \varepsilon s_l`, :math:`F_{inj} = F - \varepsilon
  \nabla s_l`; energies in eV, forces in eV/A, :math:`\varepsilon` in eV.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from ..data import Dataset
from ..runtime import STREAMS

__all__ = ["marked_atoms", "marked_direction", "haar_rotations", "signal_coefficients",
           "signal", "signal_gradient", "inject"]

def marked_atoms(dataset: Dataset, marked: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The marked pair ``(a, b)``: ``marked`` if given, else the dataset's
    ``metadata["marked_bond"]["atoms"]``. Raises ``ValueError`` for a pair that is not two
    distinct atoms of the dataset, or atoms that coincide in some frame."""
    if marked is None:
        bond = dataset.metadata.get("marked_bond")
        if not bond or "atoms" not in bond:
            raise ValueError("the dataset names no marked bond (metadata 'marked_bond'): "
                             "give the marked atoms explicitly, e.g. --marked 6 7")
        marked = bond["atoms"]
    marked = list(marked)
    if len(marked) != 2:
        raise ValueError(f"the marked pair must be two atom indices, got {marked}")
    if any(isinstance(x, (bool, np.bool_)) for x in marked):
        raise ValueError(f"marked atoms must be integers, got {marked}")
    try:
        a, b = (int(x) for x in marked)
    except (TypeError, ValueError):
        raise ValueError(f"marked atoms must be integers, got {marked}") from None
    if a != marked[0] or b != marked[1]:
        raise ValueError(f"marked atoms must be integers, got {marked}")
    n = dataset.n_atoms
    for x in (a, b):
        if not 0 <= x < n:
            raise ValueError(f"marked atom {x} does not exist: the dataset has {n} atoms "
                             f"(indices 0..{n - 1})")
    if a == b:
        raise ValueError(f"the marked atoms must differ, got ({a}, {b})")
    dist = np.linalg.norm(dataset.positions[:, b] - dataset.positions[:, a], axis=-1)
    if np.min(dist) < 1e-6:
        frame = int(np.argmin(dist))
        raise ValueError(f"marked atoms {a} and {b} coincide in frame {frame} "
                         f"(distance {dist[frame]:.2e} A): the marked direction is undefined")
    return a, b


def marked_direction(positions: np.ndarray, a: int, b: int) -> np.ndarray:
    """Unit vectors ``(r_b - r_a) / |r_b - r_a|``; ``positions`` ``(..., atoms, 3)``."""
    v = positions[..., b, :] - positions[..., a, :]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def haar_rotations(n: int, seed: int) -> np.ndarray:
    """``n`` Haar-random rotation matrices ``(n, 3, 3)`` (scipy), from ``seed``."""
    if n < 1:
        raise ValueError(f"need at least one rotation, got {n}")
    return Rotation.random(n, random_state=np.random.default_rng(seed)).as_matrix()


def signal_coefficients(l: int, seed: int) -> np.ndarray:
    """The unit vector ``c`` of :math:`s_l`, shape ``(2l + 1,)``: seeded by ``(seed, l)``,
    so every degree has its own direction and adding degrees changes none of them."""
    if l < 0:
        raise ValueError(f"degree l must be >= 0, got {l}")
    rng = np.random.default_rng([seed, STREAMS["coefficients"], l])
    c = rng.standard_normal(2 * l + 1)
    return c / np.linalg.norm(c)


def _sh(l: int, u: torch.Tensor) -> torch.Tensor:
    return o3.spherical_harmonics(l, u, normalize=True, normalization="component")


def signal(l: int, directions: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """:math:`s_l(u) = c \\cdot Y_l(u)` for unit vectors ``directions`` ``(n, 3)``; float64."""
    u = torch.tensor(np.asarray(directions, dtype=np.float64))
    y = _sh(l, u).numpy()
    return y @ np.asarray(coefficients, dtype=np.float64)


def signal_gradient(l: int, positions: np.ndarray, a: int, b: int,
                    coefficients: np.ndarray) -> np.ndarray:
    """:math:`\\nabla s_l` with respect to all positions, ``(n, atoms, 3)`` in 1/A (autograd
    through e3nn's harmonics in float64); only atoms ``a`` and ``b`` are non-zero, and they
    are opposite (translation invariance)."""
    if l == 0:                      # s_0 is constant
        return np.zeros(np.shape(positions))
    pos = torch.tensor(np.asarray(positions, dtype=np.float64), requires_grad=True)
    v = pos[..., b, :] - pos[..., a, :]
    s = _sh(l, v) @ torch.as_tensor(np.asarray(coefficients, dtype=np.float64))
    (grad,) = torch.autograd.grad(s.sum(), pos)
    return grad.numpy()


def inject(dataset: Dataset, l: int, eps: float, seed: int = 0,
           marked: Optional[Sequence[int]] = None) -> Dataset:
    """A copy of ``dataset`` with :math:`E + \\varepsilon s_l` and
    :math:`F - \\varepsilon \\nabla s_l` (positions unchanged, in the frames' own
    orientation); the injection settings are recorded in ``metadata["injection"]``."""
    if not np.isfinite(eps):
        raise ValueError(f"eps must be finite, got {eps}")
    a, b = marked_atoms(dataset, marked)
    c = signal_coefficients(l, seed)
    u = marked_direction(dataset.positions, a, b)
    s = signal(l, u, c)
    grad = signal_gradient(l, dataset.positions, a, b, c)
    meta = dict(dataset.metadata)
    meta["injection"] = {"l": int(l), "eps_eV": float(eps), "seed": int(seed),
                         "marked_atoms": [a, b], "coefficients": c.tolist(),
                         "convention": "E + eps*s_l, F - eps*grad s_l; s_l = c . Y_l(u), "
                                       "e3nn component normalization"}
    return Dataset(positions=dataset.positions, numbers=dataset.numbers,
                   energies=dataset.energies + eps * s, forces=dataset.forces - eps * grad,
                   metadata=meta)
