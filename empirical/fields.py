"""The one place that names every array field of :mod:`empirical`, with shape and unit.

``F`` frames, ``N`` atoms. Positions and forces may be stored as float32 (the shipped
dataset does); they are returned as float64 by :func:`empirical.data.load`.
"""

FIELDS = {
    "positions": ("(F, N, 3)", "Angstrom", "Cartesian coordinates"),
    "numbers": ("(N,)", "-", "atomic numbers, the same for every frame"),
    "energies": ("(F,)", "eV", "total potential energy of each frame"),
    "forces": ("(F, N, 3)", "eV/Angstrom", "-dE/dpositions"),
    "metadata": ("dict", "-", "provenance: source, method, units, seeds, versions"),
}

__all__ = ["FIELDS"]
