"""The SPN estimator (:class:`SpectralProbe`) and its reductions, in scikit-learn's conventions.

The estimator must reproduce the hand-assembled pipelines it replaces bit for bit
(``make_reduction(...).fit -> monomials -> fit_ridge``; the C5 ring recipe), keep grouped folds
intact, recover exactly the polynomials of degree ``<= d`` of the reduced features and
refuse bad input with a ValueError that names the problem.
"""

import numpy as np
import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as hst
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score

from empirical.diagnostic._probe import (LAMBDA_GRID, IrrepReduction, PCAReduction,
                                         SpectralProbe, fit_ridge, group_folds, make_reduction,
                                         monomials, n_monomials)
from empirical.diagnostic.statistics import pearson

IRREPS = o3.Irreps("4x0e + 4x1o + 4x2e")
PAIR = IRREPS + IRREPS                    # two marked atoms, as in the diagnostic
WIDTH = {1: 18, 2: 18, 3: 9}              # k per degree: 2 (1) channels of every degree


def _data(seed=0, n_cfg=120, per_cfg=3, targets=4, atoms=None, irreps=PAIR):
    """Random features (shifted: the scalars' centring matters), targets and groups; the
    train/test split keeps configurations whole."""
    rng = np.random.default_rng(seed)
    n = n_cfg * per_cfg
    shape = (n, irreps.dim) if atoms is None else (n, atoms, irreps.dim)
    x = rng.normal(size=shape) + 0.3
    y = rng.normal(size=(n, targets))
    groups = np.repeat(rng.permutation(n_cfg) + 1000, per_cfg)
    test = np.isin(groups, np.unique(groups)[::5])
    return x, y, groups, np.flatnonzero(~test), np.flatnonzero(test)


# -- bit identity with the hand-assembled pipelines ------------------------------------------

@pytest.mark.parametrize("reduction", ["irrep", "pca"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bit_identical_to_hand_assembled_pipeline(d, reduction):
    """The diagnostic's recipe: reduction on the training rows, monomials of the training
    and of the test rows, one multi-target ridge."""
    x, y, groups, tr, te = _data(seed=d)
    k = WIDTH[d]
    red = make_reduction(reduction, PAIR, k).fit(x[tr])
    fit = fit_ridge(monomials(red.transform(x[tr]), d), y[tr], groups[tr], folds=3, seed=7)
    ref = fit.predict(monomials(red.transform(x[te]), d))

    probe = SpectralProbe(d=d, k=k, irreps=PAIR, reduction=reduction, seed=7)
    got = probe.fit(x[tr], y[tr], groups[tr]).predict(x[te])
    assert got.shape == ref.shape == (len(te), y.shape[1])
    assert np.array_equal(got, ref)
    assert np.array_equal(probe.lambdas_, fit.lambdas)
    assert np.array_equal(probe.cv_mse_, fit.cv_mse)
    assert probe.k_ == red.k and probe.n_monomials_ == n_monomials(red.k, d)
    # one target: (n,) predictions, the first column of the same fit's algebra
    one = SpectralProbe(d=d, k=k, irreps=PAIR, reduction=reduction, seed=7)
    ref1 = fit_ridge(monomials(red.transform(x[tr]), d), y[tr, 0], groups[tr], folds=3,
                     seed=7).predict(monomials(red.transform(x[te]), d))[:, 0]
    assert np.array_equal(one.fit(x[tr], y[tr, 0], groups[tr]).predict(x[te]), ref1)


def _frozen_ridge_predict(phi, y, groups, folds, seed, phi_new, lambdas=LAMBDA_GRID):
    """``fit_ridge(...).predict(phi_new)`` as it was when the published numbers were made
    (a frozen copy: standardization, one ``eigh`` per fold, the penalty grid), so a change
    of the module's numerics cannot hide behind a shared helper."""
    y = y[:, None] if y.ndim == 1 else y
    uniq = np.unique(groups)
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = np.empty(len(uniq), dtype=int)
    fold_of[perm] = np.arange(len(uniq)) % folds
    fold = fold_of[np.searchsorted(uniq, groups)]

    def standardize(p):
        mean, std = p[:, 1:].mean(axis=0), p[:, 1:].std(axis=0)
        return mean, np.where(std > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0))),
                              std, 1.0)

    def eigen(a, t):
        s, v = np.linalg.eigh(a.T @ a)
        return np.maximum(s, 0.0), v, v.T @ (a.T @ t)

    cv = np.zeros((len(lambdas), y.shape[1]))
    for f in range(folds):
        tr, va = fold != f, fold == f
        mean, std = standardize(phi[tr])
        ym = y[tr].mean(axis=0)
        s, v, b = eigen((phi[tr, 1:] - mean) / std, y[tr] - ym)
        p = ((phi[va, 1:] - mean) / std) @ v
        for i, lam in enumerate(lambdas):
            cv[i] += ((p @ (b / (s + lam * int(tr.sum()))[:, None]) + ym - y[va]) ** 2).sum(0)
    cv /= len(phi)
    lam = np.array([lambdas[i] for i in np.argmin(cv, axis=0)])
    mean, std = standardize(phi)
    ym = y.mean(axis=0)
    s, v, b = eigen((phi[:, 1:] - mean) / std, y - ym)
    coef = v @ (b / (s[:, None] + lam[None, :] * len(phi)))
    return ((phi_new[:, 1:] - mean) / std) @ coef + ym


