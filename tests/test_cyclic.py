"""Cyclic rings C_n (spanthm/_cyclic.py; docs/method.md §3; proofs/span_theorem.md §9).

Notation: ring points v_k = (theta0, phi0 + 2 pi k / n), x = cos(theta0); the ring sum of
Y_l^m depends on phi0 iff n | m, 0 < m <= l and P_l^m(x) != 0 (the "orientation modes").
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from sympy import QQ

import spanthm
from spanthm._cyclic import legendre_derivative
from spanthm._harmonics import solid_harmonic
from spanthm._numeric import real_harmonics_numeric

# Rationals strictly inside (-1, 1) with denominators <= 8 (0 included); over this domain the
# smallest non-zero normalized ring-sum amplitude is ~1e-4, far above the numeric tolerance.
cosines = st.integers(1, 8).flatmap(
    lambda q: st.integers(-q + 1, q - 1).map(lambda p: Fraction(p, q)))


@given(n=st.integers(2, 8), l=st.integers(0, 12), x=st.one_of(st.just(Fraction(0)), cosines))
def test_exact_modes_match_numeric_ring_sums(n, l, x):
    """ring_orientation_modes (exact, Legendre derivatives in Q) equals the orders m > 0 at
    which float ring sums of scipy's real Y_l^{+-m} change with a random phase phi0."""
    exact = spanthm.ring_orientation_modes(n, l, x)
    numeric = spanthm.ring_orientation_modes_numeric(n, l, float(x), seed=n * 100 + l)
    assert exact == numeric, (n, l, x)
    assert spanthm.carries_orientation(n, l, x) == bool(exact)


@given(n=st.integers(2, 8), l=st.integers(0, 30))
def test_planar_modes_follow_parity_rule(n, l):
    """cos(theta0) = 0: the modes are the multiples m of n with 0 < m <= l and l + m even
    (P_l^(m)(0) != 0 iff l - m is even)."""
    expected = [m for m in range(n, l + 1, n) if (l + m) % 2 == 0]
    assert spanthm.ring_orientation_modes(n, l) == expected
    assert spanthm.ring_orientation_modes(n, l, 0) == expected


@pytest.mark.parametrize("x", [Fraction(0), Fraction(1, 3), Fraction(-3, 5), Fraction(7, 8)])
def test_legendre_derivative_matches_sympy_assoc_legendre(x):
    """sympy: assoc_legendre(l, m, x) = (-1)^m (1 - x^2)^(m/2) d^m P_l/dx^m, exactly."""
    xs = sympy.Rational(x.numerator, x.denominator)
    for l in range(9):
        for m in range(l + 1):
            ours = legendre_derivative(l, m, x)
            ours = sympy.Rational(int(ours.numerator), int(ours.denominator))
            expected = (-1) ** m * (1 - xs**2) ** sympy.Rational(m, 2) * ours
            assert sympy.simplify(sympy.assoc_legendre(l, m, xs) - expected) == 0, (l, m, x)


@pytest.mark.parametrize("n", range(2, 9))
def test_roots_of_unity_sum_exactly(n):
    """sum_k w^(km) = n if n | m else 0 for w = exp(2 pi i / n): exact in Q[w] = Q[t]/Phi_n."""
    t = sympy.Symbol("t")
    phi = sympy.Poly(sympy.cyclotomic_poly(n, t), t, domain=QQ)
    for m in range(0, 3 * n + 1):
        total = sum((sympy.Poly(t ** ((k * m) % n), t, domain=QQ) for k in range(n)),
                    sympy.Poly(0, t, domain=QQ))
        assert total.rem(phi) == sympy.Poly(n if m % n == 0 else 0, t, domain=QQ), (n, m)


def _ring_points(K, n, cos_t, sin_t, cos_p, sin_p):
    """Exact ring points in K: v_k = (s cos(phi0 + a_k), s sin(phi0 + a_k), c), a_k = 2 pi k/n."""
    pts = []
    for k in range(n):
        ca = K.from_sympy(sympy.cos(2 * sympy.pi * k / n))
        sa = K.from_sympy(sympy.sin(2 * sympy.pi * k / n))
        s, c, cp, sp = (K.convert(v) for v in (sin_t, cos_t, cos_p, sin_p))
        pts.append((s * (cp * ca - sp * sa), s * (sp * ca + cp * sa), c))
    return pts


