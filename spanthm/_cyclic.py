r"""Cyclic rings (:math:`C_n`): which ring targets a ring-summed probe can see (docs/method.md §3).

Setting
-------
A structure with a centre, ``n >= 2`` identical ring atoms on a regular ``n``-gon about an
axis and (in the C5 calibration) an apex on the axis. In the structure's own frame the axis
is ``z`` (conventions of :mod:`spanthm._harmonics`) and the unit vectors from the centre to
the ring atoms are :math:`v_k = (\theta_0,\ \phi_0 + 2\pi k/n)`, ``k = 0..n-1``, with polar
angle :math:`\theta_0` (:math:`\cos\theta_0 = 0`: planar ring) and in-plane phase
:math:`\phi_0`. Rotating the structure about its own axis by :math:`\alpha` shifts
:math:`\phi_0` by :math:`\alpha`.

* **Ring target** of degree ``l``: :math:`t = \sum_k c\cdot\mathbf Y_l(v_k)`.
* **Ring probe** of degree ``d`` on features of degrees ``S`` (``S = {0..L}`` by default):
  one polynomial ``f`` of degree ``<= d`` in one atom's ideal features
  :math:`Y_j^m(v_k)`, ``j in S``, applied to every ring atom and summed,
  :math:`q = \sum_k f(v_k)`.

1. Ring sums
------------
For the complex harmonics, :math:`\sum_k Y_l^m(\theta_0, \phi_0 + 2\pi k/n) =
n\,Y_l^m(\theta_0, \phi_0)` when ``n`` divides ``m`` and ``0`` otherwise, because
:math:`\sum_k e^{2\pi i km/n}` is ``n`` or ``0``. In the real basis the pair
:math:`Y_l^{\pm m} \propto P_l^{m}(\cos\theta_0)\,(\cos m\phi, \sin m\phi)` behaves the same
way, and :math:`Y_l^0` gives the constant :math:`n\,Y_l^0(\theta_0)`. So the ring sum of a
degree-``l`` harmonic depends on the in-plane orientation :math:`\phi_0` if and only if some
``m`` with ``0 < m <= l`` and ``n | m`` has :math:`P_l^m(\cos\theta_0) \ne 0` -- the
*orientation modes* (:func:`ring_orientation_modes`). Since
:math:`P_l^m(x) = (-1)^m (1 - x^2)^{m/2} P_l^{(m)}(x)` and ``|x| < 1``, this is
:math:`P_l^{(m)}(x) \ne 0`, the ``m``-th derivative of the Legendre polynomial, computed
here exactly in :math:`\mathbb Q` (:func:`legendre_derivative`).

* *Planar ring* (``cos_theta = 0``): :math:`P_l^{(m)}(0) \ne 0` exactly when ``l + m`` is
  even, so the modes are the multiples ``m`` of ``n`` with ``0 < m <= l`` and ``l + m`` even.
* *Lowest orientation-carrying degree*: ``n``, for every ring (:math:`P_n^{(n)}` is the
  non-zero constant :math:`(2n)!/(2^n n!)`, and ``m >= n`` needs ``l >= n``).

2. Which degrees a ring probe reaches
------------------------------------
As a function of the structure's orientation :math:`R \in SO(3)`,
:math:`t(R) = c^\top D^l(R)\, w_l` with :math:`w_l = \sum_k \mathbf Y_l(v_k)`: it lies in the
``l``-isotypic part :math:`\mathcal E_l` of :math:`L^2(SO(3))`. The span theorem gives
:math:`P_d(S) = \bigoplus_{j \in \Lambda} H_j` with :math:`\Lambda` =
:func:`~spanthm.recoverable_degrees` (``{0..dL}`` for ``S = {0..L}``), so the ring probe lies
in :math:`\bigoplus_{j\in\Lambda}\mathcal E_j`. Hence, for a target that carries in-plane
orientation:

* ``l in Lambda`` (``l <= dL``): ``f = c . Y_l`` is a per-atom probe, and its ring sum *is*
  the target -- **recoverable** (correlation 1);
* otherwise the target is Haar-orthogonal to every ring probe (Peter-Weyl; its mean is 0 for
  ``l >= 1``) -- **blind** (expected correlation 0).

For ``n = 5``, target degree 5: blind for ``(L, d) = (2, 2)`` and ``(1, 4)``, seen for
``(2, 3)``, ``(3, 2)`` and ``(1, 5)``. The single direction (axis probe, ``n = 1``) is the
span theorem itself. Proof: ``proofs/span_theorem.md``, section "Cyclic rings (C_n)".

Exactness
---------
``cos_theta`` is an exact rational strictly inside ``(-1, 1)``: an ``int``,
:class:`fractions.Fraction`, sympy ``Rational``/``QQ`` element, or a string that
:class:`fractions.Fraction` reads exactly (``"1/3"``, ``"0.25"``). Floats are refused.
:func:`ring_orientation_modes_numeric` is the floating-point cross-check (scipy
``sph_harm_y``), never used on the exact path.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from math import factorial
from typing import List, Optional, Tuple

from sympy import QQ

from . import _validate
from ._harmonics import legendre_coefficients

__all__ = [
    "legendre_derivative",
    "ring_orientation_modes",
    "carries_orientation",
    "ring_orientation_degrees",
    "ring_recoverable",
    "min_probe_degree",
    "RingDegree",
    "RingSpectrum",
    "ring_spectrum",
    "ring_orientation_modes_numeric",
]

_QQ_TYPE = type(QQ(1, 3))


# --------------------------------------------------------------------------- validation

def _ring_size(n: object) -> int:
    if not _validate._is_integer(n):
        raise TypeError(f"ring size n must be an integer >= 2, got {n!r}")
    if n < 2:
        raise ValueError(f"ring size n must be >= 2 (n = 1 is a single direction: use "
                         f"recoverable_degrees), got {n}")
    return int(n)


def _degree(l: object, name: str = "degree l") -> int:
    if not _validate._is_integer(l):
        raise TypeError(f"{name} must be an integer >= 0, got {l!r}")
    if l < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {l}")
    return int(l)


def _rational(value: object, name: str):
    """An exact rational (int, Fraction, sympy Rational/QQ, or a string) as a QQ element."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an exact rational, got {value!r}")
    if isinstance(value, str):
        try:
            frac = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{name} string {value!r} is not a rational number such as "
                             f"'1/3'") from None
        return QQ(frac.numerator, frac.denominator)
    if isinstance(value, (numbers.Rational, _QQ_TYPE)):
        return QQ(int(value.numerator), int(value.denominator))
    raise TypeError(
        f"{name} must be exact (int, Fraction, sympy Rational or a string such as "
        f"'1/3'); got {type(value).__name__} {value!r}: floats are not exact")


