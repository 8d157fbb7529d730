"""The one dataset type every later stage reads (its fields, shapes and units: :class:`Dataset`;
 positions and forces may be stored as float32, they are read as float64)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

__all__ = ["DataError", "Dataset", "CHEMICAL_SYMBOLS", "MAX_ATOMS", "MAX_FRAMES", "MAX_ABS_VALUE"]

#: Most atoms per frame a dataset may have: the diagnostic is for molecules (MD17's have at
#: most 21 atoms); larger systems are refused before any pairwise work or model is run.
MAX_ATOMS = 10_000
#: Most frames a dataset may have (the original MD17 files have at most about 1 million).
MAX_FRAMES = 10_000_000
#: Largest magnitude of any position (Angstrom), energy (eV) or force (eV/Angstrom): far
#: beyond any molecule in any unit (all-electron energies of the heaviest atoms are below
#: 1e6 eV per atom), small enough that sums of squares over a dataset stay finite.
MAX_ABS_VALUE = 1e12

CHEMICAL_SYMBOLS = [
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
    "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd",
    "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn",
    "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
]


class DataError(ValueError):
    """A dataset that cannot be used: the message names the file and the problem."""


@dataclass(frozen=True)
class Dataset:
    """Molecular configurations with reference energies and forces (eV, Angstrom).

    Attributes
    ----------
    positions : ndarray, shape (frames, atoms, 3), float64
        Angstrom.
    numbers : ndarray, shape (atoms,), int64
        Atomic numbers, the same atoms in the same order in every frame.
    energies : ndarray, shape (frames,), float64
        eV.
    forces : ndarray, shape (frames, atoms, 3), float64
        eV/Angstrom.
    metadata : dict
        Provenance (``source``, ``method``, units, seeds, versions, ...); JSON-serializable.

    Raises
    ------
    DataError
        On construction, for inconsistent shapes, zero frames or atoms, NaN or inf, or
        atomic numbers outside 1..118.
    """

    positions: np.ndarray
    numbers: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    metadata: Dict = field(default_factory=dict)

    def __post_init__(self):
        name = self.metadata.get("source", "dataset")
        for field_name in ("positions", "energies", "forces"):
            kind = np.asarray(getattr(self, field_name)).dtype.kind
            if kind not in "fiu":
                raise DataError(f"{name}: {field_name} are not numeric "
                                f"(dtype {np.asarray(getattr(self, field_name)).dtype})")
        pos = np.asarray(self.positions, dtype=np.float64)
        num = np.asarray(self.numbers)
        en = np.asarray(self.energies, dtype=np.float64)
        frc = np.asarray(self.forces, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise DataError(f"{name}: positions must have shape (frames, atoms, 3), got {pos.shape}")
        frames, atoms = pos.shape[:2]
        if atoms > MAX_ATOMS:
            raise DataError(f"{name}: {atoms} atoms per frame, above the limit of {MAX_ATOMS}")
        if frames > MAX_FRAMES:
            raise DataError(f"{name}: {frames} frames, above the limit of {MAX_FRAMES}")
        if frames == 0:
            raise DataError(f"{name}: the dataset has zero frames")
        if atoms == 0:
            raise DataError(f"{name}: the dataset has zero atoms")
        if num.shape != (atoms,):
            raise DataError(f"{name}: atomic numbers have shape {num.shape}, expected ({atoms},) "
                            "to match the positions")
        if not np.issubdtype(num.dtype, np.integer):
            if not np.all(np.isfinite(num)) or not np.all(num == np.round(num)):
                raise DataError(f"{name}: atomic numbers must be integers")
        num = num.astype(np.int64)
        if num.min() < 1 or num.max() > 118:
            raise DataError(f"{name}: atomic numbers must lie in 1..118, got {num.min()}..{num.max()}")
        if en.shape != (frames,):
            raise DataError(f"{name}: energies have shape {en.shape}, expected ({frames},)")
        if frc.shape != pos.shape:
            raise DataError(f"{name}: forces have shape {frc.shape}, expected {pos.shape}")
        for label, arr in (("positions", pos), ("energies", en), ("forces", frc)):
            bad = ~np.isfinite(arr)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise DataError(f"{name}: {label} contain {int(bad.sum())} NaN or inf values "
                                f"(first at index {tuple(int(i) for i in where)})")
            big = np.abs(arr) > MAX_ABS_VALUE
            if big.any():
                where = np.argwhere(big)[0]
                raise DataError(f"{name}: {label} reach {float(np.abs(arr).max()):.3g} "
                                f"(first at index {tuple(int(i) for i in where)}), beyond "
                                f"{MAX_ABS_VALUE:.0e} that no molecule has in any unit")
        for attr, value in (("positions", pos), ("numbers", num), ("energies", en),
                            ("forces", frc)):
            value.setflags(write=False)
            object.__setattr__(self, attr, value)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def symbols(self) -> list:
        return [CHEMICAL_SYMBOLS[z] for z in self.numbers]

    @property
    def formula(self) -> str:
        """Hill formula (C first, H second, then alphabetical), e.g. ``C9H8O4``."""
        counts: Dict[str, int] = {}
        for s in self.symbols:
            counts[s] = counts.get(s, 0) + 1
        order = [s for s in ("C", "H") if s in counts] if "C" in counts else []
        order += sorted(s for s in counts if s not in order)
        return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)

    def subset(self, indices, note: Optional[str] = None) -> "Dataset":
        """The frames at ``indices`` (in that order) with the same atoms and metadata."""
        idx = np.asarray(indices, dtype=np.int64)
        meta = dict(self.metadata)
        if note:
            meta["subset"] = note
        return Dataset(self.positions[idx], self.numbers, self.energies[idx], self.forces[idx],
                       meta)
