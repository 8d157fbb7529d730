r"""Seven-atom C5 structures and their synthetic energy (docs/method.md §3).

Geometry (Angstrom), before jitter and rotation: atom 0 the centre at the origin (carbon),
atoms 1..5 five identical ring atoms (carbon) on a regular pentagon of radius
:data:`RING_RADIUS` in the xy-plane at angles :math:`2\pi k / 5`, atom 6 the apex (oxygen, a
different species) on the +z axis at :data:`APEX_HEIGHT`. Each structure gets an independent
seeded Gaussian jitter (:data:`JITTER` A per coordinate) and is stored in this reference
orientation; the probes rotate every sample by its own Haar-random rotation.

Synthetic energy (eV), rotation and translation invariant: Morse pair terms around the
reference distances, :math:`E = \sum_{i<j} D (1 - e^{-a (r_{ij} - r^0_{ij})})^2` with
``D = 1 eV``, ``a = 1.5 / A``; forces ``-dE/dr`` in eV/A (torch autograd, float64).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import Dataset

__all__ = ["C5_NUMBERS", "CENTRE", "RING", "APEX", "RING_RADIUS", "APEX_HEIGHT", "JITTER",
           "reference_positions", "c5_structures", "synthetic_energy"]

CENTRE, RING, APEX = 0, (1, 2, 3, 4, 5), 6
C5_NUMBERS = np.array([6, 6, 6, 6, 6, 6, 8])
RING_RADIUS = 1.5
APEX_HEIGHT = 1.2
JITTER = 0.05
MORSE_D, MORSE_A = 1.0, 1.5


def reference_positions() -> np.ndarray:
    """The undistorted C5 structure ``(7, 3)``."""
    pos = np.zeros((7, 3))
    for k, atom in enumerate(RING):
        angle = 2 * math.pi * k / 5
        pos[atom] = RING_RADIUS * np.array([math.cos(angle), math.sin(angle), 0.0])
    pos[APEX] = [0.0, 0.0, APEX_HEIGHT]
    return pos


def synthetic_energy(positions: np.ndarray):
    """Energies ``(n,)`` and forces ``(n, 7, 3)`` of the Morse energy above."""
    ref = reference_positions()
    r0 = torch.as_tensor(np.linalg.norm(ref[:, None] - ref[None], axis=-1))
    pos = torch.tensor(np.asarray(positions, dtype=np.float64), requires_grad=True)
    i, j = torch.triu_indices(7, 7, offset=1)
    r = (pos[:, i] - pos[:, j]).norm(dim=-1)
    e = (MORSE_D * (1 - torch.exp(-MORSE_A * (r - r0[i, j]))) ** 2).sum(dim=1)
    (grad,) = torch.autograd.grad(e.sum(), pos)
    return e.detach().numpy(), -grad.numpy()


def c5_structures(n: int, seed: int, jitter: float = JITTER) -> Dataset:
    """``n`` jittered C5 structures in the reference orientation, with the synthetic energy;
    ``metadata["marked_bond"]`` is the axis (centre -> apex)."""
    if n < 2:
        raise ValueError(f"need at least 2 structures, got {n}")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0 A, got {jitter}")
    rng = np.random.default_rng(seed)
    pos = reference_positions()[None] + jitter * rng.standard_normal((n, 7, 3))
    energies, forces = synthetic_energy(pos)
    meta = {"source": f"C5 structures (seed {seed}, jitter {jitter} A)", "name": "c5",
            "marked_bond": {"atoms": [CENTRE, APEX], "labels": ["centre", "apex"],
                            "name": "C5 axis"},
            "atom_labels": ["centre"] + [f"ring{k}" for k in range(1, 6)] + ["apex"],
            "ring_atoms": list(RING), "ring_radius_A": RING_RADIUS,
            "apex_height_A": APEX_HEIGHT, "jitter_A": jitter, "seed": seed,
            "energy": f"Morse pairs, D = {MORSE_D} eV, a = {MORSE_A} /A, around the "
                      "reference distances", "units": {"energies": "eV", "forces": "eV/A",
                                                       "positions": "Angstrom"}}
    return Dataset(positions=pos, numbers=C5_NUMBERS.copy(), energies=energies, forces=forces,
                   metadata=meta)
