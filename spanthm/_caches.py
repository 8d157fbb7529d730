"""The memo tables of :mod:`spanthm`, emptied together (for timings that must not reuse
earlier work)."""

from __future__ import annotations

__all__ = ["clear_caches"]


def clear_caches() -> None:
    """Empty every memo table of :mod:`spanthm`: Legendre coefficients, solid harmonics and
    sphere moments (:mod:`spanthm.harmonics`), zonal products and monomial functionals (the
    exact method), the recoverable degrees of the cyclic-ring functions. Results never change;
    the next call recomputes what it needs.

    Examples
    --------
    >>> from spanthm import ceiling, clear_caches
    >>> clear_caches(); ceiling(L=1, d=2)
    2
    """
    from . import _cyclic, _harmonics, _projection

    for memo in (_harmonics.legendre_coefficients, _harmonics._solid_harmonic_cached,
                 _harmonics.sphere_moment, _projection.zonal_product, _projection._functional,
                 _cyclic._reachable):
        memo.cache_clear()
