"""empirical.diagnostic: injection, probes, the pipeline on an ideal backbone, bad input, CLI."""

import json

import numpy as np
import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as hst

from empirical import cli
from empirical.backbone import Backbone, BackboneConfig, save_checkpoint
from empirical.data import Dataset, save_npz
from empirical.diagnostic import (SCHEMA_VERSION, DiagnoseResult, diagnose, haar_rotations, inject, marked_direction, signal,
                                signal_coefficients, signal_gradient)
from empirical.runtime import default_dtype
from empirical.diagnostic._probe import (SpectralProbe, fit_ridge, group_folds, make_reduction,
                                         monomial_exponents, monomials, n_monomials)


# -- fixtures ---------------------------------------------------------------------------------

from _helpers import toy_dataset  # noqa: E402


class IdealBackbone:
    """Features = the spherical harmonics Y_0..Y_L of the marked direction, at every atom."""

    def __init__(self, L, a=0, b=1, energy=True):
        self.irreps_out = o3.Irreps.spherical_harmonics(L)
        self.a, self.b = a, b
        if not energy:
            self.energy = None

    def node_features(self, positions, numbers):
        v = positions[self.b] - positions[self.a]
        y = o3.spherical_harmonics(self.irreps_out, v[None], normalize=True,
                                   normalization="component")
        return y.repeat(len(positions), 1)

    def energy(self, positions, numbers):
        d = torch.cdist(positions, positions)
        return d.sum() / 2


# -- injection --------------------------------------------------------------------------------

@pytest.mark.parametrize("l", range(6))
def test_signal_gradient_matches_finite_differences(l):
    rng = np.random.default_rng(l)
    pos = rng.normal(size=(3, 4, 3))
    c = signal_coefficients(l, seed=3)
    grad = signal_gradient(l, pos, 1, 3, c)
    h = 1e-6
    for atom in range(4):
        for axis in range(3):
            plus, minus = pos.copy(), pos.copy()
            plus[:, atom, axis] += h
            minus[:, atom, axis] -= h
            fd = (signal(l, marked_direction(plus, 1, 3), c)
                  - signal(l, marked_direction(minus, 1, 3), c)) / (2 * h)
            assert np.allclose(grad[:, atom, axis], fd, atol=1e-7)
    assert np.allclose(grad[:, 0], 0) and np.allclose(grad[:, 2], 0)
    assert np.allclose(grad[:, 1], -grad[:, 3])


@pytest.mark.parametrize("l", [1, 2, 5, 7])
def test_signal_has_unit_power_under_haar_rotations(l):
    rot = haar_rotations(40000, seed=l)
    u = rot @ np.array([0.3, -0.2, 0.9]) / np.linalg.norm([0.3, -0.2, 0.9])
    s = signal(l, u, signal_coefficients(l, seed=0))
    assert abs(np.mean(s ** 2) - 1.0) < 0.05
    assert abs(np.mean(s)) < 0.05


def test_haar_rotations_are_rotations_and_seeded():
    r = haar_rotations(50, seed=1)
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1.0)
    assert np.array_equal(r, haar_rotations(50, seed=1))
    assert not np.array_equal(r, haar_rotations(50, seed=2))


def test_inject_energies_and_forces():
    data = toy_dataset(n=20)
    out = inject(data, l=3, eps=0.2, seed=4)
    c = signal_coefficients(3, seed=4)
    s = signal(3, marked_direction(data.positions, 0, 1), c)
    assert np.allclose(out.energies - data.energies, 0.2 * s)
    grad = signal_gradient(3, data.positions, 0, 1, c)
    assert np.allclose(out.forces - data.forces, -0.2 * grad)
    assert out.metadata["injection"]["l"] == 3
    assert np.abs(out.forces[:, 2:] - data.forces[:, 2:]).max() == 0


# -- probe ------------------------------------------------------------------------------------

@given(k=hst.integers(1, 6), d=hst.integers(1, 3), seed=hst.integers(0, 10 ** 6))
@settings(max_examples=20)
def test_monomials_match_exponent_products(k, d, seed):
    z = np.random.default_rng(seed).normal(size=(7, k))
    phi = monomials(z, d)
    terms = monomial_exponents(k, d)
    assert phi.shape == (7, n_monomials(k, d)) == (7, len(terms))
    ref = np.stack([np.prod(z[:, list(t)], axis=1) for t in terms], axis=1)
    assert np.allclose(phi, ref)


