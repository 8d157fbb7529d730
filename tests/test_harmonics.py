"""Conventions of spanthm's real spherical harmonics (spanthm/_harmonics.py)."""

import math

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from sympy import QQ

from spanthm import harmonics as H


@pytest.mark.parametrize("l", range(0, 9))
def test_solid_harmonics_are_homogeneous_and_harmonic(l):
    """p_lm is homogeneous of degree l and Delta p_lm = 0, exactly."""
    for m in range(-l, l + 1):
        p = H.solid_harmonic(l, m)
        assert p, (l, m)
        assert all(a + b + c == l for (a, b, c) in p)
        assert H.laplacian(p) == {}


@pytest.mark.parametrize("l", range(0, 7))
def test_orthonormality_exact(l):
    """mean over S^2 of (N_lm p_lm)(N_l'm' p_l'm') = delta (component normalization)."""
    for lp in range(0, l + 1):
        for m in range(-l, l + 1):
            for mp in range(-lp, lp + 1):
                inner = H.sphere_inner_product(H.solid_harmonic(l, m), H.solid_harmonic(lp, mp))
                value = sympy.Rational(int(inner.numerator), int(inner.denominator))
                value *= sympy.sqrt(H.normalization_squared(l, m, "component")
                                    * H.normalization_squared(lp, mp, "component"))
                assert value == (1 if (l, m) == (lp, mp) else 0), (l, m, lp, mp)


@pytest.mark.parametrize("l", range(0, 7))
def test_component_normalization_sum_rule(l):
    """sum_m N_lm^2 p_lm^2 = (2l+1) r^(2l) as an exact polynomial identity."""
    total = {}
    for m in range(-l, l + 1):
        sq = H.poly_mul(H.solid_harmonic(l, m), H.solid_harmonic(l, m))
        n2 = H.normalization_squared(l, m, "component")
        n2 = QQ(int(n2.p), int(n2.q))
        for k, v in sq.items():
            total[k] = total.get(k, QQ(0)) + n2 * v
    total = {k: v for k, v in total.items() if v}
    r2l = {(0, 0, 0): QQ(1)}
    for _ in range(l):
        r2l = H.poly_mul(r2l, {(2, 0, 0): QQ(1), (0, 2, 0): QQ(1), (0, 0, 2): QQ(1)})
    assert total == {k: (2 * l + 1) * v for k, v in r2l.items()}


@pytest.mark.parametrize("l", range(0, 9))
def test_zonal_harmonic_is_legendre(l):
    """p_l0 restricted to the sphere is the Legendre polynomial P_l(z), P_l(1) = 1."""
    z = sympy.Symbol("z")
    s = sympy.sqrt(1 - z**2)  # a point (s, 0, z) on the sphere
    value = sum(sympy.Rational(int(v.numerator), int(v.denominator)) * s**a * 0**b * z**c
                for (a, b, c), v in H.solid_harmonic(l, 0).items())
    assert sympy.expand(value - sympy.legendre(l, z)) == 0
    coeffs = [sympy.Rational(int(c.numerator), int(c.denominator))
              for c in H.legendre_coefficients(l)]
    assert sympy.expand(sum(c * z**i for i, c in enumerate(coeffs)) - sympy.legendre(l, z)) == 0


def test_phase_has_no_condon_shortley():
    """Y_1^1 ~ +x, Y_1^-1 ~ +y, Y_1^0 ~ +z, each with factor +sqrt(3) (component)."""
    x, y, z = sympy.symbols("x y z")
    assert H.real_spherical_harmonic(1, 1, "component") == sympy.sqrt(3) * x
    assert H.real_spherical_harmonic(1, -1, "component") == sympy.sqrt(3) * y
    assert H.real_spherical_harmonic(1, 0, "component") == sympy.sqrt(3) * z


@pytest.mark.parametrize("a,b,c", [(0, 0, 0), (2, 0, 0), (2, 2, 0), (4, 2, 2), (6, 0, 4), (1, 2, 2)])
def test_sphere_moment_matches_quadrature(a, b, c):
    """Closed-form sphere moments agree with a Gauss-Legendre x uniform quadrature."""
    from spanthm._numeric import sphere_quadrature

    theta, phi, w = sphere_quadrature(a + b + c)
    x, y, z = np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)
    numeric = float(np.sum(w * x**a * y**b * z**c))
    assert numeric == pytest.approx(float(H.sphere_moment(a, b, c)), abs=1e-14)


directions = st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 3).filter(
    lambda v: 0.1 < math.sqrt(sum(t * t for t in v)))


@given(directions, st.sampled_from(["integral", "component", "norm"]))
def test_e3nn_map(v, normalization):
    """e3nn.o3.spherical_harmonics(l, v) == Y_l(v_z, v_x, v_y), same normalization, l <= 6."""
    torch = pytest.importorskip("torch")
    o3 = pytest.importorskip("e3nn.o3")
    vec = np.asarray(v) / np.linalg.norm(v)
    mapped = H.e3nn_direction_to_spanthm(vec)[None, :]
    for l in range(0, 7):
        ours = np.array([
            float(sympy.sqrt(H.normalization_squared(l, m, normalization)))
            * H.evaluate_polynomial(H.solid_harmonic(l, m), mapped)[0]
            for m in range(-l, l + 1)
        ])
        theirs = o3.spherical_harmonics(
            l, torch.tensor(vec, dtype=torch.float64), normalize=True,
            normalization=normalization).numpy()
        np.testing.assert_allclose(theirs, ours, atol=1e-10)


@pytest.mark.parametrize("l", range(0, 5))
def test_sympy_znm_map(l):
    """sympy.Znm(l, m) == sympy_znm_sign(m) * Y_l^m ("integral"), at two directions."""
    theta, phi = sympy.symbols("theta phi", real=True)
    for t0, p0 in [(0.7, 0.4), (2.1, -1.3)]:
        point = np.array([[math.sin(t0) * math.cos(p0), math.sin(t0) * math.sin(p0),
                           math.cos(t0)]])
        for m in range(-l, l + 1):
            znm = complex(sympy.N(sympy.Znm(l, m, theta, phi).expand(func=True)
                                  .subs({theta: t0, phi: p0})))
            ours = float(sympy.sqrt(H.normalization_squared(l, m, "integral"))) \
                * H.evaluate_polynomial(H.solid_harmonic(l, m), point)[0]
            assert znm.real == pytest.approx(H.sympy_znm_sign(m) * ours, abs=1e-12)
            assert abs(znm.imag) < 1e-12


def test_bad_orders_are_rejected():
    """|m| > l and negative l raise ValueError naming the value."""
    with pytest.raises(ValueError, match="m = 3"):
        H.solid_harmonic(2, 3)
    with pytest.raises(ValueError, match="-1"):
        H.solid_harmonic(-1, 0)
    with pytest.raises(ValueError, match="normalization"):
        H.normalization_squared(1, 0, "unit")