def _evaluate(K, p, point):
    x, y, z = point
    return sum((K.convert(v) * x**a * y**b * z**c for (a, b, c), v in p.items()), K.zero)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_ring_sum_identity_exact(n):
    """sum_k p_lm(v_k) = n p_lm(v_0) if n | m else 0, for every real solid harmonic (l <= 6),
    exactly in Q(sqrt 3), at Pythagorean angles (theta0, phi0 with rational cos and sin).
    The ring sum of the (+-m) pair changes between two such phases iff m is an exact
    orientation mode: exp(i m (phi_a - phi_b)) != 1 since (63 - 16i)/65 is no root of unity."""
    K = QQ.algebraic_field(sympy.sqrt(3))
    phases = [(QQ(5, 13), QQ(12, 13)), (QQ(3, 5), QQ(4, 5))]
    for cos_t, sin_t in [(QQ(0), QQ(1)), (QQ(3, 5), QQ(4, 5)), (QQ(-4, 5), QQ(3, 5))]:
        rings = [_ring_points(K, n, cos_t, sin_t, cp, sp) for cp, sp in phases]
        for l in range(7):
            sums = {}
            for i, pts in enumerate(rings):
                for m in range(-l, l + 1):
                    p = solid_harmonic(l, m)
                    total = sum((_evaluate(K, p, v) for v in pts), K.zero)
                    expected = K.convert(n) * _evaluate(K, p, pts[0]) if m % n == 0 else K.zero
                    assert total == expected, (n, cos_t, l, m)
                    sums[i, m] = total
            varies = [m for m in range(1, l + 1)
                      if (sums[0, m], sums[0, -m]) != (sums[1, m], sums[1, -m])]
            x = Fraction(int(cos_t.numerator), int(cos_t.denominator))
            assert varies == spanthm.ring_orientation_modes(n, l, x), (n, x, l)


@given(n=st.integers(2, 8), x=st.one_of(st.just(Fraction(0)), cosines))
def test_lowest_orientation_degree_is_n(n, x):
    """No degree l < n carries orientation (m >= n > l); degree n always does
    (P_n^(n) = (2n)!/(2^n n!) != 0)."""
    assert spanthm.ring_orientation_degrees(n, n - 1, x) == []
    assert spanthm.ring_orientation_modes(n, n, x) == [n]
    assert legendre_derivative(n, n, x) == QQ(math.factorial(2 * n), 2**n * math.factorial(n))


@pytest.mark.parametrize("L, d, seen", [(2, 2, False), (2, 3, True), (3, 2, True),
                                        (1, 4, False), (1, 5, True)])
def test_design_predictions_for_the_pentagon(L, d, seen):
    """docs/method.md §3: the planar C5 ring target of degree 5 is seen iff dL >= 5."""
    assert spanthm.ring_recoverable(5, d, L=L) is seen
    assert spanthm.ring_recoverable(5, d, L=L, target_degree=5, cos_theta=0) is seen
    assert spanthm.ring_recoverable(5, d, features=range(L + 1)) is seen
    assert (5 in spanthm.ring_spectrum(5, d, L=L).seen_degrees) is seen