def _cos_theta(value: object):
    """Validate ``cos(theta0)``: an exact rational strictly inside (-1, 1); returns a QQ."""
    x = _rational(value, "cos_theta")
    if not -1 < x < 1:
        raise ValueError(f"cos_theta must lie strictly inside (-1, 1) (ring atoms off the "
                         f"axis); got {_as_fraction(x)}")
    return x


def _cos_theta_float(value: object) -> float:
    if isinstance(value, (bool, str)):
        raise TypeError(f"cos_theta must be a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"cos_theta must be a real number, got {value!r}") from None
    if not -1.0 < x < 1.0:
        raise ValueError(f"cos_theta must lie strictly inside (-1, 1); got {value!r}")
    return x


def _as_fraction(x) -> Fraction:
    return Fraction(int(x.numerator), int(x.denominator))


@lru_cache(maxsize=None)
def _reachable(d: int, L: Optional[int], features: Optional[tuple]) -> frozenset:
    from ._spectrum import recoverable_degrees

    return frozenset(recoverable_degrees(d, L=L, features=features))


def _probe(d, L, features) -> Tuple[int, Optional[int], Optional[tuple]]:
    d = _validate.probe_degree(d)
    if (L is None) == (features is None):
        raise ValueError("give exactly one of L or features")
    if L is not None:
        return d, _validate.degree_L(L), None
    return d, None, _validate.feature_set(features)


# --------------------------------------------------------------------------- exact part

def legendre_derivative(l: int, m: int, x=0):
    r""":math:`P_l^{(m)}(x) = \frac{d^m}{dx^m} P_l(x)` exactly, for rational ``x``.

    The polynomial part of the associated Legendre function:
    :math:`P_l^m(x) = (-1)^m (1 - x^2)^{m/2} P_l^{(m)}(x)`, so for ``|x| < 1`` the two vanish
    together. Differentiates the exact coefficients of
    :func:`spanthm._harmonics.legendre_coefficients`.

    Parameters
    ----------
    l, m : int
        Degree ``l >= 0`` and order ``0 <= m``; the result is 0 for ``m > l``.
    x : exact rational, default 0
        Any exact rational (not restricted to ``(-1, 1)`` here).

    Returns
    -------
    sympy ``QQ`` element

    Examples
    --------
    >>> [str(legendre_derivative(4, m)) for m in range(5)]
    ['3/8', '0', '-15/2', '0', '105']
    """
    l = _degree(l)
    m = _degree(m, "order m")
    xq = _rational(x, "x")
    coeffs = legendre_coefficients(l)
    total = QQ(0)
    for j in range(l, m - 1, -1):  # Horner in x of sum_j c_j j!/(j-m)! x^(j-m)
        total = total * xq + coeffs[j] * QQ(factorial(j), factorial(j - m))
    return total


def _modes(n: int, l: int, x) -> Tuple[int, ...]:
    return tuple(m for m in range(n, l + 1, n) if legendre_derivative(l, m, x) != 0)


def ring_orientation_modes(n: int, l: int, cos_theta=0) -> List[int]:
    r"""Orders ``m > 0`` at which the ring sum of degree-``l`` harmonics depends on the
    in-plane orientation.

    The ``m > 0``, multiples of ``n`` with ``m <= l``, for which
    :math:`P_l^m(\cos\theta_0) \ne 0` (exactly; module docstring, part 1). The ring sum of
    :math:`Y_l^{\pm m}` is then :math:`n\,Y_l^{\pm m}(\theta_0, \phi_0)`, which varies with
    :math:`\phi_0`; every other non-zonal component sums to 0.

    Parameters
    ----------
    n : int
        Number of ring atoms, ``>= 2``.
    l : int
        Harmonic degree, ``>= 0``.
    cos_theta : exact rational in (-1, 1), default 0
        Cosine of the ring's polar angle in the axis frame (0: planar ring).

    Returns
    -------
    list of int
        Ascending.

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range ``n``/``l``; ``cos_theta`` a float, not rational, or
        not strictly inside ``(-1, 1)``.

    Examples
    --------
    >>> ring_orientation_modes(5, 5), ring_orientation_modes(5, 6), ring_orientation_modes(5, 10)
    ([5], [], [10])
    >>> ring_orientation_modes(3, 6, "1/3")
    [3, 6]
    """
    n = _ring_size(n)
    l = _degree(l)
    return list(_modes(n, l, _cos_theta(cos_theta)))


def carries_orientation(n: int, l: int, cos_theta=0) -> bool:
    """Whether the ring sum of degree-``l`` harmonics depends on the in-plane orientation
    (:func:`ring_orientation_modes` is non-empty).

    Examples
    --------
    >>> [l for l in range(12) if carries_orientation(5, l)]
    [5, 7, 9, 10, 11]
    """
    return bool(ring_orientation_modes(n, l, cos_theta))


def ring_orientation_degrees(n: int, lmax: int, cos_theta=0) -> List[int]:
    """Degrees ``l <= lmax`` whose ring sums carry in-plane orientation.

    The smallest one is always ``n`` (module docstring, part 1).

    Examples
    --------
    >>> ring_orientation_degrees(5, 9), ring_orientation_degrees(5, 9, "1/2")
    ([5, 7, 9], [5, 6, 7, 8, 9])
    """
    n = _ring_size(n)
    lmax = _degree(lmax, "lmax")
    x = _cos_theta(cos_theta)
    return [l for l in range(lmax + 1) if _modes(n, l, x)]


def ring_recoverable(n: int, d: int, L: Optional[int] = None, features=None,
                     target_degree: Optional[int] = None, cos_theta=0) -> bool:
    r"""Whether the degree-``d`` ring probe recovers the ring target of ``target_degree``.

    True iff ``target_degree`` is in :func:`~spanthm.recoverable_degrees` ``(d, L,
    features)`` (``target_degree <= dL`` for ``S = {0..L}``): then the probe reproduces the
    target exactly; otherwise the target is Haar-orthogonal to every ring probe (blind).

    Parameters
    ----------
    n : int
        Number of ring atoms, ``>= 2``.
    d : int
        Probe degree, ``>= 1``.
    L, features
        Exactly one: features ``{0..L}``, or a feature set ``S``.
    target_degree : int, optional
        Degree ``l`` of the ring target; defaults to ``n``, the lowest degree whose ring sum
        carries in-plane orientation (for every ring).
    cos_theta : exact rational in (-1, 1), default 0
        Polar angle of the ring in the axis frame.

    Raises
    ------
    ValueError
        If the ring target carries no in-plane orientation: its ring sum vanishes
        identically (nothing to recover), or it depends only on the axis direction (then it
        is a single-direction target: use :func:`~spanthm.recoverable_degrees`). Also for
        bad arguments (TypeError for bad types).

    Examples
    --------
    >>> [ring_recoverable(5, d, L=L) for L, d in [(2, 2), (2, 3), (3, 2), (1, 4), (1, 5)]]
    [False, True, True, False, True]
    """
    n = _ring_size(n)
    d, L, features = _probe(d, L, features)
    l = n if target_degree is None else _degree(target_degree, "target_degree")
    x = _cos_theta(cos_theta)
    if not _modes(n, l, x):
        where = f"a regular {n}-gon at cos(theta0) = {_as_fraction(x)}"
        if legendre_derivative(l, 0, x) == 0:
            raise ValueError(f"the ring sum of degree-{l} harmonics over {where} vanishes "
                             f"identically: there is no ring target to recover")
        raise ValueError(
            f"the ring sum of degree-{l} harmonics over {where} carries no in-plane "
            f"orientation: it depends on the axis direction only, a single-direction target "
            f"(use recoverable_degrees); orientation-carrying degrees start at {n}")
    return l in _reachable(d, L, features)


def min_probe_degree(n: int, L: Optional[int] = None, features=None, cos_theta=0) -> int:
    r"""Smallest probe degree ``d`` whose ring probe sees in-plane orientation.

    The smallest ``d`` for which some orientation-carrying degree is in
    :func:`~spanthm.recoverable_degrees` ``(d, ...)``. For ``S = {0..L}`` the reachable
    degrees are ``0..dL``, so this is the smallest ``d`` reaching the lowest
    orientation-carrying degree ``n``: :math:`\lceil n/L \rceil`. For a feature set with a
    gapped spectrum it can be a later degree (``S = {2}``, ``n = 5``: only even degrees are
    reached, and the first orientation-carrying even degree is 10, so ``d = 5``). The search
    stops at ``d = 2n``, where ``(max S)^{2n}`` reaches the always-carrying degree ``2n``.

    Raises
    ------
    ValueError
        If the features are only constants (``max S = 0``): no degree sees orientation.

    Examples
    --------
    >>> min_probe_degree(5, L=2), min_probe_degree(5, L=3), min_probe_degree(5, features={2})
    (3, 2, 5)
    """
    n = _ring_size(n)
    _, L, features = _probe(1, L, features)
    x = _cos_theta(cos_theta)
    if (L if L is not None else max(features)) == 0:
        raise ValueError("features of degree 0 are constants: no probe degree sees the "
                         "in-plane orientation of a ring")
    for d in range(1, 2 * n + 1):
        reach = _reachable(d, L, features)
        if any(_modes(n, l, x) for l in reach):
            return d
    raise AssertionError("unreachable: degree 2n carries orientation and is reached "
                         "at d = 2n")  # pragma: no cover


@dataclass(frozen=True)
class RingDegree:
    """One degree ``l`` of a :class:`RingSpectrum`.

    ``modes``: :func:`ring_orientation_modes`; ``axis_component``: the zonal part of the ring
    sum, :math:`n Y_l^0(\\theta_0)`, is non-zero; ``carries_orientation``: ``modes``
    non-empty; ``reachable``: ``l`` in :func:`~spanthm.recoverable_degrees`; ``seen``:
    carries orientation and reachable (the probe sees this degree's in-plane orientation).
    """

    l: int
    modes: Tuple[int, ...]
    axis_component: bool
    carries_orientation: bool
    reachable: bool

    @property
    def seen(self) -> bool:
        return self.carries_orientation and self.reachable


@dataclass
class RingSpectrum:
    """Result of :func:`ring_spectrum`: per degree ``l = 0..lmax``, what a ring probe sees."""

    n: int
    d: int
    features: Tuple[int, ...]
    cos_theta: Fraction
    lmax: int
    ceiling: int
    rows: List[RingDegree] = field(default_factory=list)

    @property
    def orientation_degrees(self) -> List[int]:
        """Degrees whose ring sums carry in-plane orientation."""
        return [r.l for r in self.rows if r.carries_orientation]

    @property
    def seen_degrees(self) -> List[int]:
        """Orientation-carrying degrees the probe reaches (recoverable ring targets)."""
        return [r.l for r in self.rows if r.seen]

    @property
    def blind_degrees(self) -> List[int]:
        """Orientation-carrying degrees above the probe's reach (Haar-orthogonal)."""
        return [r.l for r in self.rows if r.carries_orientation and not r.reachable]

    def to_dict(self) -> dict:
        return {
            "n": self.n, "d": self.d, "features": list(self.features),
            "cos_theta": str(self.cos_theta), "lmax": self.lmax, "ceiling": self.ceiling,
            "rows": [{"l": r.l, "modes": list(r.modes), "axis_component": r.axis_component,
                      "carries_orientation": r.carries_orientation,
                      "reachable": r.reachable, "seen": r.seen} for r in self.rows],
        }


def ring_spectrum(n: int, d: int, L: Optional[int] = None, features=None,
                  lmax: Optional[int] = None, cos_theta=0) -> RingSpectrum:
    """Per degree ``l <= lmax``: orientation modes, reachability and whether the ring probe
    sees it.

    Parameters
    ----------
    n, d, L, features, cos_theta
        As in :func:`ring_recoverable`.
    lmax : int, optional
        Highest degree listed; defaults to ``max(ceiling, n) + 2`` (the probe's ceiling or the
        lowest orientation-carrying degree, plus two degrees beyond).

    Returns
    -------
    RingSpectrum

    Examples
    --------
    >>> s = ring_spectrum(5, 2, L=2)
    >>> s.ceiling, s.orientation_degrees, s.seen_degrees, s.blind_degrees
    (4, [5, 7], [], [5, 7])
    >>> ring_spectrum(5, 3, L=2).seen_degrees
    [5]
    """
    n = _ring_size(n)
    d, L, features = _probe(d, L, features)
    x = _cos_theta(cos_theta)
    reach = _reachable(d, L, features)
    top = max(reach)
    lmax = max(top, n) + 2 if lmax is None else _degree(lmax, "lmax")
    rows = []
    for l in range(lmax + 1):
        modes = _modes(n, l, x)
        rows.append(RingDegree(l=l, modes=modes,
                               axis_component=legendre_derivative(l, 0, x) != 0,
                               carries_orientation=bool(modes), reachable=l in reach))
    feats = tuple(range(L + 1)) if L is not None else features
    return RingSpectrum(n=n, d=d, features=feats, cos_theta=_as_fraction(x), lmax=lmax,
                        ceiling=top, rows=rows)


# --------------------------------------------------------------------------- numeric check

def ring_orientation_modes_numeric(n: int, l: int, cos_theta=0.0, seed: int = 0,
                                   phases: int = 5, tol: float = 1e-9) -> List[int]:
    r"""Floating-point cross-check of :func:`ring_orientation_modes` (independent route).

    Evaluates the ring sum :math:`\sum_k Y_l^m(\theta_0, \phi_0 + 2\pi k/n)` of every real
    harmonic ``m = -l..l`` (orthonormal, built from :func:`scipy.special.sph_harm_y` as in
    :mod:`spanthm._numeric`) at ``phases`` random in-plane phases :math:`\phi_0`; order
    ``m > 0`` is reported when the ring sum of :math:`Y_l^m` or :math:`Y_l^{-m}` changes by
    more than ``tol`` (absolute) across the phases. Every ``m``, multiple of ``n`` or not,
    is tested.

    Examples
    --------
    >>> ring_orientation_modes_numeric(5, 7), ring_orientation_modes_numeric(3, 6, 1 / 3)
    ([5], [3, 6])
    """
    import numpy as np

    from ._numeric import real_harmonics_numeric

    n = _ring_size(n)
    l = _degree(l)
    x = _cos_theta_float(cos_theta)
    rng = np.random.default_rng(seed)
    phi0 = rng.uniform(0.0, 2.0 * np.pi, size=phases)
    phi = phi0[:, None] + 2.0 * np.pi * np.arange(n)[None, :] / n  # (phases, n)
    theta = np.full(phi.shape, np.arccos(x))
    values = real_harmonics_numeric(l, theta.ravel(), phi.ravel())  # rows: m=0, (cos, sin) m
    ring = values.reshape(2 * l + 1, phases, n).sum(axis=2)
    spread = ring.max(axis=1) - ring.min(axis=1)
    return [m for m in range(1, l + 1) if max(spread[2 * m - 1], spread[2 * m]) > tol]