@pytest.mark.parametrize("d", [1, 2])
def test_bit_identical_to_frozen_numerics(d):
    x, y, groups, tr, te = _data(seed=30 + d)
    red = make_reduction("irrep", PAIR, WIDTH[d]).fit(x[tr])
    ref = _frozen_ridge_predict(monomials(red.transform(x[tr]), d), y[tr], groups[tr], 3, 2,
                                monomials(red.transform(x[te]), d))
    probe = SpectralProbe(d=d, k=WIDTH[d], irreps=PAIR, seed=2).fit(x[tr], y[tr], groups[tr])
    assert np.array_equal(probe.predict(x[te]), ref)


def _ring_summed_monomials(z, d):
    """The C5 recipe (``empirical.calibration._c5``), verbatim."""
    return sum(monomials(z[:, j], d) for j in range(z.shape[1]))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_ring_form_bit_identical_to_c5_recipe(d):
    """C5 ring probe: one reduction on the pooled ring atoms of the training samples,
    monomials per atom summed over the ring, computed on all samples and then sliced."""
    x, y, groups, tr, te = _data(seed=10 + d, atoms=5, irreps=IRREPS)
    t = y[:, 0]
    n, m, D = x.shape
    k = 9
    red = make_reduction("irrep", IRREPS, k).fit(x[tr].reshape(-1, D))
    z = red.transform(x.reshape(-1, D)).reshape(n, m, -1)
    phi = _ring_summed_monomials(z, d)
    fit = fit_ridge(phi[tr], t[tr], groups[tr], folds=3, seed=3)
    ref = fit.predict(phi[te])[:, 0]

    probe = SpectralProbe(d=d, k=k, irreps=IRREPS, seed=3).fit(x[tr], t[tr], groups[tr])
    assert np.array_equal(probe.predict(x[te]), ref)
    assert np.array_equal(probe.lambdas_, fit.lambdas)


@pytest.mark.parametrize("d", [1, 2])
def test_one_atom_ring_is_the_c5_axis_recipe(d):
    """C5 axis probe (monomials of all samples, then sliced: C-ordered rows) is the ring
    form with one atom, bit for bit."""
    x, y, groups, tr, te = _data(seed=20 + d)
    red = make_reduction("irrep", PAIR, WIDTH[d]).fit(x[tr])
    phi = monomials(red.transform(x), d)
    ref = fit_ridge(phi[tr], y[tr], groups[tr], folds=3, seed=5).predict(phi[te])
    probe = SpectralProbe(d=d, k=WIDTH[d], irreps=PAIR, seed=5)
    got = probe.fit(x[tr][:, None], y[tr], groups[tr]).predict(x[te][:, None])
    assert np.array_equal(got, ref)


def test_make_reduction_gives_the_estimators():
    x, *_ = _data(seed=6)
    for method, k in (("irrep", 16), ("pca", 7)):
        est = make_reduction(method, PAIR, k)
        assert isinstance(est, IrrepReduction if method == "irrep" else PCAReduction)
        z = est.fit_transform(x)
        assert np.array_equal(z, est.transform(x)) and est.k_ == z.shape[1]
    assert IrrepReduction(PAIR, 16).fit(x).allocation_ == {0: 2, 1: 1, 2: 2}   # 15 dims


