"""Tests of empirical.diagnostic.statistics: point statistics, row-wise twins, Statistic
objects, and the hierarchical cluster bootstrap (plan structure, determinism, hierarchy,
coverage). The Fieller set of a ratio is tested in test_statistics_ratio.py."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from empirical.diagnostic import statistics as stats_pkg
from empirical.diagnostic.statistics import (
    PEARSON, R2_INJECTED, RAW_GAIN, BootstrapPlan, ClusterBootstrap, Interval, Statistic,
    cliff_ratio, cluster_bootstrap_indices, pearson, pearson_rows, percentile_interval,
    r2_injected, r2_injected_rows, ratio_rows, raw_gain, raw_gain_rows)

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def pairs(min_n=2, max_n=30):
    """Two 1-D float arrays of one length."""
    return st.integers(min_n, max_n).flatmap(lambda n: st.tuples(
        hnp.arrays(float, n, elements=FLOATS), hnp.arrays(float, n, elements=FLOATS)))


def well_spread(x):
    return np.ptp(x) > 1e-6 * max(np.max(np.abs(x)), 1e-300)


def row_mean(v):
    return v.mean(axis=1)


# ------------------------------------------------------------------------------- pearson

@given(pairs())
def test_pearson_agrees_with_scipy(xy):
    x, y = xy
    assume(well_spread(x) and well_spread(y))
    r = pearson(x, y)
    assert r == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
    assert -1.0 <= r <= 1.0


def test_pearson_constant_is_none():
    y00 = np.full(50, 0.28209479177387814)             # an l = 0 target: constant
    x = np.random.default_rng(0).normal(size=50)
    assert pearson(x, y00) is None
    assert pearson(y00, x) is None
    assert pearson(y00, y00) is None
    assert pearson(np.zeros(3), np.array([1.0, 2.0, 4.0])) is None
    # spread at the rounding level of the values is constant too
    assert pearson(x, 0.1 + np.array([0.0, 1e-17] * 25)) is None


def test_pearson_exact_cases():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(x, 3 * x - 7) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(np.array([1.0, -1.0, 1.0, -1.0]), np.array([1.0, 1.0, -1.0, -1.0])) == 0.0
    assert pearson(np.array([0.0, 1e-300]), np.array([5.0, 3.0])) == pytest.approx(-1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pearson_nonfinite_raises(bad):
    with pytest.raises(ValueError, match="NaN or inf"):
        pearson(np.array([1.0, bad, 3.0]), np.array([1.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, bad]))


def test_pearson_shape_errors():
    with pytest.raises(ValueError, match="differ in length"):
        pearson(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError, match="at least 2"):
        pearson(np.array([1.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="1-D"):
        pearson(np.ones((2, 3)), np.ones((2, 3)))


@given(st.integers(1, 6), st.integers(2, 12), st.data())
def test_pearson_rows_agree_with_scalar(rows, n, data):
    x = data.draw(hnp.arrays(float, (rows, n), elements=FLOATS))
    y = data.draw(hnp.arrays(float, (rows, n), elements=FLOATS))
    x[0] = 2.5                                             # a constant row -> NaN
    r = pearson_rows(x, y)
    assert r.shape == (rows,)
    for i in range(rows):
        ref = pearson(x[i], y[i])
        if ref is None:
            assert np.isnan(r[i])
        else:
            assert r[i] == pytest.approx(ref, abs=1e-12)


def test_rows_shape_errors():
    with pytest.raises(ValueError, match="2-D"):
        pearson_rows(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="differ in shape"):
        raw_gain_rows(np.ones((2, 3)), np.ones((2, 4)), 0.0)
    with pytest.raises(ValueError, match="eps"):
        r2_injected_rows(np.ones((2, 3)), np.ones((2, 3)), 0.0)


# ------------------------------------------------------------------- raw gain and R2_inj

def test_raw_gain_by_hand():
    # e0 = [1, 9], e1 = [0, 1]  ->  G = mean([1, 8]) = 4.5
    assert raw_gain(np.array([1.0, 2.0]), np.array([1.0, 3.0]), 0.0) == 4.5
    # predicting the training mean gains nothing; a worse predictor loses
    assert raw_gain(np.full(3, 2.0), np.array([1.0, 2.0, 6.0]), 2.0) == 0.0
    # e0 = [1, 1], e1 = [4, 4]  ->  G = -3
    assert raw_gain(np.array([-1.0, 3.0]), np.array([1.0, 1.0]), 0.0) == -3.0


def test_r2_injected_by_hand():
    assert r2_injected(np.array([0.5, -0.5]), np.array([1.0, -1.0]), 1.0) == 0.75
    # eps = 2: signal = 2 s, error (1, 1) -> 1 - 1/4
    assert r2_injected(np.array([1.0, -3.0]), np.array([2.0, -2.0]), 2.0) == 0.75
    # the denominator is the known power eps**2, not the sample variance of the signal
    assert r2_injected(np.zeros(2), np.array([0.2, 0.2]), 0.1) == pytest.approx(-3.0)


@given(pairs(1, 30), st.floats(-10, 10), st.floats(1e-3, 10))
def test_gain_and_r2_properties(ts, m, eps):
    t, s = ts
    # perfect predictor
    assert raw_gain(t, t, m) == pytest.approx(np.mean((t - m) ** 2), rel=1e-12, abs=1e-9)
    assert r2_injected(s, s, eps) == 1.0
    # zero predictor
    assert r2_injected(np.zeros_like(s), s, eps) == pytest.approx(
        1 - np.mean(s ** 2) / eps ** 2, rel=1e-12, abs=1e-9)
    # row-wise twins agree with the scalar forms row by row
    rows_t = np.stack([t, s, t + s])
    rows_p = np.stack([s, t, t - s])
    g = raw_gain_rows(rows_p, rows_t, m)
    r = r2_injected_rows(rows_p, rows_t, eps)
    for i in range(3):
        assert g[i] == pytest.approx(raw_gain(rows_p[i], rows_t[i], m), rel=1e-12, abs=1e-9)
        assert r[i] == pytest.approx(r2_injected(rows_p[i], rows_t[i], eps), rel=1e-12,
                                     abs=1e-9)


@pytest.mark.parametrize("eps", [0.0, -1.0, np.nan, np.inf])
def test_r2_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        r2_injected(np.ones(3), np.ones(3), eps)


def test_gain_and_r2_input_errors():
    with pytest.raises(ValueError, match="NaN or inf"):
        raw_gain(np.array([1.0, np.nan]), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="train_mean"):
        raw_gain(np.ones(2), np.ones(2), np.nan)
    with pytest.raises(ValueError, match="differ in length"):
        r2_injected(np.ones(2), np.ones(3), 1.0)


# ------------------------------------------------------------------ ratios and intervals

def test_cliff_ratio():
    assert cliff_ratio(0.9, 0.03) == pytest.approx(30.0)
    assert cliff_ratio(0.9, -0.1) == pytest.approx(-9.0)
    assert cliff_ratio(None, 0.1) is None
    assert cliff_ratio(0.9, None) is None
    assert cliff_ratio(0.9, 0.0) is None
    with pytest.raises(ValueError, match="rho_above"):
        cliff_ratio(0.9, float("nan"))


def test_ratio_rows():
    r = ratio_rows(np.array([1.0, 2.0, 0.0, np.nan]), np.array([4.0, 0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(r, [0.25, np.nan, np.nan, np.nan])
    with pytest.raises(ValueError, match="differ in shape"):
        ratio_rows(np.ones(3), np.ones(4))


def test_percentile_interval():
    v = np.arange(101.0)
    iv = percentile_interval(v, 0.9)
    assert iv.to_list() == pytest.approx([5.0, 95.0])
    assert percentile_interval(v).to_list() == pytest.approx([2.5, 97.5])
    half = np.r_[np.arange(10.0), np.full(10, np.nan)]
    assert percentile_interval(half).low is not None          # exactly half finite
    mostly_nan = np.r_[np.arange(9.0), np.full(11, np.nan)]
    assert percentile_interval(mostly_nan) == Interval(None, None)
    assert Interval(None, None).to_list() == [None, None]
    # NaN and inf are dropped, not ranked
    iv = percentile_interval(np.r_[np.arange(101.0), np.inf, np.nan], 0.9)
    assert iv.to_list() == pytest.approx([5.0, 95.0])


# ----------------------------------------------------------------------- resampling plan

def test_plan_structure():
    sizes = [3, 7, 5]
    plan = cluster_bootstrap_indices(sizes, n_boot=50, seed=3)
    assert isinstance(plan, BootstrapPlan)
    assert plan.sizes == (3, 7, 5) and plan.n_boot == 50 and plan.n_clusters == 3
    assert plan.cluster_draws.shape == (50, 3) and plan.cluster_draws.dtype == np.int32
    assert plan.cluster_draws.min() >= 0 and plan.cluster_draws.max() < 3
    total = 0
    for c, n in enumerate(sizes):
        own, idx = plan.owners[c], plan.sample_draws[c]
        assert idx.dtype == np.int32 and idx.shape == (own.size, n)
        assert idx.min() >= 0 and idx.max() < n
        # copy k of cluster c belongs to resample owners[c][k]: as many as drawn there
        np.testing.assert_array_equal(np.bincount(own, minlength=50),
                                      (plan.cluster_draws == c).sum(axis=1))
        assert np.all(np.diff(own) >= 0)
        total += own.size
    assert total == 50 * 3
    with pytest.raises(ValueError):
        plan.cluster_draws[0, 0] = 1                          # read-only


def test_same_seed_same_plan_and_intervals():
    sizes = [30, 40, 25]
    rng = np.random.default_rng(7)
    p = [rng.normal(size=n) for n in sizes]
    t = [x + rng.normal(size=x.size) for x in p]
    a, b, c = (ClusterBootstrap(sizes, n_boot=300, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.plan.cluster_draws, b.plan.cluster_draws)
    for x, y in zip(a.plan.sample_draws, b.plan.sample_draws):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.plan.cluster_draws, c.plan.cluster_draws)
    ia = a.interval(a.mean_of_cluster_stat(PEARSON, p, t))
    ib = b.interval(b.mean_of_cluster_stat(PEARSON, p, t))
    ic = c.interval(c.mean_of_cluster_stat(PEARSON, p, t))
    assert ia == ib
    assert ia != ic


def test_plan_is_hierarchical_between_clusters():
    # cluster 0 all 0, cluster 1 all 1: a resample draws (0,0), (0,1)/(1,0) or (1,1)
    bs = ClusterBootstrap([20, 30], n_boot=4000, seed=11)
    dist = bs.mean_of_cluster_stat(row_mean, [np.zeros(20), np.ones(30)])
    values, counts = np.unique(dist, return_counts=True)
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(counts / dist.size, [0.25, 0.5, 0.25], atol=0.03)
    assert bs.point_estimate(row_mean, [np.zeros(20), np.ones(30)]) == 0.5


def test_plan_is_hierarchical_within_clusters():
    # one cluster: only the within-cluster resampling can vary, and it does, at the
    # rate of an ordinary bootstrap of the mean
    x = np.arange(100.0)
    bs = ClusterBootstrap([100], n_boot=2000, seed=2)
    dist = bs.mean_of_cluster_stat(row_mean, [x])
    assert np.std(dist) == pytest.approx(np.std(x) / 10, rel=0.1)
    # a cluster drawn twice into one resample gets two independent within-cluster draws
    bs2 = ClusterBootstrap([50, 50], n_boot=200, seed=2)
    own, idx = bs2.plan.owners[0], bs2.plan.sample_draws[0]
    twice = np.flatnonzero(np.bincount(own, minlength=200) == 2)
    assert twice.size > 20
    first = np.searchsorted(own, twice)
    assert all(not np.array_equal(idx[k], idx[k + 1]) for k in first)


def _weighted_inputs():
    sizes = [40, 2, 3, 25, 30]
    rng = np.random.default_rng(4)
    p = [rng.normal(size=n) for n in sizes]
    t = [x + rng.normal(size=x.size) + 100.0 for x in p]       # large offset
    t[2] = np.array([1.0, 1.0, 2.0])                            # constant resamples likely
    p[4] = np.full(30, 3.0)                                     # constant cluster
    means = [{"train_mean": float(m)} for m in rng.normal(size=5)]
    return sizes, p, t, means


def test_weighted_path_matches_gathered_path():
    # A Statistic with a weighted form runs from sample counts; the same Statistic without
    # it (or the plain row-wise function) gathers the resampled values.
    sizes, p, t, means = _weighted_inputs()
    bs = ClusterBootstrap(sizes, n_boot=500, seed=9)
    cases = [(PEARSON, {}, 0.0), (RAW_GAIN, means, 1e-10), (R2_INJECTED, {"eps": 0.3}, 1e-10)]
    for stat, kw, rtol in cases:
        fast = bs.mean_of_cluster_stat(stat, p, t, cluster_kwargs=kw)
        gather = Statistic(stat.name, stat.rows)                 # weighted=None
        slow = bs.mean_of_cluster_stat(gather, p, t, cluster_kwargs=kw)
        plain = bs.mean_of_cluster_stat(stat.rows, p, t, cluster_kwargs=kw)
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        np.testing.assert_allclose(fast, slow, rtol=rtol, atol=1e-12)
        np.testing.assert_array_equal(slow, plain)               # the same gather path
        assert np.isfinite(fast).any()


def test_statistic_object_uses_its_weighted_form():
    sizes, p, t, _ = _weighted_inputs()
    bs = ClusterBootstrap(sizes, n_boot=50, seed=9)
    seen = []

    def weighted(counts, a, b):
        seen.append(counts.shape)
        return PEARSON.weighted(counts, a, b)

    def rows(a, b):
        raise AssertionError("the gather path ran although a weighted form is given")

    bs.mean_of_cluster_stat(Statistic("spy", rows, weighted), p, t)
    assert [s[1] for s in seen] == sizes                        # one call per cluster
    assert sum(s[0] for s in seen) == 50 * len(sizes)
    # the row-wise form is what point_estimate and a call use
    assert bs.point_estimate(PEARSON, p, t) == bs.point_estimate(pearson_rows, p, t)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(PEARSON(x, x ** 2), pearson_rows(x, x ** 2))


def test_statistic_objects_are_explicit():
    assert (PEARSON.rows, RAW_GAIN.rows, R2_INJECTED.rows) == (
        pearson_rows, raw_gain_rows, r2_injected_rows)
    assert all(s.weighted is not None for s in (PEARSON, RAW_GAIN, R2_INJECTED))
    # no fast path hangs off the functions themselves any more
    assert not any(hasattr(f, "weighted") for f in (pearson_rows, raw_gain_rows,
                                                     r2_injected_rows))
    with pytest.raises(AttributeError, match="cannot assign to field 'weighted'"):
        PEARSON.weighted = None                                 # frozen
    with pytest.raises(ValueError, match="rows of statistic 'x'"):
        Statistic("x", 3)
    with pytest.raises(ValueError, match="weighted of statistic 'x'"):
        Statistic("x", pearson_rows, "fast")
    with pytest.raises(ValueError, match="name"):
        Statistic("", pearson_rows)
    bs = ClusterBootstrap([3], n_boot=5, seed=0)
    with pytest.raises(ValueError, match="stat must be a Statistic"):
        bs.mean_of_cluster_stat(None, [np.arange(3.0)])


def test_public_api():
    for name in stats_pkg.__all__:
        assert hasattr(stats_pkg, name), name
    assert len(set(stats_pkg.__all__)) == len(stats_pkg.__all__)


def test_point_estimate_is_mean_of_cluster_values():
    sizes = [20, 30, 25]
    rng = np.random.default_rng(5)
    p = [rng.normal(size=n) for n in sizes]
    t = [x + rng.normal(size=x.size) for x in p]
    bs = ClusterBootstrap(sizes, n_boot=10, seed=0)
    assert bs.point_estimate(pearson_rows, p, t) == pytest.approx(
        np.mean([pearson(a, b) for a, b in zip(p, t)]))
    assert bs.point_estimate(raw_gain_rows, p, t, cluster_kwargs={"train_mean": 0.5}) == \
        pytest.approx(np.mean([raw_gain(a, b, 0.5) for a, b in zip(p, t)]))
    # undefined everywhere (l = 0 target): None, and the interval is undefined too
    const = [np.full(n, 0.28) for n in sizes]
    assert bs.point_estimate(pearson_rows, p, const) is None
    dist = bs.mean_of_cluster_stat(PEARSON, p, const)
    assert np.all(np.isnan(dist))
    assert bs.interval(dist) == Interval(None, None)
    # undefined on one cluster: the others are averaged
    t2 = [t[0], t[1], const[2]]
    assert bs.point_estimate(pearson_rows, p, t2) == pytest.approx(
        np.mean([pearson(p[0], t[0]), pearson(p[1], t[1])]))
    # the same rule for the Statistic objects (their row-wise form)
    assert bs.point_estimate(PEARSON, p, t2) == bs.point_estimate(pearson_rows, p, t2)
    assert bs.point_estimate(R2_INJECTED, p, t, cluster_kwargs={"eps": 0.7}) == \
        pytest.approx(np.mean([r2_injected(a, b, 0.7) for a, b in zip(p, t)]))


def test_contrasts_between_cells_are_aligned():
    sizes = [30, 40, 35, 20]
    rng = np.random.default_rng(6)
    p = [rng.normal(size=n) for n in sizes]
    t = [x + rng.normal(size=x.size) for x in p]
    bs = ClusterBootstrap(sizes, n_boot=400, seed=1)
    # Pearson is affine invariant: the same resamples give the same values
    a = bs.mean_of_cluster_stat(PEARSON, p, t)
    b = bs.mean_of_cluster_stat(PEARSON, [2 * x + 3 for x in p], t)
    np.testing.assert_allclose(a - b, 0.0, atol=1e-12)
    np.testing.assert_allclose(ratio_rows(a, b), 1.0, rtol=1e-12)
    # shifted cell: the contrast is the shift on every resample
    m1 = bs.mean_of_cluster_stat(row_mean, p)
    m2 = bs.mean_of_cluster_stat(row_mean, [x + 1.0 for x in p])
    np.testing.assert_allclose(m2 - m1, 1.0, rtol=1e-12)
    iv = bs.interval(m2 - m1)
    assert iv.low == pytest.approx(1.0) and iv.high == pytest.approx(1.0)
    # another plan is not aligned
    other = ClusterBootstrap(sizes, n_boot=400, seed=2).mean_of_cluster_stat(row_mean, p)
    assert np.std(m2 - other) > 0.01


# ------------------------------------------------------------------------------ coverage

def _hierarchical_data(rng, n_clusters, n, tau, sigma):
    return [rng.normal(rng.normal(0.0, tau), sigma, size=n) for _ in range(n_clusters)]


def test_coverage_hierarchical_vs_sample_only():
    """95 % intervals of a mean of cluster means (truth 0) cover at about the nominal rate;
    resampling samples only (ignoring clusters) undercovers badly: the check is sensitive.

    The raw gain with pred = 1, train_mean = 0 is 2 t - 1 per sample (truth -1): the same
    check through the weighted (count) path.
    """
    n_sets, n_clusters, n, n_boot = 300, 10, 20, 400
    hits = hits_gain = hits_flat = 0
    for i in range(n_sets):
        x = _hierarchical_data(np.random.default_rng(i), n_clusters, n, tau=1.0, sigma=1.0)
        bs = ClusterBootstrap([n] * n_clusters, n_boot=n_boot, seed=i)
        iv = bs.interval(bs.mean_of_cluster_stat(row_mean, x))
        hits += iv.low <= 0.0 <= iv.high
        g = bs.mean_of_cluster_stat(RAW_GAIN, [np.ones(n)] * n_clusters, x,
                                    cluster_kwargs={"train_mean": 0.0})
        iv = bs.interval(g)
        hits_gain += iv.low <= -1.0 <= iv.high
        # non-hierarchical: every cluster once, samples resampled within it
        idx = np.random.default_rng(10**6 + i).integers(0, n, size=(n_boot, n_clusters, n))
        flat = np.take_along_axis(np.stack(x)[None], idx, axis=2).mean(axis=(1, 2))
        iv = percentile_interval(flat)
        hits_flat += iv.low <= 0.0 <= iv.high
    assert 0.85 <= hits / n_sets <= 0.99
    assert 0.85 <= hits_gain / n_sets <= 0.99
    assert hits_flat / n_sets < 0.6


# ---------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("sizes, match", [
    ([10, 0, 5], r"sizes\[1\] is 0"), ([], "empty"), ([3, 2.5], "integer"),
    ([3, -1], r"sizes\[1\]"), (5, "sequence")])
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        ClusterBootstrap(sizes, n_boot=10)
    with pytest.raises(ValueError, match=match):
        cluster_bootstrap_indices(sizes, 10, 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_boot": 0}, "n_boot"), ({"n_boot": -3}, "n_boot"), ({"n_boot": 2.0}, "n_boot"),
    ({"level": 0.0}, "level"), ({"level": 1.0}, "level"), ({"level": 1.5}, "level"),
    ({"level": -0.5}, "level"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed")])
def test_bad_bootstrap_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterBootstrap([5, 5], **kwargs)


def test_bad_bootstrap_inputs():
    bs = ClusterBootstrap([5, 3], n_boot=20, seed=0)
    good = [np.arange(5.0), np.arange(3.0)]
    with pytest.raises(ValueError, match=r"cluster 1 has 4 samples.*sizes\[1\] = 3"):
        bs.mean_of_cluster_stat(row_mean, [np.arange(5.0), np.arange(4.0)])
    with pytest.raises(ValueError, match="3 clusters"):
        bs.mean_of_cluster_stat(row_mean, good + [np.arange(2.0)])
    with pytest.raises(ValueError, match="single array"):
        bs.mean_of_cluster_stat(row_mean, np.arange(5.0))
    with pytest.raises(ValueError, match="NaN or inf"):
        bs.mean_of_cluster_stat(row_mean, [np.r_[np.arange(4.0), np.nan], np.arange(3.0)])
    with pytest.raises(ValueError, match="input 1, cluster 0 has 3 samples"):
        bs.point_estimate(pearson_rows, good, [np.arange(3.0), np.arange(3.0)])
    with pytest.raises(ValueError, match="one value per resampled row"):
        bs.mean_of_cluster_stat(lambda v: v.mean(), good)
    with pytest.raises(ValueError, match="cluster_kwargs"):
        bs.mean_of_cluster_stat(RAW_GAIN, good, good,
                                cluster_kwargs=[{"train_mean": 0.0}])
    with pytest.raises(ValueError, match=r"shape \(20,\)"):
        bs.interval(np.zeros(19))
    with pytest.raises(ValueError, match="no input"):
        bs.mean_of_cluster_stat(row_mean)
