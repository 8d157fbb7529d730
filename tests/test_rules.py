"""Selection rules and per-product degree windows (spanthm/_rules.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sympy.physics.wigner import wigner_3j

from spanthm import _rules
from spanthm._projection import legendre_expansion, zonal_product


@pytest.mark.parametrize("a", range(0, 6))
@pytest.mark.parametrize("b", range(0, 6))
def test_gaunt_products_are_triangle_and_parity(a, b):
    """l in gaunt_products(a, b)  <=>  (a b l; 0 0 0) != 0  (triangle and even a+b+l)."""
    allowed = set(_rules.gaunt_products(a, b))
    for l in range(0, a + b + 3):
        assert (l in allowed) == (wigner_3j(a, b, l, 0, 0, 0) != 0), (a, b, l)


def _iterated_window(multiset):
    reach = {0}
    for k in multiset:
        reach = {l for j in reach for l in _rules.gaunt_products(j, k)}
    return reach


@given(st.lists(st.integers(0, 6), min_size=0, max_size=5))
def test_window_matches_iterated_gaunt(factors):
    """The window {lo..hi step 2} of a multiset equals the Gaunt rules applied factor by
    factor (Lemma 3: the union of step-2 intervals is a step-2 interval)."""
    m = tuple(sorted(factors))
    window = {l for l in range(0, sum(m) + 3) if _rules.in_window(l, m)}
    assert window == _iterated_window(m)


@given(st.lists(st.integers(0, 5), min_size=1, max_size=4))
def test_window_bounds_hold_exactly(factors):
    """The exact Legendre expansion of the zonal product is supported exactly on the window
    (Lemma 2 bounds, Lemma 3 positivity), and every coefficient is positive."""
    m = tuple(sorted(factors))
    expansion = legendre_expansion(zonal_product(m))
    window = {l for l in range(0, sum(m) + 1) if _rules.in_window(l, m)}
    assert set(expansion) == window
    assert all(c > 0 for c in expansion.values())
    for l in range(0, sum(m) + 3):
        assert (_rules.absence_reason(l, m) is None) == (l in window)


def test_absence_reasons_name_the_bound():
    """degree above the sum, parity mismatch, orthogonality below 2 max - sum."""
    assert _rules.absence_reason(5, (2, 2)) == "degree"
    assert _rules.absence_reason(3, (2, 2)) == "parity"
    assert _rules.absence_reason(3, (5,)) == "orthogonality"
    assert _rules.absence_reason(4, (2, 2)) is None


@given(st.sets(st.integers(0, 5), min_size=1, max_size=3), st.integers(1, 3), st.booleans())
def test_gaunt_spectrum_is_union_of_windows(features, d, exactly):
    """The set recursion of gaunt_spectrum equals the union of windows over all generating
    multisets (two formulations of the selection rules)."""
    feats = tuple(sorted(features))
    union = set()
    for m in _rules.multisets(feats, d, exactly):
        union |= {l for l in range(0, sum(m) + 1) if _rules.in_window(l, m)}
    assert _rules.gaunt_spectrum(feats, d, exactly) == union


def test_multisets_enumerate_generators():
    """sizes 0..d (or d), sorted tuples, no repeats."""
    gens = list(_rules.multisets((0, 2), 2, exactly=False))
    assert gens == [(), (0,), (2,), (0, 0), (0, 2), (2, 2)]
    assert list(_rules.multisets((1,), 3, exactly=True)) == [(1, 1, 1)]
    assert len(gens) == len(set(gens))