@given(seed=hst.integers(0, 10 ** 6), lam_index=hst.integers(0, 18))
@settings(max_examples=15)
def test_ridge_equals_direct_solution(seed, lam_index):
    """With a one-point grid the fit is the ridge solution, solved independently by least
    squares on the augmented system (standardized columns, unpenalized intercept)."""
    from empirical.diagnostic._probe import LAMBDA_GRID

    rng = np.random.default_rng(seed)
    phi = np.concatenate([np.ones((60, 1)), rng.normal(size=(60, 8))], axis=1)
    y = rng.normal(size=(60, 2))
    lam = LAMBDA_GRID[lam_index]
    fit = fit_ridge(phi, y, np.arange(60), folds=3, lambdas=[lam])
    a = (phi[:, 1:] - phi[:, 1:].mean(0)) / phi[:, 1:].std(0)
    aug = np.concatenate([a, np.sqrt(lam * 60) * np.eye(8)])
    for t in range(2):
        rhs = np.concatenate([y[:, t] - y[:, t].mean(), np.zeros(8)])
        coef = np.linalg.lstsq(aug, rhs, rcond=None)[0]
        assert np.allclose(fit.coef[:, t], coef, atol=1e-9)
        assert np.allclose(fit.predict(phi)[:, t], a @ coef + y[:, t].mean(), atol=1e-9)


def test_group_folds_keep_groups_together():
    groups = np.repeat(np.arange(30), 3)
    fold = group_folds(groups, 4, seed=0)
    for g in range(30):
        assert len(set(fold[groups == g])) == 1
    assert set(fold) == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        group_folds(np.arange(2), 3, seed=0)


def test_irrep_reduction_is_equivariant():
    """Rotating the features with D(R) rotates every reduced block the same way: the
    reduction mixes channels only."""
    irreps = o3.Irreps("3x0e+2x1o+3x2e")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, irreps.dim))
    red = make_reduction("irrep", irreps, 9 * 2).fit(x)
    with default_dtype(torch.float64):
        R = o3.rand_matrix()
        D = irreps.D_from_matrix(R).numpy()
        z = red.transform(x)
        z_rot = red.transform(x @ D.T)
        reduced = o3.Irreps("2x0e+2x1o+2x2e")
        D_red = reduced.D_from_matrix(R).numpy()
    assert red.k_ == reduced.dim
    # scalars are centred (a shift), the rest rotate
    assert np.allclose(z_rot, z @ D_red.T, atol=1e-10)


def test_pca_reduction_whitens():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    red = make_reduction("pca", o3.Irreps("12x0e"), 5).fit(x)
    z = red.transform(x)
    assert z.shape == (300, 5)
    assert np.allclose(np.cov(z.T, bias=True), np.eye(5), atol=1e-8)


def test_trained_spn_finds_the_boundary_and_not_above():
    """Ideal L=1 features, d=2: s_2 is a quadratic of Y_1 (recoverable), s_3 is not."""
    rng = np.random.default_rng(0)
    u = haar_rotations(900, seed=5) @ np.array([0.0, 0.0, 1.0])
    irreps = o3.Irreps.spherical_harmonics(1)
    x = o3.spherical_harmonics(irreps, torch.as_tensor(u), True, normalization="component").numpy()
    x = x + 0.01 * rng.normal(size=x.shape)
    for l, recoverable in ((2, True), (3, False)):
        s = signal(l, u, signal_coefficients(l, seed=0))
        probe = SpectralProbe(d=2, k=4, irreps=irreps, solver="trained", seed=0, epochs=300)
        rho = np.corrcoef(probe.fit(x[:700], s[:700], np.arange(700)).predict(x[700:]),
                          s[700:])[0, 1]
        assert (rho > 0.95) if recoverable else (abs(rho) < 0.25), (l, rho)


# -- the pipeline -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ideal_result():
    data = toy_dataset(n=1000)
    return diagnose(backbones=[IdealBackbone(1), IdealBackbone(1)], dataset=data,
                    degrees=(1, 2, 3), lmax=5, n_boot=200, k_sweep=(1,), progress=False)


def test_ideal_backbone_recovers_exactly_up_to_dL(ideal_result):
    """Features = Y_0, Y_1 of the marked direction: rho = 1 for 1 <= l <= d, ~0 above."""
    summary = ideal_result.to_dict()["summary"]
    for d in (1, 2, 3):
        s = summary[str(d)]
        assert s["ceiling"] == d
        assert s["rho"]["0"] is None and s["rho_ci"]["0"] is None
        for l in range(1, 6):
            rho = s["rho"][str(l)]
            if l <= d:
                assert rho > 0.999, (d, l, rho)
            else:
                assert abs(rho) < 0.25, (d, l, rho)
        assert s["agreement"] is True and s["status"] == "agrees"
        assert s["measured_ceiling"] == d
        if d + 1 <= 5:
            lo, hi = s["delta_contrast_ci"]
            assert lo > 0 and s["delta_contrast"] > 0
    cells = ideal_result.to_dict()["cells"]
    assert {(c["d"], c["l"]) for c in cells} == {(d, l) for d in (1, 2, 3) for l in range(6)}
    assert all(c["agrees"] is None for c in cells if c["l"] == 0)
    assert all(c["agrees"] for c in cells if c["l"] > 0)
    assert all(c["status"] == ("recovered" if c["l"] <= c["d"] else "blind")
               for c in cells if c["l"] > 0)