# -- scikit-learn conventions -----------------------------------------------------------------

def test_sklearn_conventions():
    x, y, groups, tr, te = _data(seed=8)
    params = dict(d=2, k=9, irreps=PAIR, reduction="irrep", solver="ridge", folds=4, seed=3,
                  lambdas=LAMBDA_GRID[::2], epochs=10, lr=0.1, weight_decay=0.0, patience=5,
                  val_fraction=0.25, lambda_start=None)
    probe = SpectralProbe(**params)
    assert probe.get_params() == params
    assert all(probe.get_params()[p] is v for p, v in params.items())   # stored as given
    with pytest.raises(NotFittedError):
        probe.predict(x[te])
    with pytest.raises(NotFittedError):
        IrrepReduction(PAIR, 9).transform(x)
    twin = clone(probe)
    assert twin is not probe and twin.get_params() == params
    before = set(vars(probe))
    assert probe.fit(x[tr], y[tr], groups[tr]) is probe
    fitted = set(vars(probe)) - before
    assert fitted and all(a.endswith("_") and not a.startswith("_") for a in fitted)
    assert {"reduction_", "k_", "n_monomials_", "lambdas_", "cv_mse_",
            "n_features_in_"} <= fitted
    assert probe.n_features_in_ == PAIR.dim and probe.cv_mse_.shape == (10, y.shape[1])
    assert not hasattr(clone(probe), "k_")                  # clone: unfitted
    assert np.array_equal(twin.fit(x[tr], y[tr], groups[tr]).predict(x[te]),
                          probe.predict(x[te]))             # same seed, same fit
    for red in (IrrepReduction(PAIR, 9), PCAReduction(5)):
        before = set(vars(red))
        assert red.fit(x) is red
        assert all(a.endswith("_") for a in set(vars(red)) - before)
        assert clone(red).get_params() == red.get_params()
    # set_params then refit: the other solver's attributes do not linger
    probe.set_params(solver="trained", epochs=3)
    probe.fit(x[tr], y[tr], groups[tr])
    assert not hasattr(probe, "lambdas_") and hasattr(probe, "trained_")


def test_score_and_correlation():
    x, y, groups, tr, te = _data(seed=9)
    probe = SpectralProbe(d=1, k=9, irreps=PAIR).fit(x[tr], y[tr], groups[tr])
    pred = probe.predict(x[te])
    assert probe.score(x[te], y[te]) == pytest.approx(r2_score(y[te], pred))
    rho = probe.correlation(x[te], y[te])
    assert rho == [pearson(pred[:, t], y[te][:, t]) for t in range(y.shape[1])]
    single = SpectralProbe(d=1, k=9, irreps=PAIR).fit(x[tr], y[tr, 1], groups[tr])
    assert single.correlation(x[te], y[te, 1]) == pearson(single.predict(x[te]), y[te, 1])
    assert single.correlation(x[te], np.full(len(te), 2.0)) is None    # undefined: None


# -- what the probe must be able to do, and not do ------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3])
def test_recovers_degree_d_not_degree_d_plus_1(d):
    """A polynomial of degree d in the reduced features is recovered; a product of d + 1
    distinct (whitened, Gaussian) reduced features is orthogonal to every polynomial of
    degree <= d and is not."""
    rng = np.random.default_rng(d)
    n_tr, n_te, k = 1500, 600, 9                    # 1x0e, 1x1o, 1x2e channel per atom pair
    x = rng.normal(size=(n_tr + n_te, PAIR.dim))
    z = IrrepReduction(PAIR, k).fit(x[:n_tr]).transform(x)
    phi = monomials(z, d)
    inside = phi[:, 1:] @ rng.normal(size=phi.shape[1] - 1)
    outside = np.prod(z[:, :d + 1], axis=1)
    y = np.stack([inside, outside], axis=1)
    groups = np.arange(n_tr) // 2
    probe = SpectralProbe(d=d, k=k, irreps=PAIR).fit(x[:n_tr], y[:n_tr], groups)
    rho_in, rho_out = probe.correlation(x[n_tr:], y[n_tr:])
    assert rho_in > 0.999, rho_in
    assert abs(rho_out) < 0.2, rho_out


@given(labels=hst.lists(hst.integers(-5, 40), min_size=6, max_size=80),
       folds=hst.integers(2, 6), seed=hst.integers(0, 2 ** 32 - 1))
