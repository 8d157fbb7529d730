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
import math
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np
from numpy.lib import format as npy_format

from ..units import KCAL_PER_MOL
from ._dataset import MAX_ATOMS, MAX_FRAMES, DataError, Dataset

__all__ = ["load", "SHIPPED", "shipped_path", "MAX_NPZ_BYTES", "MAX_TRAJECTORY_BYTES",
           "npz_members"]

#: Most bytes the members of one ``.npz`` file that a load reads may expand to, summed over
#: those members, read from every member's ``.npy`` header and the zip's declared sizes
#: before anything is decompressed (members a layout does not use are never decompressed).
#: The largest MD17 file (ethanol, 555k frames) needs about 0.3 GB.
MAX_NPZ_BYTES = 2 * 1024 ** 3
#: Largest trajectory file (extxyz, ...) read through ase, which holds the whole text and
#: about 20 times its size in Python objects: 2 GiB of numbers need less than 100 MB of text.
MAX_TRAJECTORY_BYTES = 256 * 1024 ** 2

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
    if not path.is_file():     # a FIFO would block the read forever, a device never ends
        raise DataError(f"cannot read {str(path)!r}: not a regular file (a device, FIFO or "
                        "socket)")
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    return _load_ase(path)


#: What the header of one ``.npy`` member declares: shape, dtype, and its size in bytes.
Member = Tuple[Tuple[int, ...], np.dtype, int]


def _read_header(src: str, key: str, stream) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the start of ``stream``
    (numpy's own reader: versions 1.0, 2.0 and 3.0)."""
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(stream)
        if version in ((2, 0), (3, 0)):
            return npy_format.read_array_header_2_0(stream)
        raise ValueError(f"unknown .npy format version {version}")
    except (ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"{src!r}: the member {key!r} is not a readable .npy array "
                        f"({exc})") from None


def npz_members(path: Union[str, Path]) -> Dict[str, Member]:
    """Every array of an ``.npz`` file, ``{key: (shape, dtype, bytes)}``, from the zip
    directory and each member's ``.npy`` header alone (nothing is decompressed beyond the
    headers).

    Raises
    ------
    DataError
        Not a zip file; a member that is not a ``.npy`` array, appears twice, holds Python
        objects (pickles are never loaded), or whose header declares more bytes than the
        zip says the member holds.
    """
    src = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {src!r} as an npz archive: {exc}") from None
    out: Dict[str, Member] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise DataError(f"{src!r}: the member {info.filename!r} is not a .npy array")
            key = info.filename[:-len(".npy")]
            if key in out:
                raise DataError(f"{src!r}: the member {key!r} appears twice in the archive")
            try:
                with archive.open(info) as stream:
                    shape, _, dtype = _read_header(src, key, stream)
                    header = stream.tell()
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
                if isinstance(exc, DataError):
                    raise
                raise DataError(f"{src!r}: the member {key!r} cannot be read ({exc})") from None
            if dtype.hasobject:
                raise DataError(f"{src!r}: {key!r} holds Python objects (dtype {dtype}); "
                                "pickled data are never loaded")
            nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
            if nbytes > info.file_size - header:
                raise DataError(f"{src!r}: the header of {key!r} declares shape {shape} of "
                                f"{dtype} ({nbytes / 1e9:.3g} GB), more than the "
                                f"{info.file_size} bytes the archive holds for it")
            out[key] = (tuple(int(n) for n in shape), dtype, nbytes)
    return out


def _check_sizes(src: str, members: Dict[str, Member], keys) -> None:
    """Refuse, before decompression, members beyond :data:`MAX_NPZ_BYTES` together."""
    total = sum(members[k][2] for k in keys)
    if total > MAX_NPZ_BYTES:
        parts = ", ".join(f"{k!r} {members[k][2] / 1e9:.3g} GB" for k in keys)
        raise DataError(f"{src!r}: the arrays it needs expand to {total / 1e9:.3g} GB ({parts}), "
                        f"above the limit of {MAX_NPZ_BYTES / 1e9:.3g} GB for one dataset")


def _check_positions_shape(src: str, shape: Tuple[int, ...]) -> None:
    """Atoms-per-frame and frames bounds from the declared positions shape."""
    if len(shape) == 3:
        frames, atoms = shape[0], shape[1]
        if atoms > MAX_ATOMS:
            raise DataError(f"{src!r}: {atoms} atoms per frame, above the limit of {MAX_ATOMS}")
        if frames > MAX_FRAMES:
            raise DataError(f"{src!r}: {frames} frames, above the limit of {MAX_FRAMES}")


def _read_members(path: Path, keys) -> Dict[str, np.ndarray]:
    """The arrays ``keys`` of the archive (``allow_pickle=False``), decompressed one by one."""
    src = str(path)
    out = {}
    with zipfile.ZipFile(path) as archive:
        for key in keys:
            try:
                with archive.open(key + ".npy") as stream:
                    out[key] = npy_format.read_array(stream, allow_pickle=False)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
                raise DataError(f"{src!r}: the member {key!r} cannot be read ({exc})") from None
    return out


def _load_npz(path: Path) -> Dataset:
    src = str(path)
    members = npz_members(path)
    keys = set(members)
    for layout, required in LAYOUTS.items():
        if keys >= set(required):
            wanted = list(required) + (["metadata"] if layout == "empirical" and
                                       "metadata" in keys else [])
            _check_positions_shape(src, members[required[0]][0])
            _check_sizes(src, members, wanted)
            return _from_layout(path, layout, _read_members(path, wanted))
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
    size = path.stat().st_size
    if size > MAX_TRAJECTORY_BYTES:
        raise DataError(f"{str(path)!r} is {size / 1e6:.4g} MB, above the limit of "
                        f"{MAX_TRAJECTORY_BYTES / 1e6:.4g} MB for a trajectory read through ase "
                        "(convert it to an npz file: empirical.data.save_npz)")
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
