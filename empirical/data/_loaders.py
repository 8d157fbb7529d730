"""Read datasets from the formats researchers already have, into one :class:`Dataset`.

Sources accepted by :func:`load`:

``"aspirin"``
    The shipped GFN2-xTB aspirin dataset (``empirical/data/aspirin_gfn2xtb_500K.npz``).
MD17 ``.npz``
    Keys ``R`` (frames, atoms, 3) Angstrom, ``E`` (frames,) or (frames, 1) kcal/mol,
    ``F`` (frames, atoms, 3) kcal/mol/Angstrom, ``z`` (atoms,).
rMD17 ``.npz``
    Keys ``coords``, ``energies`` (kcal/mol), ``forces`` (kcal/mol/Angstrom),
    ``nuclear_charges``.
this package's ``.npz``
    Keys ``positions``, ``numbers``, ``energies`` (eV), ``forces`` (eV/Angstrom) and an
    optional ``metadata`` JSON string (what :func:`empirical.data.save_npz` writes).
any ASE-readable trajectory (extxyz, ...)
    Every frame must carry an energy and forces (e.g. ``energy=`` in the extxyz comment line
    and a ``forces`` column); units are ASE's, eV and Angstrom. Needs ``ase``.

kcal/mol is converted with :data:`empirical.units.KCAL_PER_MOL`, the only place the factor
is written.
"""

from __future__ import annotations

import json
import zipfile
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np

from ..units import KCAL_PER_MOL
from ._dataset import DataError, Dataset

__all__ = ["load", "SHIPPED", "shipped_path"]

SHIPPED = {"aspirin": "aspirin_gfn2xtb_500K.npz"}

LAYOUTS = {
    "md17": ("R", "E", "F", "z"),
    "rmd17": ("coords", "energies", "forces", "nuclear_charges"),
    "empirical": ("positions", "numbers", "energies", "forces"),
}
_NAMES = {"R": "positions", "E": "energies", "F": "forces", "z": "atomic numbers",
          "coords": "positions", "energies": "energies", "forces": "forces",
          "nuclear_charges": "atomic numbers", "positions": "positions",
          "numbers": "atomic numbers"}


def shipped_path(name: str) -> Path:
    """Path of a dataset shipped inside the package (``"aspirin"``)."""
    if name not in SHIPPED:
        raise DataError(f"unknown shipped dataset {name!r}; available: {', '.join(SHIPPED)}")
    path = Path(str(resources.files("empirical.data").joinpath(SHIPPED[name])))
    if not path.exists():
        raise DataError(f"the shipped dataset file {path} is missing from this installation")
    return path