@settings(max_examples=60)
def test_grouped_folds_never_split_a_group(labels, folds, seed):
    groups = np.asarray(labels)
    uniq = np.unique(groups)
    if len(uniq) < folds:
        with pytest.raises(ValueError, match="configurations"):
            group_folds(groups, folds, seed)
        return
    fold = group_folds(groups, folds, seed)
    for g in uniq:
        assert len(set(fold[groups == g])) == 1
    per_fold = np.bincount([fold[groups == g][0] for g in uniq], minlength=folds)
    assert per_fold.max() - per_fold.min() <= 1 and per_fold.min() >= 1
    assert np.array_equal(fold, group_folds(groups, folds, seed))      # seeded


def test_trained_solver_learns_a_recoverable_target():
    """Ideal l <= 1 features of a direction u (plus noise): a quadratic of u is within
    reach of the d = 2 SPN; the gradient-trained one finds it through the same interface."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(900, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    irreps = o3.Irreps.spherical_harmonics(1)
    x = o3.spherical_harmonics(irreps, torch.as_tensor(u), True,
                               normalization="component").numpy()
    x = x + 0.01 * rng.normal(size=x.shape)
    y = np.stack([3 * u[:, 2] ** 2 - 1 + u[:, 0] * u[:, 1], u[:, 0] * u[:, 2]], axis=1)
    probe = SpectralProbe(d=2, k=4, irreps=irreps, solver="trained", epochs=150, seed=1)
    probe.fit(x[:700], y[:700], np.arange(700) // 2)
    assert probe.predict(x[700:]).shape == (200, 2)
    assert min(probe.correlation(x[700:], y[700:])) > 0.9
    assert probe.k_ == 4 and not hasattr(probe, "lambdas_")
    probe1 = clone(probe).set_params(epochs=60).fit(x[:700], y[:700, 0], np.arange(700) // 2)
    assert probe1.predict(x[700:]).shape == (200,)


# -- bad input ---------------------------------------------------------------------------------

_X, _Y, _G, _TR, _TE = _data(seed=11, n_cfg=20)


@pytest.mark.parametrize("params, args, message", [
    (dict(d=0), (), "degree d"),
    (dict(d=1.5), (), "degree d"),
    (dict(k=0), (), "width k"),
    (dict(k=2.5), (), "width k"),
    (dict(reduction="svd"), (), "reduction must be"),
    (dict(solver="sgd"), (), "solver must be"),
    (dict(solver="trained", reduction="pca"), (), "pca"),
    (dict(irreps=None), (), "needs irreps"),
    (dict(irreps=IRREPS), (), "irreps"),
    (dict(folds=1), (), "folds"),
    (dict(lambdas=()), (), "lambdas"),
    (dict(), (_X[:, 0], _Y, _G), "X must have shape"),
    (dict(), (_X[..., None, None], _Y, _G), "X must have shape"),
    (dict(), (np.where(_X > 2, np.nan, _X), _Y, _G), "NaN"),
    (dict(), (_X, _Y[:-1], _G), "y has"),
    (dict(), (_X, _Y[..., None], _G), "y must have shape"),
    (dict(), (_X, _Y, _G[:-3]), "groups must have shape"),
    (dict(), (_X, _Y, np.zeros(len(_X))), "configurations are fewer than"),
    (dict(folds=5), (_X[:12], _Y[:12], _G[:12]), "configurations are fewer than"),
    (dict(solver="trained"), (_X[:, None], _Y, _G), "ring form"),
])
def test_bad_input_raises_value_error(params, args, message):
    probe = SpectralProbe(**{"d": 1, "k": 9, "irreps": PAIR, **params})
    with pytest.raises(ValueError, match=message):
        probe.fit(*(args or (_X, _Y, _G)))


def test_bad_input_at_predict_time():
    probe = SpectralProbe(d=1, k=9, irreps=PAIR).fit(_X[_TR], _Y[_TR], _G[_TR])
    with pytest.raises(ValueError, match="features on its last axis"):
        probe.predict(_X[_TE][:, :-1])
    with pytest.raises(ValueError, match="as in fit"):
        probe.predict(_X[_TE][:, None])            # ring form for a (n, D) probe
    with pytest.raises(ValueError, match="y must have shape"):
        probe.correlation(_X[_TE], _Y[_TE][:, :2])
    with pytest.raises(ValueError, match="reduction must be"):
        make_reduction("svd", PAIR, 9)
    with pytest.raises(ValueError, match="features must have shape"):
        IrrepReduction(IRREPS, 9).fit(_X)
    with pytest.raises(ValueError, match="width k"):
        PCAReduction(0).fit(_X)


# -- the penalty walk (fit_ridge's ``start``; the refit spread's cheaper search) ------------

def _walk_data(seed, n, m, noise, shift):
    rng = np.random.default_rng(seed)
    phi = np.c_[np.ones(n), rng.normal(size=(n, m - 1)) + shift]
    phi[:, 1 + seed % (m - 1)] = 2.5                 # a column without spread
    w = rng.normal(size=m - 1) * (rng.random(m - 1) < 0.3)
    y = phi[:, 1:] @ w + noise * rng.normal(size=n)
    return phi, y, np.repeat(np.arange(n // 2), 2)


def _unimodal(cv):
    i = int(np.argmin(cv))
    return bool((np.diff(cv[:i + 1]) <= 0).all() and (np.diff(cv[i:]) >= 0).all())


@given(seed=hst.integers(0, 10 ** 6), m=hst.integers(3, 60), noise=hst.floats(0.05, 20),
       shift=hst.floats(-3, 3), start=hst.integers(0, len(LAMBDA_GRID) - 1))
@settings(max_examples=60, deadline=None)
def test_the_penalty_walk_agrees_with_the_grid_on_a_unimodal_curve(seed, m, noise, shift,
                                                                    start):
    """Two independent searches: the eigendecomposition over the whole grid and the walk
    on raw moments with Cholesky solves. Wherever the grid's cross-validated MSE is
    unimodal they choose the same penalty, give the same MSE where the walk looked and
    predict the same."""
    phi, y, groups = _walk_data(seed, 160, m, noise, shift)
    grid = fit_ridge(phi, y, groups, folds=3, seed=seed)
    walk = fit_ridge(phi, y, groups, folds=3, seed=seed, start=start)
    tried = np.isfinite(walk.cv_mse[:, 0])
    np.testing.assert_allclose(walk.cv_mse[tried, 0], grid.cv_mse[tried, 0], rtol=1e-7)
    if _unimodal(grid.cv_mse[:, 0]):
        assert walk.lambdas[0] == grid.lambdas[0]
        np.testing.assert_allclose(walk.predict(phi), grid.predict(phi), rtol=1e-6,
                                   atol=1e-8 * np.abs(y).max())
    else:                                            # a local minimum of the grid's curve
        i = LAMBDA_GRID.index(float(walk.lambdas[0]))
        near = grid.cv_mse[max(i - 1, 0):i + 2, 0]
        assert grid.cv_mse[i, 0] <= near.min() * (1 + 1e-9)


@pytest.mark.parametrize("offset", [1e4, 1e8])
def test_the_penalty_walk_loses_no_digits_to_a_large_column_mean(offset):
    """Raw moments of columns with a mean far above their spread would cancel; the walk
    centres first, so it fits what the grid fits."""
    phi, y, groups = _walk_data(3, 200, 12, 0.5, 0.0)
    far = phi.copy()
    far[:, 1:] += offset
    grid = fit_ridge(far, y, groups, folds=3, seed=1)
    walk = fit_ridge(far, y, groups, folds=3, seed=1, start=len(LAMBDA_GRID) // 2)
    assert walk.lambdas[0] == grid.lambdas[0]
    np.testing.assert_allclose(walk.predict(far), grid.predict(far), rtol=1e-6, atol=1e-6)


def test_the_penalty_walk_refuses_what_it_cannot_do():
    phi, y, groups = _walk_data(0, 40, 5, 1.0, 0.0)
    with pytest.raises(ValueError, match="one target"):
        fit_ridge(phi, np.c_[y, y], groups, start=3)
    with pytest.raises(ValueError, match="start must index"):
        fit_ridge(phi, y, groups, start=len(LAMBDA_GRID))
    with pytest.raises(ValueError, match="lambda_start"):
        SpectralProbe(d=1, k=4, irreps=IRREPS, lambda_start=-1).fit(
            np.ones((40, IRREPS.dim)) + np.arange(40)[:, None], y, groups)
