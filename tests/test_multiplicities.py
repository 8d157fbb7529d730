"""Abstract multiplicities by weight counting (spanthm/_multiplicities.py)."""

from itertools import combinations_with_replacement, product
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spanthm import multiplicities, o3_multiplicities, weights_spectrum
from spanthm.testing import feature_sets


@pytest.mark.parametrize("d,expected", [
    (2, {0: 1, 2: 1, 4: 1}),
    (3, {0: 1, 2: 1, 3: 1, 4: 1, 6: 1}),
    (4, {0: 1, 2: 2, 4: 2, 5: 1, 6: 1, 8: 1}),
])
def test_known_symmetric_powers(d, expected):
    """Sym^2(V_2) = V_0+V_2+V_4; Sym^3(V_2) = V_0+V_2+V_3+V_4+V_6; Sym^4(V_2) holds V_4 twice
    and V_5 once (standard plethysm tables, e.g. Fulton-Harris §11)."""
    assert multiplicities([2], d) == expected


def test_v5_in_sym4_v2_has_unnatural_parity():
    """V_5 in Sym^4(V_2) is 5e; H_5 has parity (-1)^5, so P_=4({2}) has no H_5."""
    o3 = o3_multiplicities([2], 4)
    assert o3[(5, "e")] == 1 and (5, "o") not in o3
    assert 5 not in weights_spectrum([2], 4, exactly=True)


@given(feature_sets(max_degree=5), st.integers(1, 4))
def test_dimensions_add_up(features, d):
    """sum_l m_l (2l+1) = dim Sym^d V = C(n+d-1, d) and n^d for the tensor power."""
    n = sum(2 * k + 1 for k in features)
    sym = multiplicities(features, d, "sym")
    ten = multiplicities(features, d, "tensor")
    assert sum(m * (2 * l + 1) for l, m in sym.items()) == comb(n + d - 1, d)
    assert sum(m * (2 * l + 1) for l, m in ten.items()) == n**d


def _explicit_weights(features, d, power):
    basis = [(m, k) for k in features for m in range(-k, k + 1)]
    tuples = (combinations_with_replacement(basis, d) if power == "sym"
              else product(basis, repeat=d))
    counts = {}
    for t in tuples:
        w = sum(m for m, _ in t)
        counts[w] = counts.get(w, 0) + 1
    out = {}
    for l in range(max(counts) + 1):
        m = counts.get(l, 0) - counts.get(l + 1, 0)
        if m:
            out[l] = m
    return out


@given(feature_sets(max_degree=3, max_size=3), st.integers(1, 3))
def test_sym_matches_explicit_enumeration(features, d):
    """DP weight counting equals counting weights of explicitly enumerated multisets."""
    assert multiplicities(features, d, "sym") == _explicit_weights(features, d, "sym")


def _clebsch_gordan_power(features, d):
    mult = {0: 1}
    for _ in range(d):
        new = {}
        for j, a in mult.items():
            for k in features:
                for l in range(abs(j - k), j + k + 1):
                    new[l] = new.get(l, 0) + a
        mult = new
    return dict(sorted(mult.items()))


@given(feature_sets(max_degree=4, max_size=3), st.integers(1, 4))
def test_tensor_matches_clebsch_gordan(features, d):
    """Weight counting of V^{⊗d} equals iterating V_j ⊗ V_k = V_|j-k| + ... + V_{j+k}."""
    assert multiplicities(features, d, "tensor") == _clebsch_gordan_power(features, d)


def test_bad_power_and_degree():
    with pytest.raises(ValueError, match="power"):
        multiplicities([1], 2, "wedge")
    with pytest.raises(ValueError, match="d must be >= 1"):
        multiplicities([1], 0)
