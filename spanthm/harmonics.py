"""Conventions of spanthm's real spherical harmonics (public face of ``_harmonics``).

See :mod:`spanthm._harmonics` for the formulas: ``z`` polar axis, ``m = -l..l`` with
``m < 0`` sine-type, no Condon-Shortley phase, normalizations ``"integral"``,
``"component"`` (e3nn's default) and ``"norm"``; e3nn agrees at the permuted direction
``(v_z, v_x, v_y)`` and sympy's ``Znm`` differs by :func:`sympy_znm_sign`.
"""

from ._harmonics import (  # noqa: F401
    NORMALIZATIONS,
    e3nn_direction_to_spanthm,
    evaluate_polynomial,
    harmonic_basis,
    laplacian,
    legendre_coefficients,
    normalization_squared,
    poly_mul,
    real_spherical_harmonic,
    solid_harmonic,
    sphere_inner_product,
    sphere_moment,
    sympy_znm_sign,
)

__all__ = [
    "NORMALIZATIONS",
    "e3nn_direction_to_spanthm",
    "evaluate_polynomial",
    "harmonic_basis",
    "laplacian",
    "legendre_coefficients",
    "normalization_squared",
    "poly_mul",
    "real_spherical_harmonic",
    "solid_harmonic",
    "sphere_inner_product",
    "sphere_moment",
    "sympy_znm_sign",
]
