r"""Selection rules: which harmonic degrees a product of harmonics can reach.

Two independent pieces live here.

* :func:`gaunt_spectrum`: the Gaunt selection rules iterated over the factors. The product
  :math:`Y_{l_1}^{m_1} Y_{l_2}^{m_2}` has a nonzero :math:`H_l` component only if
  :math:`|l_1 - l_2| \le l \le l_1 + l_2` (triangle) and :math:`l_1 + l_2 + l` is even
  (parity), and every such ``l`` is reached (Gaunt coefficients with all ``m = 0`` are
  nonzero there). Multiplying in one factor at a time gives the reachable degrees of
  products of ``n`` factors as a set recursion; no multiset is enumerated.
* :func:`degree_window` and :func:`absence_reason`: for one multiset ``M`` of factor
  degrees, the window :math:`[lo(M), hi(M)]` with parity :math:`\sum M \bmod 2` outside
  which a product cannot have an :math:`H_l` component, proved by degree arguments only:

  - *degree bound*: a product of harmonics of degrees ``M`` is a polynomial of degree
    :math:`hi(M) = \sum M`, and :math:`H_l` is orthogonal to polynomials of degree
    ``< l``, so ``l <= hi(M)``;
  - *parity*: the product satisfies :math:`f(-u) = (-1)^{\sum M} f(u)` and
    :math:`Y_l(-u) = (-1)^l Y_l(u)`;
  - *orthogonality from below*: if :math:`k = \max M`, then :math:`Y_l \cdot (\text{other
    factors})` has degree :math:`l + \sum M - k`, orthogonal to :math:`H_k` when that is
    below ``k``, so :math:`l \ge 2k - \sum M`.

  These give the absence certificates of the exact method (:mod:`spanthm._projection`).

Conventions: a *multiset* is a sorted tuple of degrees; the empty multiset is the constant
function 1 (degree 0).
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Iterator

__all__ = [
    "multisets",
    "degree_window",
    "in_window",
    "absence_reason",
    "gaunt_products",
    "gaunt_spectrum",
]


def multisets(features: tuple, d: int, exactly: bool) -> Iterator[tuple]:
    """All multisets of factor degrees generating :math:`P_d(S)` or :math:`P_{=d}(S)`.

    Sizes ``0..d`` (the empty product is the constant) unless ``exactly``, then size ``d``.
    Yields sorted tuples, smaller sizes first.
    """
    sizes = [d] if exactly else range(d + 1)
    for n in sizes:
        yield from combinations_with_replacement(features, n)


def degree_window(multiset: tuple) -> tuple:
    r"""``(lo, hi)`` such that a product of harmonics of degrees ``multiset`` lies in
    :math:`\bigoplus_{l} H_l` over ``lo <= l <= hi`` with ``l = hi (mod 2)``.

    :math:`hi = \sum M`, :math:`lo = \max(hi \bmod 2,\ 2\max M - \sum M)`.

    Examples
    --------
    >>> degree_window((2, 2)), degree_window((5,)), degree_window(())
    ((0, 4), (5, 5), (0, 0))
    """
    hi = sum(multiset)
    top = max(multiset) if multiset else 0
    return max(hi % 2, 2 * top - hi), hi


def in_window(l: int, multiset: tuple) -> bool:
    """Whether degree ``l`` lies in :func:`degree_window` of ``multiset`` with its parity."""
    lo, hi = degree_window(multiset)
    return lo <= l <= hi and (hi - l) % 2 == 0


def absence_reason(l: int, multiset: tuple):
    """Why products of harmonics of degrees ``multiset`` have no :math:`H_l` component.

    Returns ``"degree"`` (``l > sum``), ``"parity"`` (``l`` and ``sum`` of different
    parity), ``"orthogonality"`` (``l < 2 max - sum``) or ``None`` when ``l`` is in the
    window (no such proof exists).
    """
    lo, hi = degree_window(multiset)
    if l > hi:
        return "degree"
    if (hi - l) % 2:
        return "parity"
    if l < lo:
        return "orthogonality"
    return None


def gaunt_products(a: int, b: int) -> range:
    """Degrees ``l`` allowed in :math:`H_a \\cdot H_b` by the Gaunt rules (triangle, parity).

    Examples
    --------
    >>> list(gaunt_products(2, 2)), list(gaunt_products(1, 2))
    ([0, 2, 4], [1, 3])
    """
    return range(abs(a - b), a + b + 1, 2)


def gaunt_spectrum(features: tuple, d: int, exactly: bool = False) -> set:
    """Degrees reachable by products of features, by iterating the Gaunt rules.

    ``reach_0 = {0}`` (the constant); ``reach_n = {l : l in gaunt_products(j, k),
    j in reach_{n-1}, k in features}``; the spectrum is ``reach_d`` for
    :math:`P_{=d}(S)` and the union of ``reach_0..reach_d`` for :math:`P_d(S)`.

    Examples
    --------
    >>> sorted(gaunt_spectrum((2,), 2, exactly=True))
    [0, 2, 4]
    >>> sorted(gaunt_spectrum((0, 1, 2), 2))
    [0, 1, 2, 3, 4]
    """
    reach = {0}
    union = set(reach)
    for _ in range(d):
        reach = {l for j in reach for k in features for l in gaunt_products(j, k)}
        union |= reach
    return reach if exactly else union
