"""Independent methods agree, and the theorem holds on its table (spanthm/_spectrum.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sympy import QQ

from spanthm import (exact_spectrum, gaunt_spectrum, multiplicities, numeric_spectrum,
                     rotation_overlap, spectrum, weights_spectrum)
from spanthm._projection import legendre_expansion, zonal_product
from spanthm._rules import multisets
from spanthm.testing import feature_sets, probe_degrees


@given(feature_sets(max_degree=6), probe_degrees(4), st.booleans())
def test_methods_agree_on_random_instances(features, d, exactly):
    """exact projection, Gaunt rules, weight counting and numerics give the same
    dim(P ∩ H_l) for every l = 0..max(S) d + 2."""
    res = spectrum(features, d, exactly, method="all")
    assert res.methods == {"exact": "agree", "rules": "agree", "weights": "agree",
                           "numeric": "agree"}, res.details
    assert set(res.degrees) == gaunt_spectrum(features, d, exactly)
    assert set(res.degrees) == weights_spectrum(features, d, exactly)


@given(feature_sets(max_degree=6), probe_degrees(4), st.booleans())
def test_numeric_singular_value_gap(features, d, exactly):
    """Numerics separate present from absent blocks by many orders of magnitude."""
    num = numeric_spectrum(features, d, exactly, seed=1)
    assert num.dims == exact_spectrum(features, d, exactly).dims
    assert num.gap > 1e4


@pytest.mark.parametrize("L", range(1, 9))
@pytest.mark.parametrize("d", range(1, 7))
def test_theorem_holds_on_the_table(L, d):
    """Part 1 and 2 for S = {0..L}: P_d(S) = H_0 + ... + H_dL exactly, multiplicity one."""
    res = spectrum(range(L + 1), d)
    assert res.degrees == list(range(d * L + 1))
    assert all(res.dims[l] == 2 * l + 1 for l in range(d * L + 1))
    assert res.dims[d * L + 1] == res.dims[d * L + 2] == 0
    assert (res.ceiling, res.theorem, res.boundary_multiplicity) == (d * L, "holds", 1)


@pytest.mark.parametrize("L", range(1, 6))
@pytest.mark.parametrize("d", range(1, 5))
def test_boundary_multiplicity_is_one(L, d):
    """Part 2 (abstract): V_dL occurs once in Sym^d(V_0+...+V_L) and in the tensor power;
    nothing above dL occurs."""
    for power in ("sym", "tensor"):
        mult = multiplicities(range(L + 1), d, power)
        assert mult[d * L] == 1 and max(mult) == d * L


@pytest.mark.parametrize("L", range(1, 5))
@pytest.mark.parametrize("d", range(1, 5))
def test_boundary_reached_only_by_top_product(L, d):
    """Part 2 (sphere): among all generating products only L^d has an H_dL component."""
    reaching = [m for m in multisets(tuple(range(L + 1)), d, exactly=False)
                if legendre_expansion(zonal_product(m)).get(d * L, QQ(0)) != 0]
    assert reaching == [(L,) * d]


@pytest.mark.parametrize("L,d", [(1, 2), (2, 1), (2, 2), (1, 3)])
def test_rotation_corollary(L, d):
    """Part 3: a target of pure rotation degree l > dL is Haar-orthogonal to every degree-d
    polynomial of degree-<=L equivariant features; at l = dL it is not."""
    pytest.importorskip("e3nn")
    assert rotation_overlap(L, d, d * L + 1) < 1e-20
    assert rotation_overlap(L, d, d * L + 2) < 1e-20
    assert rotation_overlap(L, d, d * L) > 1e-3


def test_spectrum_validates_input():
    for bad, err in [(([], 2), ValueError), (({-1}, 2), ValueError), (({1}, 0), ValueError),
                     (({1.5}, 2), TypeError), (({1}, 2.0), TypeError), (("12", 2), TypeError),
                     (([1, 1], 2), ValueError)]:
        with pytest.raises(err):
            spectrum(*bad)
    with pytest.raises(ValueError, match="method"):
        spectrum({1}, 2, method="fast")


def test_theorem_not_applicable_beyond_0_to_L():
    """S = {2}, d = 2 gives {0, 2, 4}; the theorem's hypothesis fails, the ceiling stands."""
    res = spectrum({2}, 2)
    assert res.degrees == [0, 2, 4] and res.theorem == "not-applicable" and res.ceiling == 4
    assert spectrum({0}, 3).theorem == "not-applicable"
