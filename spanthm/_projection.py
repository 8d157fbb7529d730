r"""Exact projection of products of spherical harmonics onto each :math:`H_l`.

Two exact methods, both in rational arithmetic (sympy ``QQ``), no float anywhere.

Certified method (:func:`exact_spectrum`)
----------------------------------------
Uses three facts (proved in ``proofs/span_theorem.md``):

1. :math:`P_d(S)` is rotation invariant and :math:`L^2(S^2)` holds each :math:`H_l` once,
   so :math:`P_d(S) \cap H_l` is ``0`` or all of :math:`H_l`, and it is all of
   :math:`H_l` as soon as one element of :math:`P_d(S)` has a nonzero :math:`H_l`
   projection (Lemma 1).
2. The zonal (``m = 0``) features are Legendre polynomials :math:`P_k(z)`, so the
   projection of a zonal product :math:`\prod_i P_{k_i}(z)` onto :math:`H_l` is
   :math:`c_l P_l(z)` with :math:`c_l` the exact rational Legendre coefficient of the
   product (:func:`legendre_expansion`). A nonzero :math:`c_l` is a *witness*.
3. Degree, parity and orthogonality bounds (:mod:`spanthm._rules`) prove absence.

So a present degree costs at most one exact univariate product and an absent one a bound; the
result carries the witnesses and the absence reasons that make up a certificate.

Brute-force method (:func:`brute_force_spectrum`)
------------------------------------------------
Forms *every* product of at most ``d`` feature components (all ``m``), projects each
exactly onto the :math:`2l+1` basis polynomials of :math:`H_l` with the closed-form sphere
moments, and reports the exact rank of that projection matrix for every ``l``. It uses
none of the facts above (its dimensions are measured, not inferred) and is the baseline of
``bench/bench_spanthm.py``; it is slow beyond ``max(S) * d ~ 6``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations_with_replacement
from math import comb
from typing import Dict, List, Optional, Tuple

from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from . import _harmonics, _rules, _validate

__all__ = [
    "Witness",
    "Absence",
    "ExactSpectrum",
    "zonal_product",
    "legendre_expansion",
    "exact_spectrum",
    "brute_force_spectrum",
]


@dataclass(frozen=True)
class Witness:
    """A zonal product with a nonzero projection onto :math:`H_l`.

    Attributes
    ----------
    l : int
        The degree certified present.
    factors : tuple of int
        Degrees :math:`k_1 \\le \\dots \\le k_n` of the zonal factors :math:`P_{k_i}(z)`
        (empty: the constant 1).
    coefficient : QQ
        :math:`c_l` in :math:`\\prod_i P_{k_i}(z) = \\sum_j c_j P_j(z)`, nonzero.
    """

    l: int
    factors: tuple
    coefficient: object


@dataclass(frozen=True)
class Absence:
    """Why no element of ``P`` has an :math:`H_l` component.

    ``reason`` is ``"degree"`` (``l`` exceeds ``bound``, the highest polynomial degree in
    ``P``), ``"parity"`` (every generating product has parity opposite to ``l``) or
    ``"bounds"`` (each generating product is excluded by its own degree, parity or
    orthogonality bound, see :func:`spanthm._rules.absence_reason`).
    """

    l: int
    reason: str
    bound: Optional[int] = None


@dataclass
class ExactSpectrum:
    """Result of :func:`exact_spectrum`.

    ``dims[l]`` is :math:`\\dim(P \\cap H_l)` for ``l = 0 .. max(S) * d + 2``.
    """

    features: tuple
    d: int
    exactly: bool
    dims: Dict[int, int]
    witnesses: Dict[int, Witness] = field(default_factory=dict)
    absences: Dict[int, Absence] = field(default_factory=dict)
    products_computed: int = 0

    @property
    def degrees(self) -> List[int]:
        return sorted(l for l, n in self.dims.items() if n)


def _poly_mul_1d(p: tuple, q: tuple) -> tuple:
    out = [QQ(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        if a:
            for j, b in enumerate(q):
                out[i + j] += a * b
    return tuple(out)


@lru_cache(maxsize=4096)
def zonal_product(factors: tuple) -> tuple:
    r"""Coefficients (ascending powers of ``z``) of :math:`\prod_i P_{k_i}(z)`.

    Examples
    --------
    >>> [str(c) for c in zonal_product((1, 1))]
    ['0', '0', '1']
    """
    if not factors:
        return (QQ(1),)
    head = zonal_product(tuple(factors[:-1]))
    return _poly_mul_1d(head, _harmonics.legendre_coefficients(factors[-1]))


def legendre_expansion(coefficients: tuple) -> Dict[int, object]:
    r"""Exact Legendre coefficients :math:`c_l` of :math:`f(z) = \sum_l c_l P_l(z)`.

    ``coefficients`` are ascending powers of ``z``. Eliminates from the top degree down:
    the leading coefficient of :math:`P_n` fixes :math:`c_n`, subtract, repeat. Returns
    nonzero coefficients only.

    Examples
    --------
    >>> {l: str(c) for l, c in legendre_expansion(zonal_product((2, 2))).items()}
    {0: '1/5', 2: '2/7', 4: '18/35'}
    """
    rest = list(coefficients)
    out: Dict[int, object] = {}
    for n in range(len(rest) - 1, -1, -1):
        c = rest[n]
        if not c:
            continue
        pn = _harmonics.legendre_coefficients(n)
        cn = c / pn[n]
        out[n] = cn
        for i, a in enumerate(pn):
            if a:
                rest[i] -= cn * a
    return dict(sorted(out.items()))


def exact_spectrum(features, d: int, exactly: bool = False) -> ExactSpectrum:
    r"""Spectrum of :math:`P_d(S)` (or :math:`P_{=d}(S)`) by certified exact projection.

    For every ``l = 0 .. max(S) * d + 2``: present with a :class:`Witness` (a zonal product
    with exact nonzero projection :math:`c_l`), or absent with an :class:`Absence` proof.

    Parameters
    ----------
    features : collection of int
        Feature set ``S``.
    d : int
        Probe degree ``>= 1``.
    exactly : bool
        ``True`` for products of exactly ``d`` features, :math:`P_{=d}(S)`.

    Returns
    -------
    ExactSpectrum

    Raises
    ------
    ArithmeticError
        If a zonal product has a zero projection onto a degree inside its window
        (impossible by Lemma 3 of ``proofs/span_theorem.md``; raising keeps the method
        honest).

    Notes
    -----
    Degrees above ``d * max(S)`` are absent by the degree bound and degrees of a parity no
    generating product has by parity, without enumerating products. The rest are decided by
    walking the generating products from the largest down and expanding only those whose
    degree window (:func:`spanthm._rules.degree_window`) covers a still undecided degree; a
    degree in no window is absent by the per-product bounds (``"bounds"``). For
    ``S = {0..L}`` and ``d >= 2`` two products suffice.

    Examples
    --------
    >>> exact_spectrum({0, 1, 2}, 2).degrees
    [0, 1, 2, 3, 4]
    >>> exact_spectrum({2}, 4, exactly=True).dims[5]
    0
    """
    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    top = max(features) * d + 2
    max_degree = max(features) * d  # the product of d top-degree features
    sizes = [d] if exactly else list(range(d + 1))
    parities = _sum_parities(features, sizes)

    result = ExactSpectrum(features, d, exactly, dims={})
    open_degrees = set()
    for l in range(top + 1):
        if l > max_degree:
            result.absences[l] = Absence(l, "degree", max_degree)
        elif l % 2 not in parities:
            result.absences[l] = Absence(l, "parity")
        else:
            open_degrees.add(l)

    # Largest products first: for S = {0..L} the first two, L^d and L^(d-1)(L-1), witness
    # every degree (proofs/span_theorem.md, Part 1), and the loop stops there.
    descending = tuple(sorted(features, reverse=True))
    for n in sorted(sizes, reverse=True):
        if not open_degrees:
            break
        for m in combinations_with_replacement(descending, n):
            if not open_degrees:
                break
            m = tuple(sorted(m))
            lo, hi = _rules.degree_window(m)
            hits = [l for l in open_degrees if lo <= l <= hi and (hi - l) % 2 == 0]
            if not hits:
                continue
            expansion = legendre_expansion(zonal_product(m))
            result.products_computed += 1
            for l in hits:
                c = expansion.get(l, QQ(0))
                if not c:  # impossible by Lemma 3 (positivity); keep the method honest
                    raise ArithmeticError(
                        f"exact method: zonal product {m} has zero projection onto H_{l} "
                        "inside its degree window")
                result.witnesses[l] = Witness(l, m, c)
                open_degrees.discard(l)
    # Whatever is still open was in no generator's window: every product excludes it by its
    # own degree, parity or orthogonality bound.
    for l in open_degrees:
        result.absences[l] = Absence(l, "bounds")
    for l in range(top + 1):
        result.dims[l] = 2 * l + 1 if l in result.witnesses else 0
    result.witnesses = dict(sorted(result.witnesses.items()))
    result.absences = dict(sorted(result.absences.items()))
    return result


def _sum_parities(features: tuple, sizes) -> set:
    """Parities of sum(M) over all generating multisets M (sizes given)."""
    k_parities = {k % 2 for k in features}
    out = set()
    for n in sizes:
        reach = {0}
        for _ in range(n):
            reach = {(p + q) % 2 for p in reach for q in k_parities}
        out |= reach
    return out


BRUTE_FORCE_LIMIT = 20000
"""Largest number of products :func:`brute_force_spectrum` agrees to form."""


@lru_cache(maxsize=None)
def _functional(l: int, m: int, monomial: Tuple[int, int, int]):
    """<x^a y^b z^c, p_lm> over the sphere (mean), cached."""
    a, b, c = monomial
    total = QQ(0)
    for (a2, b2, c2), v in _harmonics.solid_harmonic(l, m).items():
        total += v * _harmonics.sphere_moment(a + a2, b + b2, c + c2)
    return total


def brute_force_spectrum(features, d: int, exactly: bool = False) -> Dict[int, int]:
    r"""``{l: dim}`` with :math:`\dim` the exact rank of the projection of *all* products.

    Every product of at most ``d`` (or exactly ``d``) feature components
    :math:`p_{k_1 m_1} \cdots p_{k_n m_n}` is projected onto the basis
    :math:`p_{l,-l}, \dots, p_{l,l}` of :math:`H_l` by exact sphere moments; the rank of the
    resulting (products x ``2l+1``) rational matrix is :math:`\dim \mathrm{proj}_{H_l} P`,
    which equals :math:`\dim(P \cap H_l)` for the rotation-invariant ``P``.

    Examples
    --------
    >>> brute_force_spectrum({1}, 2, exactly=True)
    {0: 1, 1: 0, 2: 5, 3: 0, 4: 0}
    """
    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    top = max(features) * d + 2
    components = [(k, m) for k in features for m in range(-k, k + 1)]
    sizes = [d] if exactly else range(d + 1)
    count = sum(comb(len(components) + n - 1, n) for n in sizes)
    if count > BRUTE_FORCE_LIMIT:
        raise ValueError(f"brute force would project {count} products (limit "
                         f"{BRUTE_FORCE_LIMIT}); use the exact method for S={list(features)}, d={d}")
    products = []
    for n in sizes:
        for combo in combinations_with_replacement(components, n):
            poly = {(0, 0, 0): QQ(1)}
            for k, m in combo:
                poly = _harmonics.poly_mul(poly, _harmonics.solid_harmonic(k, m))
            products.append(poly)
    dims: Dict[int, int] = {}
    for l in range(top + 1):
        rows = [
            [sum((v * _functional(l, m, mono) for mono, v in p.items()), QQ(0))
             for m in range(-l, l + 1)]
            for p in products
        ]
        dims[l] = DomainMatrix(rows, (len(rows), 2 * l + 1), QQ).rank() if rows else 0
    return dims
