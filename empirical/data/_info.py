"""Summary statistics of a dataset (``empirical data info``)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..units import BOLTZMANN
from ._dataset import Dataset

__all__ = ["harmonic_temperature", "summary", "unit_warnings", "nearest_neighbour_distances",
           "UNIT_WINDOWS"]

#: What a molecule in eV and Angstrom shows (:func:`unit_warnings`), as (low, high):
#:
#: * ``bond_ratio``: median over frames of the shortest ``distance / (r_cov,i + r_cov,j)``
#:   (ase's covalent radii): bonded atoms sit at 0.8-1.2; Bohr gives about 1.89 times that,
#:   nanometres a tenth.
#: * ``temperature_K``: the harmonic temperature of the energy spread
#:   (:func:`harmonic_temperature`); kcal/mol multiplies it by 23, Hartree divides it by 27.
#: * ``force_rms``: force RMS in eV/A (thermal molecules 0.1-10; the shipped aspirin at
#:   500 K: 1.3); kcal/mol/A multiplies it by 23, Hartree/Bohr divides it by 51.
#: * ``stiffness``: ``force_rms**2 / (k_B T_harmonic)``, the mean diagonal force constant of a
#:   harmonic sample in eV/A^2, whatever the temperature (the shipped aspirin: 30-45;
#:   chemical bonds 5-50); kcal/mol multiplies it by 23, Hartree/Bohr divides it by 97.
#: * ``energy_per_atom``: ``|mean energy| / sum(0.77 Z^(7/3) Hartree)`` (the Thomas-Fermi
#:   total energy of the free atoms, all-electron): at most about 1 in eV, 23 in kcal/mol.
UNIT_WINDOWS = {"bond_ratio": (0.6, 1.35), "temperature_K": (20.0, 5000.0),
                "force_rms": (0.05, 20.0), "stiffness": (4.0, 250.0),
                "energy_per_atom": (0.0, 1.5)}
#: Frames the unit heuristics look at (a seeded draw would change nothing: the first ones).
UNIT_FRAMES = 200
_HARTREE_EV = 27.211386245988


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


def nearest_neighbour_distances(positions: np.ndarray):
    """``(distances, neighbours)``, each ``(frames, atoms)``: every atom's nearest other atom
    in its frame (scipy's k-d tree, ``O(atoms log atoms)`` per frame; ``inf`` and ``-1`` for
    a single atom)."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    frames, atoms = pos.shape[:2]
    dist = np.full((frames, atoms), np.inf)
    nbr = np.full((frames, atoms), -1, dtype=np.int64)
    if atoms < 2:
        return dist, nbr
    for f in range(frames):
        d, i = cKDTree(pos[f]).query(pos[f], k=2)
        dist[f], nbr[f] = d[:, 1], i[:, 1]
    return dist, nbr


def _covalent_radii(numbers: np.ndarray) -> Optional[np.ndarray]:
    try:
        from ase.data import covalent_radii
    except ImportError:
        return None
    return np.asarray(covalent_radii)[np.asarray(numbers)]


def _outside(value: float, window) -> bool:
    low, high = window
    return not low <= value <= high


def unit_warnings(dataset: Dataset, frames: Optional[Sequence[int]] = None) -> List[str]:
    """Messages, one per problem, when ``dataset`` does not look like a molecule in eV and
    Angstrom (see :data:`UNIT_WINDOWS`): positions against bond lengths (Bohr, nm),
    energies and forces against what a molecule can have (kcal/mol, Hartree), constant
    energies. ``frames``: the frames to look at (default all; at most
    :data:`UNIT_FRAMES` are used). Heuristics: a warning is a reason to check, not proof.

    >>> from empirical.data import load
    >>> unit_warnings(load("aspirin"), range(50))
    []
    """
    idx = np.arange(dataset.n_frames) if frames is None else np.asarray(frames, dtype=np.int64)
    idx = idx[:UNIT_FRAMES]
    out: List[str] = []
    pos = dataset.positions[idx]
    if dataset.n_atoms >= 2:
        dist, nbr = nearest_neighbour_distances(pos)
        radii = _covalent_radii(dataset.numbers)
        if radii is not None:
            ratio = np.median((dist / (radii[None, :] + radii[nbr])).min(axis=1))
            shortest = float(np.median(dist.min(axis=1)))
            if _outside(ratio, UNIT_WINDOWS["bond_ratio"]):
                guess = (" (Bohr gives about 1.9 times the bond lengths)" if ratio > 1 else
                         " (nanometres give a tenth of them)")
                out.append(f"the shortest interatomic distance is {shortest:.3g}, "
                           f"{ratio:.2g} times the covalent bond length of its atoms: "
                           f"positions are expected in Angstrom{guess}; check the units")
        else:
            shortest = float(np.median(dist.min(axis=1)))
            if not 0.5 <= shortest <= 3.0:
                out.append(f"the shortest interatomic distance in the data is {shortest:.3g}: "
                           "positions are expected in Angstrom (bonds 0.7-3 A); check the units")
    e = dataset.energies[idx]
    f = dataset.forces[idx]
    if e.size >= 2 and np.ptp(e) == 0:
        out.append(f"the energies are the same ({e[0]:.6g}) in every frame looked at: they "
                   "carry no signal, so eps and the energy errors mean nothing; check the data")
        return out
    evidence, high = [], 0
    f_rms = float(np.sqrt(np.mean(f ** 2)))
    if f_rms > 0 and _outside(f_rms, UNIT_WINDOWS["force_rms"]):
        evidence.append(f"force RMS {f_rms:.3g} (a molecule in eV/A: "
                        f"{UNIT_WINDOWS['force_rms'][0]:g}-{UNIT_WINDOWS['force_rms'][1]:g})")
        high += f_rms > UNIT_WINDOWS["force_rms"][1]
    temp = harmonic_temperature(e, dataset.n_atoms)
    if temp is not None and temp > 0:
        if _outside(temp, UNIT_WINDOWS["temperature_K"]):
            evidence.append(f"energy spread of a {temp:.3g} K sample "
                            f"(expected {UNIT_WINDOWS['temperature_K'][0]:g}-"
                            f"{UNIT_WINDOWS['temperature_K'][1]:g} K)")
            high += temp > UNIT_WINDOWS["temperature_K"][1]
        stiffness = f_rms ** 2 / (BOLTZMANN * temp)
        if f_rms > 0 and _outside(stiffness, UNIT_WINDOWS["stiffness"]):
            evidence.append(f"force RMS^2 / k_B T = {stiffness:.3g} eV/A^2 "
                            f"(chemical bonds: {UNIT_WINDOWS['stiffness'][0]:g}-"
                            f"{UNIT_WINDOWS['stiffness'][1]:g})")
            high += stiffness > UNIT_WINDOWS["stiffness"][1]
    z = dataset.numbers.astype(np.float64)
    atoms_eV = float(np.sum(0.77 * z ** (7.0 / 3.0))) * _HARTREE_EV
    per_atom = abs(float(np.mean(e))) / atoms_eV
    if _outside(per_atom, UNIT_WINDOWS["energy_per_atom"]):
        evidence.append(f"mean energy {float(np.mean(e)):.4g}, {per_atom:.3g} times the "
                        "all-electron energy of the free atoms")
        high += 1
    if evidence:
        guess = ("kcal/mol or kJ/mol" if 2 * high >= len(evidence) else "Hartree")
        out.append("energies and forces do not look like a molecule's in eV and eV/A: "
                   + "; ".join(evidence) + f" (they may be in {guess}); check the units")
    return out
