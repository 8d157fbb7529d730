"""Units used inside :mod:`empirical`: energies in eV, lengths in Angstrom, forces in eV/A.

Every conversion from another unit system goes through a constant named here, once.
"""

AVOGADRO = 6.02214076e23          # 1/mol, exact (SI 2019)
ELEMENTARY_CHARGE = 1.602176634e-19  # C, exact (SI 2019)
KCAL_PER_MOL = 4184.0 / (AVOGADRO * ELEMENTARY_CHARGE)
"""1 kcal/mol in eV (thermochemical calorie, 4184 J): 0.0433641042 eV."""

BOLTZMANN = 8.617333262e-5        # eV/K, exact (SI 2019: k_B / e)
"""Boltzmann constant in eV/K."""

__all__ = ["AVOGADRO", "ELEMENTARY_CHARGE", "KCAL_PER_MOL", "BOLTZMANN"]
