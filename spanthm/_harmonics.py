r"""Real spherical harmonics: the one place where spanthm's conventions are fixed.

Conventions (each one is tested in ``tests/test_harmonics.py``)
--------------------------------------------------------------
* **Axes.** Cartesian ``(x, y, z)``; ``z`` is the polar axis, ``theta`` the angle from
  ``+z``, ``phi`` the azimuth from ``+x`` towards ``+y``.
* **Order of components.** ``m = -l, ..., l``; ``m > 0`` are cosine-type (built from
  :math:`\mathrm{Re}(x + iy)^m`), ``m < 0`` sine-type (built from
  :math:`\mathrm{Im}(x + iy)^{|m|}`), ``m = 0`` zonal.
* **Phase.** No Condon-Shortley phase: :math:`Y_1^1 \propto +x`, :math:`Y_1^{-1} \propto +y`,
  :math:`Y_1^0 \propto +z`.
* **Polynomials.** :math:`Y_l^m(u) = N_{lm}\, p_{lm}(u)` for unit ``u``, with
  :math:`p_{lm}` a homogeneous *harmonic* polynomial of degree ``l`` with rational
  coefficients (:func:`solid_harmonic`),

  .. math::

      p_{lm} = \Pi_l^{|m|}(z, r)\, A_{|m|}(x, y) \ (m>0), \qquad
      p_{l,-m} = \Pi_l^{m}\, B_{m} \ (m>0), \qquad p_{l0} = \Pi_l^0,

      \Pi_l^m = 2^{-l} \sum_{k=0}^{\lfloor (l-m)/2 \rfloor} (-1)^k \binom{l}{k}
      \binom{2l-2k}{l} \frac{(l-2k)!}{(l-2k-m)!}\, r^{2k} z^{l-2k-m},

  :math:`A_m + i B_m = (x + iy)^m`. On the sphere :math:`\Pi_l^0 = P_l(z)`, the
  Legendre polynomial with :math:`P_l(1) = 1`.
* **Normalization** (:func:`normalization_squared`):

  - ``"integral"``: :math:`\int_{S^2} (Y_l^m)^2 \, d\Omega = 1` (orthonormal);
  - ``"component"`` (e3nn's default): :math:`\sum_m Y_l^m(u)^2 = 2l + 1`, i.e.
    :math:`\sqrt{4\pi}` times ``"integral"``;
  - ``"norm"``: :math:`\sum_m Y_l^m(u)^2 = 1`.

  :math:`N_{lm}^2` is :math:`(2l+1)\,\epsilon_m \frac{(l-|m|)!}{(l+|m|)!}` for
  ``"component"``, with :math:`\epsilon_0 = 1` and :math:`\epsilon_m = 2` otherwise.

Maps to other libraries (tested)
-------------------------------
* **e3nn** (``e3nn.o3.spherical_harmonics(l, v, normalize=True, normalization=...)``):
  e3nn uses ``y`` as its polar axis. For every ``l``, ``m`` and unit ``v``,
  ``e3nn(v)[m + l] == Y_l^m(v_z, v_x, v_y)`` with the same normalization name, no sign
  change (:func:`e3nn_direction_to_spanthm`).
* **sympy** (``sympy.Znm``) carries the Condon-Shortley phase and another sign for the
  sine-type harmonics: ``Znm(l, m) == sympy_znm_sign(m) * Y_l^m`` with ``"integral"``
  normalization (:func:`sympy_znm_sign`).

Everything here is exact: coefficients are sympy ``QQ`` rationals and normalizations are
sympy expressions; nothing on this path is a float.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb, factorial
from typing import Dict, Tuple

import sympy
from sympy import QQ

from . import _validate

__all__ = [
    "Monomial",
    "Polynomial",
    "legendre_coefficients",
    "solid_harmonic",
    "harmonic_basis",
    "normalization_squared",
    "real_spherical_harmonic",
    "sphere_moment",
    "sphere_inner_product",
    "poly_mul",
    "laplacian",
    "evaluate_polynomial",
    "e3nn_direction_to_spanthm",
    "sympy_znm_sign",
    "NORMALIZATIONS",
]

Monomial = Tuple[int, int, int]
"""Exponents ``(a, b, c)`` of the monomial :math:`x^a y^b z^c`."""

Polynomial = Dict[Monomial, object]
"""A polynomial in ``x, y, z`` as ``{(a, b, c): coefficient}`` with ``QQ`` coefficients."""

NORMALIZATIONS = ("integral", "component", "norm")


def _check_lm(l: int, m: int) -> None:
    _validate.degree_L(l)
    if not isinstance(m, int) or isinstance(m, bool):
        raise TypeError(f"order m must be an integer, got {m!r}")
    if abs(m) > l:
        raise ValueError(f"order m must satisfy |m| <= l = {l}, got m = {m}")


@lru_cache(maxsize=None)
def legendre_coefficients(l: int) -> tuple:
    r"""Coefficients of the Legendre polynomial :math:`P_l(z)` in ascending powers of ``z``.

    Normalized by :math:`P_l(1) = 1`; computed exactly with Bonnet's recurrence
    :math:`(n+1) P_{n+1} = (2n+1) z P_n - n P_{n-1}`.

    Examples
    --------
    >>> [str(c) for c in legendre_coefficients(2)]
    ['-1/2', '0', '3/2']
    """
    _validate.degree_L(l)
    prev, cur = [QQ(1)], [QQ(0), QQ(1)]
    if l == 0:
        return tuple(prev)
    for n in range(1, l):
        nxt = [QQ(0)] * (n + 2)
        for i, c in enumerate(cur):
            nxt[i + 1] += QQ(2 * n + 1, n + 1) * c
        for i, c in enumerate(prev):
            nxt[i] -= QQ(n, n + 1) * c
        prev, cur = cur, nxt
    return tuple(cur)


def poly_mul(p: Polynomial, q: Polynomial) -> Polynomial:
    """Product of two polynomials in the ``{(a, b, c): coefficient}`` representation."""
    out: Polynomial = {}
    for (a1, b1, c1), u in p.items():
        for (a2, b2, c2), v in q.items():
            key = (a1 + a2, b1 + b2, c1 + c2)
            out[key] = out.get(key, QQ(0)) + u * v
    return {k: v for k, v in out.items() if v != 0}


def _r2_power(k: int) -> Polynomial:
    """:math:`(x^2 + y^2 + z^2)^k` expanded."""
    out: Polynomial = {}
    for i in range(k + 1):
        for j in range(k - i + 1):
            coeff = comb(k, i) * comb(k - i, j)
            out[(2 * i, 2 * j, 2 * (k - i - j))] = QQ(coeff)
    return out


@lru_cache(maxsize=None)
def _solid_harmonic_cached(l: int, m: int) -> tuple:
    am = abs(m)
    pi_poly: Polynomial = {}
    for k in range((l - am) // 2 + 1):
        coeff = QQ(
            (-1) ** k * comb(l, k) * comb(2 * l - 2 * k, l) * factorial(l - 2 * k),
            factorial(l - 2 * k - am) * 2**l,
        )
        for (a, b, c), v in _r2_power(k).items():
            key = (a, b, c + l - 2 * k - am)
            pi_poly[key] = pi_poly.get(key, QQ(0)) + coeff * v
    # (x + i y)^am = sum_p C(am, p) x^p (i y)^(am - p); i^(am-p) is 1, i, -1, -i.
    ab: Polynomial = {}
    for p in range(am + 1):
        q = am - p
        unit = [(1, 0), (0, 1), (-1, 0), (0, -1)][q % 4]  # (real, imaginary) part of i^q
        part = unit[0] if m >= 0 else unit[1]
        if part:
            ab[(p, q, 0)] = QQ(part * comb(am, p))
    poly = poly_mul(pi_poly, ab)
    return tuple(sorted(poly.items()))


def solid_harmonic(l: int, m: int) -> Polynomial:
    r"""The harmonic polynomial :math:`p_{lm}(x, y, z)` with :math:`Y_l^m = N_{lm} p_{lm}`.

    Homogeneous of degree ``l``, harmonic (:math:`\Delta p_{lm} = 0`), rational
    coefficients; conventions in the module docstring.

    Parameters
    ----------
    l : int
        Degree, ``l >= 0``.
    m : int
        Order, ``-l <= m <= l``.

    Returns
    -------
    dict
        ``{(a, b, c): coefficient}`` for :math:`x^a y^b z^c`.

    Examples
    --------
    >>> {k: str(v) for k, v in sorted(solid_harmonic(2, 2).items())}
    {(0, 2, 0): '-3', (2, 0, 0): '3'}
    """
    _check_lm(l, m)
    return dict(_solid_harmonic_cached(l, m))


def harmonic_basis(l: int) -> list:
    """The ``2l + 1`` polynomials :func:`solid_harmonic` ``(l, m)`` for ``m = -l..l``."""
    return [solid_harmonic(l, m) for m in range(-l, l + 1)]


def normalization_squared(l: int, m: int, normalization: str = "integral"):
    r"""The exact square :math:`N_{lm}^2` of the factor in :math:`Y_l^m = N_{lm} p_{lm}`.

    Returns a sympy expression (a rational, divided by :math:`4\pi` for ``"integral"``).

    Examples
    --------
    >>> normalization_squared(1, 0, "component")
    3
    >>> normalization_squared(2, 2, "integral")
    5/(48*pi)
    """
    _check_lm(l, m)
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}"
        )
    am = abs(m)
    component = sympy.Rational((2 * l + 1) * (1 if m == 0 else 2) * factorial(l - am),
                               factorial(l + am))
    if normalization == "component":
        return component
    if normalization == "norm":
        return component / (2 * l + 1)
    return component / (4 * sympy.pi)


def real_spherical_harmonic(l: int, m: int, normalization: str = "integral",
                            variables=None):
    """:math:`Y_l^m` as an exact sympy expression in ``x, y, z`` (valid on the unit sphere).

    Parameters
    ----------
    l, m : int
        Degree and order.
    normalization : {"integral", "component", "norm"}
        See the module docstring.
    variables : tuple of sympy symbols, optional
        Defaults to ``sympy.symbols("x y z")``.

    Examples
    --------
    >>> real_spherical_harmonic(1, 1, "component")
    sqrt(3)*x
    """
    x, y, z = variables if variables is not None else sympy.symbols("x y z")
    poly = solid_harmonic(l, m)
    expr = sum(
        (sympy.Rational(int(v.numerator), int(v.denominator)) * x**a * y**b * z**c
         for (a, b, c), v in poly.items()),
        sympy.Integer(0),
    )
    return sympy.sqrt(normalization_squared(l, m, normalization)) * expr


def _double_factorial_odd(n: int) -> int:
    """(n)!! for odd n >= -1 (with (-1)!! = 1)."""
    out = 1
    while n > 1:
        out *= n
        n -= 2
    return out


@lru_cache(maxsize=None)
def sphere_moment(a: int, b: int, c: int):
    r"""Mean of :math:`x^a y^b z^c` over the unit sphere, exactly.

    .. math::

        \frac{1}{4\pi}\int_{S^2} x^a y^b z^c \, d\Omega =
        \frac{(a-1)!!\,(b-1)!!\,(c-1)!!}{(a+b+c+1)!!}

    when ``a, b, c`` are all even, and 0 otherwise.

    Examples
    --------
    >>> [str(sphere_moment(*e)) for e in [(2, 0, 0), (2, 2, 0), (1, 0, 0)]]
    ['1/3', '1/15', '0']
    """
    if a % 2 or b % 2 or c % 2:
        return QQ(0)
    num = _double_factorial_odd(a - 1) * _double_factorial_odd(b - 1) * _double_factorial_odd(c - 1)
    return QQ(num, _double_factorial_odd(a + b + c + 1))


def sphere_inner_product(p: Polynomial, q: Polynomial):
    r"""Exact :math:`\frac{1}{4\pi}\int_{S^2} p\, q \, d\Omega` of two polynomials."""
    total = QQ(0)
    for (a1, b1, c1), u in p.items():
        for (a2, b2, c2), v in q.items():
            total += u * v * sphere_moment(a1 + a2, b1 + b2, c1 + c2)
    return total


def laplacian(p: Polynomial) -> Polynomial:
    """The Laplacian of a polynomial, exactly."""
    out: Polynomial = {}
    for (a, b, c), v in p.items():
        for axis, e in enumerate((a, b, c)):
            if e >= 2:
                key = [a, b, c]
                key[axis] -= 2
                key = tuple(key)
                out[key] = out.get(key, QQ(0)) + v * e * (e - 1)
    return {k: v for k, v in out.items() if v != 0}


def evaluate_polynomial(p: Polynomial, points):
    """Evaluate a polynomial at points of shape ``(n, 3)`` in floating point (numpy).

    For tests and numerical cross-checks only; never used on the exact path.
    """
    import numpy as np

    pts = np.asarray(points, dtype=float)
    out = np.zeros(pts.shape[0])
    for (a, b, c), v in p.items():
        out += float(v) * pts[:, 0] ** a * pts[:, 1] ** b * pts[:, 2] ** c
    return out


def e3nn_direction_to_spanthm(v):
    """Map a direction for e3nn to the direction at which spanthm's harmonics agree.

    ``e3nn.o3.spherical_harmonics(l, v)[..., m + l] == Y_l^m(e3nn_direction_to_spanthm(v))``
    for the same normalization: ``(v_x, v_y, v_z) -> (v_z, v_x, v_y)``. Works on any array
    whose last axis has length 3.
    """
    return v[..., [2, 0, 1]]


def sympy_znm_sign(m: int) -> int:
    """Sign ``s`` with ``sympy.Znm(l, m, theta, phi) == s * Y_l^m`` (``"integral"``).

    ``+1`` for ``m = 0``; ``(-1)**m`` for ``m > 0`` (the Condon-Shortley phase); ``-1`` for
    every ``m < 0`` (sympy builds its sine-type harmonics with the opposite orientation).
    Checked for all ``|m| <= l <= 5`` by ``tests/test_harmonics.py::test_sympy_znm_map``.

    Examples
    --------
    >>> [sympy_znm_sign(m) for m in range(-2, 3)]
    [-1, -1, 1, -1, 1]
    """
    if m == 0:
        return 1
    if m > 0:
        return (-1) ** m
    return -1