def load(source: Union[str, Path]) -> Dataset:
    """Load a dataset (see the module docstring for the accepted sources).

    Raises
    ------
    DataError
        Unreadable or unknown file, missing keys, inconsistent shapes, NaN or inf, zero
        frames, varying atom count, missing energies or forces. The message names the file
        and the problem.
    """
    if isinstance(source, str) and source in SHIPPED:
        dataset = _load_npz(shipped_path(source))
        meta = dict(dataset.metadata)
        meta["source"] = f"{source} (shipped {SHIPPED[source]})"
        return Dataset(dataset.positions, dataset.numbers, dataset.energies, dataset.forces, meta)
    path = Path(source)
    if not path.exists():
        raise DataError(f"cannot read {str(path)!r}: no such file (and not a shipped dataset: "
                        f"{', '.join(SHIPPED)})")
    if path.is_dir():
        raise DataError(f"cannot read {str(path)!r}: it is a directory, not a dataset file")
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    return _load_ase(path)


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as handle:
            arrays = {k: handle[k] for k in handle.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as an npz archive: {exc}") from None
    keys = set(arrays)
    for layout, required in LAYOUTS.items():
        if keys >= set(required):
            return _from_layout(path, layout, arrays)
    # Name the closest layout's missing keys.
    best = max(LAYOUTS, key=lambda name: len(keys & set(LAYOUTS[name])))
    overlap = keys & set(LAYOUTS[best])
    if overlap:
        missing = [k for k in LAYOUTS[best] if k not in keys]
        what = ", ".join(f"{k!r} ({_NAMES[k]})" for k in missing)
        raise DataError(f"{str(path)!r} looks like a {best} file but lacks {what}")
    raise DataError(f"{str(path)!r}: unknown npz layout with keys {sorted(keys)}; expected MD17 "
                    "(R, E, F, z), rMD17 (coords, energies, forces, nuclear_charges) or "
                    "empirical (positions, numbers, energies, forces)")


def _from_layout(path: Path, layout: str, a: dict) -> Dataset:
    src = str(path)
    if layout == "empirical":
        meta = {}
        if "metadata" in a:
            try:
                meta = json.loads(str(a["metadata"]))
            except json.JSONDecodeError:
                raise DataError(f"{src!r}: the metadata entry is not valid JSON") from None
        meta.pop("source", None)
        meta["source"] = src
        meta["format"] = "empirical npz"
        return _build(src, a["positions"], a["numbers"], a["energies"], a["forces"], meta, 1.0)
    r, e, f, z = (a[k] for k in LAYOUTS[layout])
    meta = {"source": src, "format": "MD17 npz" if layout == "md17" else "rMD17 npz",
            "converted_from": "kcal/mol and kcal/mol/Angstrom",
            "kcal_per_mol_in_eV": KCAL_PER_MOL}
    return _build(src, r, z, e, f, meta, KCAL_PER_MOL)


def _build(src, positions, numbers, energies, forces, meta, energy_unit: float) -> Dataset:
    for name, arr in (("positions", positions), ("forces", forces), ("energies", energies),
                      ("atomic numbers", numbers)):
        if np.asarray(arr).dtype.kind not in "fiu":
            raise DataError(f"{src!r}: {name} are not numeric (dtype {np.asarray(arr).dtype})")
    positions = np.asarray(positions)
    energies = np.asarray(energies, dtype=np.float64)
    if energies.ndim == 2 and energies.shape[1] == 1:
        energies = energies[:, 0]  # MD17 stores E as (frames, 1)
    numbers = np.asarray(numbers)
    if numbers.ndim == 2 and numbers.shape[0] >= 1:
        if not (numbers == numbers[0]).all():
            raise DataError(f"{src!r}: atomic numbers vary between frames")
        numbers = numbers[0]
    for name, arr in (("positions", positions), ("forces", forces), ("energies", energies)):
        if np.asarray(arr).dtype.kind not in "fiu":
            raise DataError(f"{src!r}: {name} are not numeric (dtype {np.asarray(arr).dtype})")
    meta = dict(meta)
    meta.setdefault("source", src)
    return Dataset(positions=positions, numbers=numbers, energies=energies * energy_unit,
                   forces=np.asarray(forces, dtype=np.float64) * energy_unit, metadata=meta)


def _load_ase(path: Path) -> Dataset:
    try:
        from ase.io import read
    except ImportError:
        raise DataError(f"reading {str(path)!r} needs ase: pip install 'spectral-ceilings[data]'") \
            from None
    try:
        frames = read(str(path), index=":")
    except Exception as exc:  # ase raises many types for unknown or broken files
        raise DataError(f"cannot read {str(path)!r} as a trajectory: "
                        f"{type(exc).__name__}: {exc}") from None
    if not frames:
        raise DataError(f"{str(path)!r}: the dataset has zero frames")
    n0, z0 = len(frames[0]), frames[0].numbers
    positions, energies, forces = [], [], []
    for k, atoms in enumerate(frames):
        if len(atoms) != n0:
            raise DataError(f"{str(path)!r}: frame {k} has {len(atoms)} atoms, frame 0 has {n0} "
                            "(the atom count must not vary)")
        if not np.array_equal(atoms.numbers, z0):
            raise DataError(f"{str(path)!r}: frame {k} has different atoms or atom order than frame 0")
        calc = atoms.calc
        results = getattr(calc, "results", {}) if calc is not None else {}
        energy = results.get("energy", results.get("free_energy"))
        if energy is None:
            raise DataError(f"{str(path)!r}: frame {k} has no energy")
        if "forces" not in results:
            raise DataError(f"{str(path)!r}: frame {k} has no forces")
        positions.append(atoms.positions)
        energies.append(energy)
        forces.append(results["forces"])
    meta = {"source": str(path), "format": f"ASE ({path.suffix.lstrip('.') or 'auto'})"}
    return _build(str(path), np.array(positions), z0, np.array(energies), np.array(forces),
                  meta, 1.0)