def test_results_json_contract(ideal_result):
    p = json.loads(ideal_result.to_json())
    assert p == ideal_result.to_dict()
    assert p["schema_version"] == SCHEMA_VERSION == 4
    # schema 4: how the rotations were obtained, per backbone; no cache record without one
    assert all(b["rotations"]["method"] in ("model", "equivariance") and "cache" not in b
               for b in p["backbones"])
    assert p["config"]["feature_cache"] == {"used": False} and p["config"]["rotate"] == "auto"
    for key in ("config", "predicted", "probes", "summary"):
        assert key in p
    # the typed records round-trip through results.json
    assert DiagnoseResult.from_dict(p).to_dict() == p
    assert p["predicted"]["2"]["ceiling"] == 2
    probe = p["probes"][0]
    assert set(probe) >= {"backbone", "d", "l", "rho", "r2_inj", "gain"}
    for d, s in p["summary"].items():
        for key in ("rho", "rho_ci", "cliff_ratio", "cliff_ratio_ci", "delta_contrast",
                    "delta_contrast_ci", "agreement", "status"):
            assert key in s
        assert set(s["rho"]) == {str(l) for l in range(6)}
    cfg = p["config"]
    assert cfg["seed"] == 0 and cfg["n_boot"] == 200 and "versions" in cfg
    assert cfg["versions"]["torch"] and cfg["versions"]["e3nn"]
    assert "eps_definition" in cfg and "probe-training" in cfg["eps_definition"]
    assert all(b["dtype"] in ("float32", "float64") for b in p["backbones"])


def test_injected_residual_metric(ideal_result):
    """With energies, R2_inj is defined; recoverable degrees beat blind ones."""
    s = ideal_result.to_dict()["summary"]["2"]
    assert s["r2_inj"]["2"] is not None and s["r2_inj"]["3"] is not None
    assert s["r2_inj"]["2"] > s["r2_inj"]["3"] + 0.3


def test_same_seed_same_results_json():
    data = toy_dataset(n=300, seed=2)
    kw = dict(dataset=data, degrees=(1, 2), lmax=3, n_boot=50, k_sweep=(1,), progress=False)
    one = diagnose(backbones=[IdealBackbone(1)], seed=5, **kw).to_json()
    two = diagnose(backbones=[IdealBackbone(1)], seed=5, **kw).to_json()
    other = diagnose(backbones=[IdealBackbone(1)], seed=6, **kw).to_json()
    assert one == two
    assert one != other


def test_backbone_without_energy_has_null_r2():
    data = toy_dataset(n=200, seed=3)
    res = diagnose(backbones=[IdealBackbone(1, energy=False)], dataset=data, degrees=(1,),
                   lmax=2, n_boot=20, k_sweep=(), progress=False).to_dict()
    assert all(p["r2_inj"] is None for p in res["probes"])
    assert res["summary"]["1"]["rho"]["1"] > 0.99


@pytest.mark.parametrize("kwargs,needle", [
    (dict(marked=(0, 9)), "does not exist"),
    (dict(marked=(1, 1)), "must differ"),
    (dict(lmax=-1), "lmax"),
    (dict(degrees=(0,)), "probe degree"),
    (dict(backbones=[object()]), "irreps_out"),
    (dict(dataset="one-frame"), "1 frame"),
    (dict(marked=(0, 2), dataset="coincident"), "coincide"),
    (dict(n_boot=0), "bootstrap"),
])
def test_bad_input_raises_one_clear_error(kwargs, needle):
    data = toy_dataset(n=30)
    if kwargs.get("dataset") == "one-frame":
        kwargs["dataset"] = data.subset([0])
    elif kwargs.get("dataset") == "coincident":
        pos = data.positions.copy()
        pos[3, 2] = pos[3, 0]
        kwargs["dataset"] = Dataset(pos, data.numbers, data.energies, data.forces, data.metadata)
    kwargs.setdefault("dataset", data)
    kwargs.setdefault("backbones", [IdealBackbone(1)])
    with pytest.raises(ValueError, match=needle):
        diagnose(progress=False, n_boot=kwargs.pop("n_boot", 10), **kwargs)


# -- command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    data = toy_dataset(n=160, atoms=5, seed=7)
    data_path = root / "toy.npz"
    save_npz(data, data_path)
    model = Backbone(BackboneConfig(L=1, channels=4, layers=2, species=[1, 6, 8],
                                    avg_num_neighbors=4.0), seed=0)
    ckpt = save_checkpoint(root / "tiny.pt", model, {"note": "random init"})
    return data_path, ckpt


