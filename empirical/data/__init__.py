"""Datasets for the diagnostic (docs/method.md §2.1): one type, many formats, seeded splits.

* :func:`load` reads ``"aspirin"`` (shipped GFN2-xTB data), MD17 / rMD17 npz files, this
  package's npz files and ASE-readable trajectories into a :class:`Dataset` (eV, Angstrom;
  fields, shapes and units: :class:`Dataset`).
* :func:`make_splits` gives deterministic, seeded, non-overlapping train / validation /
  test / probe parts.
* :func:`generate_aspirin` regenerates the shipped dataset (needs the ``data`` extra:
  ase and tblite); :func:`save_npz` writes any dataset atomically.
"""

from ._dataset import CHEMICAL_SYMBOLS, MAX_ABS_VALUE, MAX_ATOMS, MAX_FRAMES, DataError, Dataset
from ._generate import (MAX_CHAINS, MAX_EQUILIBRATION_PS, MAX_FRICTION_PER_FS,
                        MAX_GENERATED_FRAMES, MAX_TEMPERATURE_K, MAX_TIMESTEP_FS,
                        GenerationError, MDSettings, check_request, generate_aspirin, save_npz)
from ._info import harmonic_temperature, nearest_neighbour_distances, summary, unit_warnings
from ._loaders import SHIPPED, load, shipped_path
from ._splits import DEFAULT_FRACTIONS, Splits, make_splits

__all__ = ["Dataset", "DataError", "load", "shipped_path", "SHIPPED", "make_splits", "Splits",
           "DEFAULT_FRACTIONS", "summary", "harmonic_temperature", "generate_aspirin",
           "MDSettings", "GenerationError", "save_npz", "unit_warnings", "MAX_ATOMS",
           "MAX_FRAMES", "MAX_ABS_VALUE", "nearest_neighbour_distances", "CHEMICAL_SYMBOLS", "check_request",
           "MAX_GENERATED_FRAMES", "MAX_CHAINS", "MAX_TEMPERATURE_K", "MAX_EQUILIBRATION_PS",
           "MAX_TIMESTEP_FS", "MAX_FRICTION_PER_FS"]