def test_min_probe_degree():
    """ceil(n / L) for features {0..L}; S = {2}, n = 5 reaches only even degrees, and the
    first orientation-carrying even degree is 10 (m = 10), so d = 5."""
    assert spanthm.min_probe_degree(5, L=2) == 3
    assert spanthm.min_probe_degree(5, L=3) == 2
    for n in range(2, 9):
        for L in range(1, 5):
            assert spanthm.min_probe_degree(n, L=L) == -(-n // L), (n, L)
    assert spanthm.min_probe_degree(5, features={2}) == 5
    assert not spanthm.ring_spectrum(5, 4, features={2}, lmax=12).seen_degrees
    assert spanthm.ring_spectrum(5, 5, features={2}, lmax=12).seen_degrees == [10]


@given(n=st.integers(2, 8), L=st.integers(1, 3), d=st.integers(1, 3),
       x=st.one_of(st.just(Fraction(0)), cosines))
def test_ring_spectrum_rows_are_consistent(n, L, d, x):
    """seen = carries orientation and l <= dL; carrying = modes non-empty; the default lmax
    is max(dL, n) + 2; recoverable ring targets are exactly the seen degrees."""
    s = spanthm.ring_spectrum(n, d, L=L, cos_theta=x)
    assert s.ceiling == d * L and s.lmax == max(d * L, n) + 2
    assert [r.l for r in s.rows] == list(range(s.lmax + 1))
    for r in s.rows:
        assert list(r.modes) == spanthm.ring_orientation_modes(n, r.l, x)
        assert r.reachable == (r.l <= d * L)
        assert r.seen == (bool(r.modes) and r.l <= d * L)
        assert r.axis_component == (legendre_derivative(r.l, 0, x) != 0)
        if r.carries_orientation:
            assert spanthm.ring_recoverable(n, d, L=L, target_degree=r.l, cos_theta=x) == r.seen
    assert s.orientation_degrees == spanthm.ring_orientation_degrees(n, s.lmax, x)
    assert s.to_dict()["cos_theta"] == str(x)


def test_planar_pentagon_spectrum():
    """n = 5, planar, l <= 7: l = 5, 7 carry orientation only (m = 5, l + 5 even); l = 0, 2,
    4, 6 are axis-only (P_l(0) != 0, no mode); l = 1, 3 vanish identically."""
    s = spanthm.ring_spectrum(5, 2, L=2, lmax=7)
    assert s.orientation_degrees == [5, 7] and s.blind_degrees == [5, 7]
    assert [r.l for r in s.rows if r.axis_component] == [0, 2, 4, 6]


@pytest.mark.parametrize("l, message", [(3, "vanishes identically"),
                                        (4, "carries no in-plane orientation")])
def test_ring_recoverable_requires_an_orientation_target(l, message):
    """Outside its hypothesis (the target carries in-plane orientation) it refuses to answer."""
    with pytest.raises(ValueError, match=message):
        spanthm.ring_recoverable(5, 2, L=2, target_degree=l)


def _ring_probe_correlation(L, d, n=5, target=5, samples=3000, train=2000, seed=0):
    """Held-out Pearson correlation of the least-squares ring probe with the ring target.

    Haar-random orientations R (scipy), planar regular n-gon v_k = R (cos a_k, sin a_k, 0);
    t = sum_k c . Y_target(v_k); probe columns: ring sums of ALL monomials of degree <= d in
    the per-atom features Y_0..Y_L(v_k) (scipy real harmonics). No spanthm theory involved."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    R = Rotation.random(samples, random_state=seed).as_matrix()
    a = 2 * np.pi * np.arange(n) / n
    v = np.einsum("sij,kj->ski", R, np.stack([np.cos(a), np.sin(a), np.zeros(n)], axis=1))
    theta = np.arccos(np.clip(v[..., 2], -1.0, 1.0)).ravel()
    phi = np.arctan2(v[..., 1], v[..., 0]).ravel()

    def harmonics(l):
        return real_harmonics_numeric(l, theta, phi).T.reshape(samples, n, 2 * l + 1)

    c = rng.standard_normal(2 * target + 1)
    t = (harmonics(target) @ (c / np.linalg.norm(c))).sum(axis=1)
    F = np.concatenate([harmonics(j) for j in range(L + 1)], axis=-1)
    columns = [np.prod(F[:, :, list(idx)], axis=-1).sum(axis=1)
               for k in range(d + 1)
               for idx in itertools.combinations_with_replacement(range(F.shape[-1]), k)]
    X = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(X[:train], t[:train], rcond=None)
    return float(np.corrcoef(X[train:] @ coef, t[train:])[0, 1])


@pytest.mark.parametrize("L, d", [(2, 2), (2, 3), (3, 2), (1, 4), (1, 5)])
def test_end_to_end_pentagon_ring_probe(L, d):
    """Measured on Haar-random orientations: |rho| < 0.1 where the theory says blind
    (dL < 5), rho > 0.99 where it says seen (dL >= 5)."""
    rho = _ring_probe_correlation(L, d)
    if spanthm.ring_recoverable(5, d, L=L):
        assert rho > 0.99, (L, d, rho)
    else:
        assert abs(rho) < 0.1, (L, d, rho)
    assert spanthm.ring_recoverable(5, d, L=L) == (d * L >= 5)


@pytest.mark.parametrize("x", [0, Fraction(1, 3), sympy.Rational(1, 3), QQ(1, 3), "1/3",
                               " -2/7 ", sympy.Integer(0), np.int64(0), "0.25"])
def test_exact_cos_theta_forms_are_accepted(x):
    """int, Fraction, sympy Rational/Integer, QQ, numpy int and exact strings are accepted
    and agree with the Fraction they denote."""
    value = Fraction(str(x).strip()) if isinstance(x, str) else Fraction(
        int(x.numerator), int(x.denominator))
    assert spanthm.ring_orientation_modes(3, 9, x) == spanthm.ring_orientation_modes(3, 9, value)
    assert spanthm.ring_spectrum(3, 2, L=2, cos_theta=x).cos_theta == value


@pytest.mark.parametrize("call, error, message", [
    (lambda: spanthm.ring_orientation_modes(1, 5), ValueError, "ring size n must be >= 2"),
    (lambda: spanthm.ring_orientation_modes(2.0, 5), TypeError, "ring size n must be an integer"),
    (lambda: spanthm.ring_orientation_modes(True, 5), TypeError, "ring size n"),
    (lambda: spanthm.ring_orientation_modes(5, -1), ValueError, "degree l must be a non-neg"),
    (lambda: spanthm.ring_orientation_modes(5, 2.5), TypeError, "degree l must be an integer"),
    (lambda: spanthm.ring_orientation_modes(5, 5, 0.5), TypeError, "floats are not exact"),
    (lambda: spanthm.ring_orientation_modes(5, 5, np.float64(0.0)), TypeError, "not exact"),
    (lambda: spanthm.ring_orientation_modes(5, 5, sympy.Float(0.5)), TypeError, "not exact"),
    (lambda: spanthm.ring_orientation_modes(5, 5, sympy.sqrt(2) / 2), TypeError, "exact"),
    (lambda: spanthm.ring_orientation_modes(5, 5, 1), ValueError, r"strictly inside \(-1, 1\)"),
    (lambda: spanthm.ring_orientation_modes(5, 5, "-1"), ValueError, "strictly inside"),
    (lambda: spanthm.ring_orientation_modes(5, 5, Fraction(3, 2)), ValueError, "strictly"),
    (lambda: spanthm.ring_orientation_modes(5, 5, "abc"), ValueError, "not a rational"),
    (lambda: spanthm.ring_orientation_modes(5, 5, "1/0"), ValueError, "not a rational"),
    (lambda: spanthm.ring_orientation_modes(5, 5, True), TypeError, "exact rational"),
    (lambda: spanthm.ring_orientation_degrees(5, -2), ValueError, "lmax"),
    (lambda: spanthm.ring_recoverable(5, 0, L=2), ValueError, "probe degree d must be >= 1"),
    (lambda: spanthm.ring_recoverable(5, 2), ValueError, "exactly one of L or features"),
    (lambda: spanthm.ring_recoverable(5, 2, L=2, features={0, 1}), ValueError, "exactly one"),
    (lambda: spanthm.ring_recoverable(5, 2, L=-1), ValueError, "L must be a non-negative"),
    (lambda: spanthm.ring_recoverable(5, 2, L=2, target_degree=-5), ValueError, "target_degree"),
    (lambda: spanthm.ring_recoverable(5, 2, features=[]), ValueError, "feature set is empty"),
    (lambda: spanthm.min_probe_degree(5, L=0), ValueError, "constants"),
    (lambda: spanthm.min_probe_degree(5, features={0}), ValueError, "constants"),
    (lambda: spanthm.ring_spectrum(5, 2, L=2, lmax=1.5), TypeError, "lmax"),
    (lambda: spanthm.ring_orientation_modes_numeric(5, 5, 1.0), ValueError, "strictly inside"),
    (lambda: spanthm.ring_orientation_modes_numeric(5, 5, "0"), TypeError, "real number"),
    (lambda: spanthm.ring_orientation_modes_numeric(1, 5), ValueError, "ring size"),
])
def test_bad_inputs_raise_with_a_clear_message(call, error, message):
    """Bad values raise ValueError, bad types TypeError, naming the argument and the value."""
    with pytest.raises(error, match=message):
        call()
