r"""Abstract multiplicities by weight counting (characters), exactly, in integers.

For a feature set ``S`` let :math:`V = \bigoplus_{k \in S} V_k`, with :math:`V_k` the
``(2k+1)``-dimensional irrep of SO(3). A basis of :math:`V_k` has weights
:math:`m = -k..k` (eigenvalues of :math:`J_z`). The weights of :math:`\mathrm{Sym}^d V`
are the sums over multisets of ``d`` basis vectors, those of :math:`V^{\otimes d}` the sums
over ``d``-tuples. With :math:`n(w)` the number of weight vectors of weight ``w``, the
multiplicity of :math:`V_l` is :math:`n(l) - n(l+1)`.

O(3) refinement. Each :math:`V_k` here is a space of degree-``k`` spherical harmonics, so it
carries the *natural* parity :math:`(-1)^k` under inversion (``0e, 1o, 2e, ...``); the parity
of a product of basis vectors is :math:`(-1)^{\text{sum of degrees}}`. Tracking it alongside
the weight gives the O(3) multiplicities :math:`(l, \pm)`. On the sphere :math:`H_l` has
parity :math:`(-1)^l`, so only natural-parity irreps can be realized by products of one
direction's harmonics: :math:`V_5` occurs in :math:`\mathrm{Sym}^4(V_2)`, but as ``5e``, and
:math:`P_{=4}(\{2\})` has no :math:`H_5`.

The *abstract space* of :math:`P_{=d}(S)` is :math:`\mathrm{Sym}^d V`; that of
:math:`P_d(S)` is :math:`\mathrm{Sym}^d(V_0 \oplus V)` with the constant adjoined when
``0`` is not in ``S`` (when it is, :math:`\mathrm{Sym}^d V` already holds every product of
at most ``d`` features). Multiplication of harmonics maps the abstract space onto ``P``,
equivariantly, so ``P`` holds :math:`H_l` only where the natural-parity multiplicity of
``l`` is positive (:func:`weights_spectrum`; the proof that the converse also holds is in
``proofs/span_theorem.md``, Lemma 5).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from . import _limits, _validate

__all__ = [
    "weight_table",
    "multiplicities",
    "o3_multiplicities",
    "abstract_features",
    "weights_spectrum",
]

# table[parity][w + offset] = number of weight vectors of that weight and parity
WeightTable = Tuple[List[int], List[int], int]


def _basis(features: tuple) -> list:
    return [(m, k % 2) for k in features for m in range(-k, k + 1)]


def weight_table(features: tuple, d: int, power: str = "sym") -> WeightTable:
    """Number of weight vectors of :math:`\\mathrm{Sym}^d V` or :math:`V^{\\otimes d}`.

    Returns ``(even, odd, offset)``: ``even[w + offset]`` counts weight-``w`` vectors of even
    parity, ``odd[...]`` of odd parity; ``offset = d * max(S)``.
    """
    features = _validate.feature_set(features)
    if d < 0:
        raise ValueError(f"power d must be >= 0, got {d}")
    power = _validate.power(power)
    # bounded before any work (features is the whole space here: nothing is adjoined)
    _limits.check_instance(features, max(d, 1), "weights", exactly=True)
    offset = d * max(features)
    size = 2 * offset + 1
    basis = _basis(features)
    if power == "sym":
        # dp[n][p][w]: multisets of n basis vectors; processing each basis vector once with
        # n ascending lets it be used repeatedly (unbounded multiset counting).
        dp = [[[0] * size for _ in range(2)] for _ in range(d + 1)]
        dp[0][0][offset] = 1
        for w_i, p_i in basis:
            for n in range(1, d + 1):
                src, dst = dp[n - 1], dp[n]
                for p in range(2):
                    s, t = src[p ^ p_i], dst[p]
                    lo, hi = max(0, w_i), min(size, size + w_i)
                    for w in range(lo, hi):
                        c = s[w - w_i]
                        if c:
                            t[w] += c
        even, odd = dp[d]
    else:
        table = [[0] * size for _ in range(2)]
        table[0][offset] = 1
        for _ in range(d):
            new = [[0] * size for _ in range(2)]
            for p in range(2):
                for w in range(size):
                    c = table[p][w]
                    if not c:
                        continue
                    for w_i, p_i in basis:
                        new[p ^ p_i][w + w_i] += c
            table = new
        even, odd = table
    return even, odd, offset


def o3_multiplicities(features, d: int, power: str = "sym") -> Dict[Tuple[int, str], int]:
    """O(3) multiplicities ``{(l, "e" or "o"): m}`` (nonzero entries only), natural parity
    :math:`(-1)^k` on each :math:`V_k`.

    Examples
    --------
    >>> o3_multiplicities([2], 4)[(5, "e")]
    1
    """
    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    even, odd, offset = weight_table(features, d, power)
    out: Dict[Tuple[int, str], int] = {}
    for name, table in (("e", even), ("o", odd)):
        for l in range(offset + 1):
            nxt = table[offset + l + 1] if offset + l + 1 < len(table) else 0
            mult = table[offset + l] - nxt
            if mult < 0:
                raise ArithmeticError(f"negative multiplicity for l={l}: weight table is corrupt")
            if mult:
                out[(l, name)] = mult
    return out


def multiplicities(features, d: int, power: str = "sym") -> Dict[int, int]:
    """SO(3) multiplicity of every :math:`V_l` in :math:`\\mathrm{Sym}^d V` or
    :math:`V^{\\otimes d}`, :math:`V = \\bigoplus_{k \\in S} V_k` (nonzero entries only).

    Parameters
    ----------
    features : collection of int
        The feature set ``S`` (distinct non-negative degrees).
    d : int
        The power, ``d >= 1``.
    power : {"sym", "tensor"}
        Symmetric or full tensor power.

    Returns
    -------
    dict
        ``{l: multiplicity}`` sorted by ``l``.

    Examples
    --------
    >>> multiplicities([2], 2)
    {0: 1, 2: 1, 4: 1}
    >>> multiplicities([2], 3)
    {0: 1, 2: 1, 3: 1, 4: 1, 6: 1}
    >>> multiplicities([1], 2, power="tensor")
    {0: 1, 1: 1, 2: 1}
    """
    out: Dict[int, int] = {}
    for (l, _), m in o3_multiplicities(features, d, power).items():
        out[l] = out.get(l, 0) + m
    return dict(sorted(out.items()))


def abstract_features(features: tuple, exactly: bool) -> tuple:
    """Feature set whose ``Sym^d`` is the abstract space of ``P_d(S)`` / ``P_=d(S)``:
    ``S`` itself, or ``S`` with ``0`` adjoined for :math:`P_d(S)` when ``0`` is not in ``S``."""
    features = _validate.feature_set(features)
    if exactly or 0 in features:
        return features
    return tuple(sorted(features + (0,)))


def weights_spectrum(features, d: int, exactly: bool = False) -> set:
    """Degrees ``l`` whose natural-parity irrep :math:`(l, (-1)^l)` occurs in the abstract
    space of ``P``: the spectrum predicted by weight counting.

    Examples
    --------
    >>> sorted(weights_spectrum([2], 4, exactly=True))
    [0, 2, 4, 6, 8]
    """
    space = abstract_features(features, exactly)
    mult = o3_multiplicities(space, d, "sym")
    return {l for (l, p) in mult if p == ("e" if l % 2 == 0 else "o")}