def test_cli_diagnose_writes_outputs(tiny_files, tmp_path, capsys):
    data_path, ckpt = tiny_files
    out = tmp_path / "run"
    code = cli.main(["diagnose", "--data", str(data_path), "--backbones", str(ckpt),
                     "--degrees", "1", "2", "--lmax", "3", "--n-boot", "20", "--k-sweep", "1",
                     "--out", str(out), "--no-progress", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "report.md"} <= names
    assert any(n.endswith(".png") for n in names)
    payload = json.loads((out / "results.json").read_text())
    assert payload["backbones"][0]["name"] == "tiny" and payload["backbones"][0]["L"] == 1
    assert not [n for n in names if n.startswith(".") and n != ".spectral-ceilings.json"]


@pytest.mark.parametrize("extra,needle", [
    (["--marked", "0", "99"], "does not exist"),
    (["--marked", "2", "2"], "must differ"),
    (["--degrees", "0"], "--degrees"),
    (["--lmax", "-1"], "--lmax"),
    (["--backbones", "/nonexistent.pt"], "nonexistent"),
])
def test_cli_diagnose_bad_input_exit_2_writes_nothing(tiny_files, tmp_path, capsys, extra, needle):
    data_path, ckpt = tiny_files
    out = tmp_path / "run"
    argv = ["diagnose", "--data", str(data_path), "--n-boot", "10", "--no-progress",
            "--out", str(out)]
    if "--backbones" not in extra:
        argv += ["--backbones", str(ckpt)]
    code = cli.main(argv + extra)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


def test_trained_spn_pipeline_agrees_with_ridge_on_the_cliff():
    """docs/method.md §2.6: the gradient-trained SPN and the ridge SPN put the cliff in one place."""
    data = toy_dataset(n=400, seed=9)
    kw = dict(backbones=[IdealBackbone(1)], dataset=data, degrees=(2,), lmax=3, n_boot=20,
              k_sweep=(), progress=False)
    ridge = diagnose(spn="ridge", **kw).to_dict()["summary"]["2"]
    trained = diagnose(spn="trained", **kw).to_dict()["summary"]["2"]
    assert ridge["measured_ceiling"] == trained["measured_ceiling"] == 2
    assert trained["rho"]["2"] > 0.9 and abs(trained["rho"]["3"]) < 0.25


def test_top_level_api_is_the_diagnose_function():
    import empirical

    assert empirical.diagnose is diagnose
    with pytest.raises(AttributeError):
        empirical.no_such_thing


def test_several_rotations_per_configuration_keep_configurations_together():
    data = toy_dataset(n=200, seed=11)
    res = diagnose(backbones=[IdealBackbone(1)], dataset=data, degrees=(1,), lmax=2,
                   n_boot=20, k_sweep=(), rotations_per_config=3, progress=False).to_dict()
    cfg = res["config"]
    assert cfg["rotations_per_configuration"] == 3
    assert cfg["n_train"] == 3 * cfg["configurations_train"]
    assert cfg["n_test"] == 3 * cfg["configurations_test"] == 3 * 40
    assert res["summary"]["1"]["rho"]["1"] > 0.99
    with pytest.raises(ValueError, match="rotations per configuration"):
        diagnose(backbones=[IdealBackbone(1)], dataset=data, rotations_per_config=0,
                 progress=False)


def test_channel_allocation_fills_the_width_from_the_top_degree():
    from empirical.diagnostic._probe import channel_allocation

    irreps = o3.Irreps("8x0e+8x1o+8x2e")
    assert channel_allocation(irreps, 9) == {0: 1, 1: 1, 2: 1}
    assert channel_allocation(irreps, 16) == {0: 2, 1: 1, 2: 2}
    assert channel_allocation(irreps, 18) == {0: 2, 1: 2, 2: 2}
    for k in range(9, 80):
        alloc = channel_allocation(irreps, k)
        used = sum(m * (2 * l + 1) for l, m in alloc.items())
        assert used <= k and k - used < 5           # less than one l = 2 block is left
    red = make_reduction("irrep", irreps, 16).fit(np.random.default_rng(0).normal(
        size=(50, irreps.dim)))
    assert red.k_ == 15


def test_cli_nequip_backbone_without_nequip_exits_2(monkeypatch, tmp_path, capsys):
    """Without nequip installed (simulated), --backbones nequip:PATH gives one clear line."""
    import sys

    monkeypatch.setitem(sys.modules, "nequip", None)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a checkpoint")
    out = tmp_path / "run"
    code = cli.main(["diagnose", "--backbones", f"nequip:{ckpt}", "--out", str(out),
                     "--no-progress", "--n-boot", "10"])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs nequip 0.19" in err and err.count("\n") == 1
    assert not out.exists()
