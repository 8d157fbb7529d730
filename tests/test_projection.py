"""Exact projection: zonal witnesses and brute force (spanthm/_projection.py)."""

from fractions import Fraction

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from sympy import QQ
from sympy.physics.wigner import wigner_3j

from spanthm import _harmonics
from spanthm._projection import (brute_force_spectrum, exact_spectrum, legendre_expansion,
                                 zonal_product)
from spanthm.testing import feature_sets


@given(st.lists(st.fractions(min_value=-5, max_value=5, max_denominator=20), min_size=1,
                max_size=12))
def test_legendre_expansion_round_trip(coeffs):
    """sum_l c_l P_l(z) rebuilds the polynomial exactly."""
    poly = tuple(QQ(c.numerator, c.denominator) for c in coeffs)
    rebuilt = [QQ(0)] * len(poly)
    for l, c in legendre_expansion(poly).items():
        for i, a in enumerate(_harmonics.legendre_coefficients(l)):
            rebuilt[i] += c * a
    assert tuple(rebuilt) == poly


@pytest.mark.parametrize("a", range(0, 6))
@pytest.mark.parametrize("b", range(0, 6))
def test_two_factor_coefficients_match_wigner_3j(a, b):
    """P_a P_b = sum_j (2j+1) (a b j; 0 0 0)^2 P_j (Adams-Neumann), with sympy's 3j symbols."""
    expansion = legendre_expansion(zonal_product(tuple(sorted((a, b)))))
    for j in range(0, a + b + 2):
        expected = (2 * j + 1) * wigner_3j(a, b, j, 0, 0, 0) ** 2
        got = expansion.get(j, QQ(0))
        assert sympy.Rational(int(got.numerator), int(got.denominator)) == expected, (a, b, j)


@pytest.mark.parametrize("features,d,exactly", [
    ((0, 1), 1, False), ((0, 1, 2), 2, False), ((1,), 3, True), ((2,), 2, True),
    ((0, 2), 2, False), ((1, 2), 2, True), ((3,), 2, True),
])
def test_brute_force_dims_are_zero_or_full(features, d, exactly):
    """Lemma 1 instance: the exact rank of the projection of all products onto H_l is 0 or
    2l+1, never in between."""
    dims = brute_force_spectrum(features, d, exactly)
    assert all(n in (0, 2 * l + 1) for l, n in dims.items()), dims
    assert any(dims.values())


@given(feature_sets(max_degree=3, max_size=2), st.integers(1, 2), st.booleans())
def test_exact_matches_brute_force(features, d, exactly):
    """The certified method (one zonal witness per degree) gives the same dims as exact
    projection of every product."""
    assert exact_spectrum(features, d, exactly).dims == brute_force_spectrum(features, d, exactly)


@given(feature_sets(max_degree=6), st.integers(1, 4), st.booleans())
def test_witnesses_are_exact_and_nonzero(features, d, exactly):
    """Every witness is an allowed product whose exact projection, recomputed by integration
    with sympy, equals the stored coefficient and is nonzero."""
    res = exact_spectrum(features, d, exactly)
    z = sympy.Symbol("z")
    for l, w in list(res.witnesses.items())[:3]:
        assert all(k in features for k in w.factors)
        assert len(w.factors) == d if exactly else len(w.factors) <= d
        integrand = sympy.legendre(l, z)
        for k in w.factors:
            integrand *= sympy.legendre(k, z)
        value = sympy.Rational(2 * l + 1, 2) * sympy.integrate(sympy.expand(integrand), (z, -1, 1))
        assert value != 0
        assert Fraction(str(value)) == Fraction(int(w.coefficient.numerator),
                                                int(w.coefficient.denominator))
    assert set(res.witnesses) | set(res.absences) == set(range(max(features) * d + 3))
    assert not set(res.witnesses) & set(res.absences)


def test_known_witness_l4_from_two_degree_two_factors():
    """P_2^2 = 1/5 P_0 + 2/7 P_2 + 18/35 P_4, so (2, 2) witnesses H_4 with 18/35."""
    res = exact_spectrum((0, 1, 2), 2)
    assert res.witnesses[4].factors == (2, 2)
    assert res.witnesses[4].coefficient == QQ(18, 35)
    assert res.absences[5].reason == "degree" and res.absences[5].bound == 4


def test_absence_kinds():
    """{2}, d=4 exactly: odd degrees by parity; {0, 5}, d=2: l=1, 3 only by per-product bounds."""
    res = exact_spectrum((2,), 4, exactly=True)
    assert res.absences[5].reason == "parity"
    assert res.absences[9].reason == "degree"
    res = exact_spectrum((0, 5), 2)
    assert res.degrees == [0, 2, 4, 5, 6, 8, 10]
    assert res.absences[1].reason == "bounds" and res.absences[3].reason == "bounds"


def test_clear_caches_empties_every_memo_and_changes_no_result():
    """``spanthm.clear_caches`` (the benchmarks' way to time without earlier work) leaves
    every memo table empty, and the results computed afterwards are the same."""
    import functools
    import inspect

    from spanthm import _cyclic, _harmonics, _projection, clear_caches, ring_spectrum

    def results():
        return (exact_spectrum((0, 1, 2), 2).dims, brute_force_spectrum((0, 1), 2),
                ring_spectrum(5, d=2, L=3).to_dict())

    before = results()
    memos = [f for module in (_cyclic, _harmonics, _projection)
             for _, f in inspect.getmembers(module)
             if isinstance(f, functools._lru_cache_wrapper) and f.__module__ == module.__name__]
    assert len(memos) == 6 and all(f.cache_info().currsize for f in memos)
    clear_caches()
    assert [f.cache_info().currsize for f in memos] == [0] * len(memos)
    assert results() == before
