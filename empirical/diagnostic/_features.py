"""Frozen-backbone features of the marked atoms on rotated configurations (DESIGN §2.2, §2.4).

The backbone is run on every rotated configuration itself (``positions @ R.T``): the
measurement does not assume equivariance, so a backbone that is not equivariant shows it
instead of being silently corrected by ``D(R)``.

Output layout: ``features`` ``(n, 2 * irreps_out.dim)`` = ``[h_a, h_b]`` (the features of
marked atom ``a``, then of ``b``), with irreps ``irreps_out + irreps_out``; energies in eV
(``None`` for a backbone without ``energy``), all float64 numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from e3nn import o3

from ..backbone import Backbone, check_protocol

__all__ = ["MarkedFeatures", "marked_features", "atom_features", "rotate"]


@dataclass(frozen=True)
class MarkedFeatures:
    features: np.ndarray             # (n, 2 * irreps.dim), [h_a, h_b]
    irreps: o3.Irreps                # irreps_out + irreps_out
    energies: Optional[np.ndarray]   # (n,) eV, or None


def input_dtype(backbone) -> torch.dtype:
    """The dtype of a torch module's first floating parameter, else float64."""
    params = getattr(backbone, "parameters", None)
    if callable(params):
        for p in params():
            if p.is_floating_point():
                return p.dtype
    return torch.float64


def rotate(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``positions[i] @ rotations[i].T`` for every configuration: ``(n, atoms, 3)``."""
    return np.einsum("nij,naj->nai", rotations, np.asarray(positions, dtype=np.float64))


def atom_features(backbone, positions: np.ndarray, numbers: np.ndarray,
                  rotations: np.ndarray, atoms: Sequence[int], with_energy: bool = True,
                  chunk: int = 16, progress: Optional[Callable[[int], None]] = None):
    """Features ``(n, len(atoms), irreps_out.dim)`` of the given atoms of every configuration
    ``positions[i] @ rotations[i].T``, and the energies ``(n,)`` (eV) or ``None``.

    ``backbone`` follows the protocol; this package's :class:`Backbone` is run in batches
    of ``chunk`` configurations (features and energy in one pass), any other object one
    configuration at a time. ``progress(k)`` is called after every ``k`` configurations.
    Raises ``ValueError`` if the backbone returns features of the wrong shape or non-finite
    values."""
    check_protocol(backbone)
    irreps = o3.Irreps(backbone.irreps_out)
    atoms = list(atoms)
    has_energy = with_energy and callable(getattr(backbone, "energy", None))
    rotated = rotate(positions, rotations)
    n, n_atoms, _ = rotated.shape
    feats = np.empty((n, len(atoms), irreps.dim))
    energies = np.empty(n) if has_energy else None
    if isinstance(backbone, Backbone):
        dtype = backbone.dtype
        nums = torch.tensor(np.tile(numbers, chunk), dtype=torch.long)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            m = stop - start
            pos = torch.as_tensor(rotated[start:stop].reshape(-1, 3), dtype=dtype)
            batch = torch.arange(m).repeat_interleave(n_atoms)
            with torch.no_grad():
                h, e = backbone.features_and_energy(pos, nums[:m * n_atoms], batch)
            feats[start:stop] = h.reshape(m, n_atoms, -1)[:, atoms].double().numpy()
            if has_energy:
                energies[start:stop] = e.double().numpy()
            if progress:
                progress(m)
    else:
        nums = torch.tensor(np.asarray(numbers), dtype=torch.long)
        dtype = input_dtype(backbone)
        for i in range(n):
            pos = torch.as_tensor(rotated[i], dtype=dtype)
            with torch.no_grad():
                h = torch.as_tensor(backbone.node_features(pos, nums))
                if tuple(h.shape) != (n_atoms, irreps.dim):
                    raise ValueError(f"{type(backbone).__name__}.node_features returned shape "
                                     f"{tuple(h.shape)}, expected ({n_atoms}, {irreps.dim}) "
                                     f"(n_atoms, irreps_out.dim)")
                feats[i] = h[atoms].double().numpy()
            if has_energy:
                with torch.enable_grad():
                    energies[i] = float(backbone.energy(pos, nums))
            if progress:
                progress(1)
    if not np.isfinite(feats).all():
        raise ValueError(f"{type(backbone).__name__} returned non-finite features")
    if has_energy and not np.isfinite(energies).all():
        raise ValueError(f"{type(backbone).__name__} returned non-finite energies")
    return feats, energies


def marked_features(backbone, positions: np.ndarray, numbers: np.ndarray,
                    rotations: np.ndarray, a: int, b: int, with_energy: bool = True,
                    chunk: int = 16, progress: Optional[Callable[[int], None]] = None
                    ) -> MarkedFeatures:
    """Features of atoms ``a``, ``b`` (and energies) of every configuration
    ``positions[i] @ rotations[i].T`` (see :func:`atom_features`), as
    :class:`MarkedFeatures` ``[h_a, h_b]``."""
    feats, energies = atom_features(backbone, positions, numbers, rotations, [a, b],
                                    with_energy=with_energy, chunk=chunk, progress=progress)
    irreps = o3.Irreps(backbone.irreps_out)
    return MarkedFeatures(feats.reshape(len(feats), -1), irreps + irreps, energies)
