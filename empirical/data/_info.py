"""Summary statistics of a dataset (``empirical data info``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..units import BOLTZMANN
from ._dataset import Dataset

__all__ = ["harmonic_temperature", "summary"]


def harmonic_temperature(energies: np.ndarray, n_atoms: int) -> Optional[float]:
    r"""Temperature estimate (K) from the spread of potential energies.

    For a harmonic system in canonical equilibrium each of the :math:`n = 3N - 6`
    vibrational modes (``3N - 5`` for ``N = 2``) carries potential energy with variance
    :math:`(k_B T)^2 / 2`, so :math:`k_B T = \sqrt{2\,\mathrm{Var}(E) / n}`. It needs no
    reference minimum energy; anharmonicity (torsions, hydrogen bonds) biases it, typically
    upwards, and it means nothing for data that is not a thermal sample. ``None`` for a
    single atom or a single frame.
    """
    if n_atoms < 2 or energies.size < 2:
        return None
    modes = 3 * n_atoms - (5 if n_atoms == 2 else 6)
    return float(np.sqrt(2.0 * np.var(energies) / modes) / BOLTZMANN)


def summary(dataset: Dataset) -> dict:
    """Frames, atoms, formula, energy range (eV), force RMS (eV/A), temperature estimate."""
    e = dataset.energies
    meta = dataset.metadata
    return {
        "source": meta.get("source"),
        "format": meta.get("format"),
        "frames": dataset.n_frames,
        "atoms": dataset.n_atoms,
        "formula": dataset.formula,
        "energy_min_eV": float(e.min()),
        "energy_max_eV": float(e.max()),
        "energy_mean_eV": float(e.mean()),
        "energy_std_eV": float(e.std()),
        "force_rms_eV_per_A": float(np.sqrt(np.mean(dataset.forces**2))),
        "temperature_estimate_K": harmonic_temperature(e, dataset.n_atoms),
        "temperature_estimate_method": "harmonic, from the potential-energy variance",
        "temperature_metadata_K": meta.get("temperature_K"),
        "mean_kinetic_temperature_K": meta.get("mean_kinetic_temperature_K"),
        "method": meta.get("method"),
        "marked_bond": meta.get("marked_bond"),
    }
