"""Issue 15, framework side: the optional protocol parts (batch path, device, layers), the
adapter registry, the per-layer profile and the survey (docs/method.md §2.2, §2.9, §2.10).

The adapters themselves are tested in tests/test_adapters_*.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from empirical import adapters
from empirical.backbone import BackboneLayer, GatePointsBackbone, equivariance_error, supports
from empirical.backbone import load as load_backbone
from empirical.diagnostic import STATUS_WORDS
from empirical.cli import main
from empirical.diagnostic import diagnose
from empirical.diagnostic._features import atom_features, batch_size, model_device
from empirical.diagnostic._pipeline import place, resolve_device
from empirical.diagnostic.statistics import Interval
from empirical.survey import SurveyResult, backbone_layers, profile, survey, survey_models

FAST = dict(frames=200, n_boot=100, seed=0)


@pytest.fixture(scope="module")
def seed0():
    return load_backbone("aspirin_L2_seed0").eval()


# -- protocol: the batch path --------------------------------------------------------------

class Batched:
    """A protocol object with both paths, counting how often each is used."""

    def __init__(self, inner, broken: str = ""):
        self.inner, self.broken = inner, broken
        self.irreps_out = inner.irreps_out
        self.batch_calls = self.single_calls = 0
        self.batch_size = 3

    def node_features(self, positions, numbers):
        self.single_calls += 1
        return self.inner.node_features(positions, numbers)

    def energy(self, positions, numbers):
        return self.inner.energy(positions, numbers)

    def features_batch(self, positions, numbers, with_energy=True):
        self.batch_calls += 1
        h = torch.stack([self.inner.node_features(p, numbers) for p in positions])
        e = torch.stack([self.inner.energy(p, numbers) for p in positions]) if with_energy else None
        if self.broken == "shape":
            h = h[:, :-1]
        if self.broken == "energy":
            e = None
        return h, e


def test_batch_path_is_used_and_equals_the_single_path(aspirin, seed0):
    rot = Rotation.random(7, random_state=1).as_matrix()
    obj = Batched(seed0)
    h_b, e_b = atom_features(obj, aspirin.positions[:7], aspirin.numbers, rot, [6, 7])
    assert obj.batch_calls == 3 and obj.single_calls == 0     # batch_size 3: 3 + 3 + 1
    single = Batched(seed0)
    single.features_batch = None                             # not callable: the single path
    h_s, e_s = atom_features(single, aspirin.positions[:7], aspirin.numbers, rot, [6, 7])
    assert single.single_calls == 7 and single.batch_calls == 0
    np.testing.assert_allclose(h_b, h_s, atol=1e-5)
    np.testing.assert_allclose(e_b, e_s, atol=1e-4)


@pytest.mark.parametrize("broken, message", [("shape", "features of shape"),
                                             ("energy", "no energies")])
def test_a_broken_batch_path_is_named(aspirin, seed0, broken, message):
    rot = np.stack([np.eye(3)] * 2)
    with pytest.raises(ValueError, match=message):
        atom_features(Batched(seed0, broken), aspirin.positions[:2], aspirin.numbers, rot, [0])


def test_batch_size_rule(seed0):
    assert batch_size(Batched(seed0)) == 3
    assert batch_size(Batched(seed0), chunk=5) == 5
    assert batch_size(object()) == 8


def test_supports():
    gp = GatePointsBackbone(L=1, channels=4, layers=1)
    assert supports(gp, "energy") is False and supports(gp, "batch") is False
    with pytest.raises(ValueError, match="unknown protocol part"):
        supports(gp, "colour")


# -- protocol: layers ------------------------------------------------------------------------

def test_backbone_layers_share_the_model(aspirin, seed0):
    assert seed0.layers == ("blocks.0", "blocks.1") and seed0.layer == "blocks.1"
    assert seed0.at_layer(-1) is seed0 and seed0.at_layer("blocks.1") is seed0
    first = seed0.at_layer(0)
    assert isinstance(first, BackboneLayer) and first.backbone is seed0
    pos = torch.tensor(aspirin.positions[0], dtype=torch.float32)
    num = torch.tensor(aspirin.numbers)
    h0 = first.node_features(pos, num)
    h1 = seed0.node_features(pos, num)
    assert h0.shape == h1.shape and not torch.allclose(h0, h1)   # another layer's features
    assert equivariance_error(first, pos, num) < 1e-4
    with pytest.raises(ValueError, match="layers"):
        seed0.at_layer(2)
    with pytest.raises(ValueError, match="no layer named"):
        seed0.at_layer("blocks.2")
    assert [n for n, _ in backbone_layers(seed0)] == ["blocks.0", "blocks.1"]
    assert [n for n, _ in backbone_layers(GatePointsBackbone(L=1, channels=4))] == ["features"]


# -- device ------------------------------------------------------------------------------

def test_device_requests_are_checked():
    assert resolve_device(None) is None
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="only cpu and cuda"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_a_backbone_that_cannot_move_is_refused(seed0):
    class Elsewhere:
        irreps_out = "1x1o"
        device = "cuda:0"

        def node_features(self, positions, numbers):
            raise AssertionError("never run")

    with pytest.raises(ValueError, match="cannot be moved"):
        place([adapters.BackboneEntry("x", Elsewhere())], torch.device("cpu"))
    place([adapters.BackboneEntry("s", seed0)], torch.device("cpu"))           # already there: nothing to do
    assert model_device(seed0) == torch.device("cpu")


def test_diagnose_records_the_device(aspirin, seed0):
    res = diagnose([seed0], dataset=aspirin, degrees=[1], lmax=3, k_sweep=(), device="cpu",
                   progress=False, **FAST)
    assert res.config["device"] == "cpu"
    assert res.backbones[0].extra["device"] == "cpu"
    assert res.backbones[0].extra["layer"] == "blocks.1"


def test_cli_device_error_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code = main(["diagnose", "--device", "cuda", "--frames", "100", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no CUDA device" in err[0]
    assert not (tmp_path / "o").exists()


# -- the adapter registry ------------------------------------------------------------------

def test_adapter_registry():
    assert adapters.is_spec("sevenn:7net-0") and adapters.is_spec("nequip:run/best.ckpt")
    assert not adapters.is_spec("aspirin_L2_seed0") and not adapters.is_spec("C:/x.pt")
    with pytest.raises(ValueError, match="nothing after"):
        adapters.from_spec("mace:")
    with pytest.raises(ValueError, match="unknown adapter"):
        adapters.adapter("allegro")
    assert set(adapters.ADAPTERS) == {"native", "nequip", "sevenn", "mace"}
    for prefix in adapters.ADAPTERS:       # every adapter file has the same shape
        try:
            module = adapters.adapter(prefix)
        except ImportError:
            continue
        for name in ("PREFIX", "REQUIREMENT", "MISSING_MESSAGE", "load", "from_model",
                     "from_spec", "available"):
            assert hasattr(module, name), f"{prefix} adapter lacks {name}"
        assert module.PREFIX == prefix


# -- profile and survey ----------------------------------------------------------------------

def test_profile_rows_follow_each_layer(aspirin, seed0):
    res = profile([seed0], dataset=aspirin, d=1, lmax=4, progress=False, **FAST)
    rows = res.rows
    assert [r.layer for r in rows] == ["blocks.0", "blocks.1"]
    for r in rows:
        h = r.headline
        assert h.predicted_ceiling == h.d * h.L == 2
        # 40 held-out samples: a blind cell scatters with SD ~0.16, so the test reads the
        # ceiling, not every cell's verdict
        assert h.measured_ceiling == 2
        assert r.rho[2] > 0.5 and r.rho[3] < 0.5 and r.rho[4] < 0.5
        assert isinstance(r.rho_ci[2], Interval) and r.rho_ci[2].low < r.rho[2]
    assert res.to_dict()["schema"] == "spectral-ceilings-profile/2"
    json.loads(res.to_json())


def test_profile_of_a_degree_one_layer(aspirin):
    """A layer of L = 1 has its own ceiling d x 1 (the rows' ceilings differ by layer)."""
    class TwoLayers:
        """Layer 'low' reads only the l <= 1 part of a shipped backbone's features."""

        def __init__(self, inner, keep_l2=True):
            self.inner, self.keep = inner, keep_l2
            irreps = o3.Irreps(inner.irreps_out)
            self.mask = torch.cat([torch.full((mul * ir.dim,), keep_l2 or ir.l <= 1)
                                   for mul, ir in irreps])
            self.irreps_out = irreps if keep_l2 else o3.Irreps(
                [(mul, ir) for mul, ir in irreps if ir.l <= 1])
            self.layers = ("low", "high")
            self.layer = "high" if keep_l2 else "low"
            self.dtype = inner.dtype

        def at_layer(self, layer):
            return TwoLayers(self.inner, keep_l2=layer in (1, "high"))

        def node_features(self, positions, numbers):
            return self.inner.node_features(positions, numbers)[:, self.mask]

        def features_batch(self, positions, numbers, with_energy=True):
            m, n, _ = positions.shape
            batch = torch.arange(m).repeat_interleave(n)
            h = self.inner.node_features(positions.reshape(-1, 3), numbers.repeat(m), batch)
            return h.reshape(m, n, -1)[..., self.mask], None

    res = profile([TwoLayers(load_backbone("aspirin_L2_seed0").eval())], dataset=aspirin,
                  d=1, lmax=3, progress=False, **FAST)
    assert [(r.layer, r.headline.L, r.headline.predicted_ceiling, r.headline.measured_ceiling)
            for r in res.rows] == [("low", 1, 1, 1), ("high", 2, 2, 2)]


def test_survey_rows_and_outputs(aspirin, tmp_path):
    res = survey(models=["aspirin_L2_seed1"], dataset=aspirin, degrees=[1], progress=False,
                 **FAST)
    (row,) = res.rows
    h = row.headline
    assert row.model == "aspirin_L2_seed1" and h.L == 2 and h.d == 1
    assert h.predicted_ceiling == 2 and h.measured_ceiling == 2
    assert h.rho_boundary > 0.5 and h.rho_above < 0.5
    assert isinstance(h.rho_boundary_ci, Interval) and h.rho_boundary_ci.high >= h.rho_boundary
    assert row.parameters > 1000 and row.layers == 2
    assert res.runs["aspirin_L2_seed1"].lmax == 3   # d L + 1
    # capacity "auto" by default, recorded as diagnose records it
    assert res.config["capacity"] == res.runs["aspirin_L2_seed1"].config["capacity"]
    assert res.config["capacity"]["mode"] == "auto"
    paths = res.save(tmp_path / "s")
    assert sorted(p.name for p in paths) == ["report.md", "results.json", "survey.png"]
    report = (tmp_path / "s" / "report.md").read_text()
    assert "| aspirin_L2_seed1 | 2 | 2 |" in report
    assert f"{int(h.agreement is True)} of 1" in report
    assert h.agreement is (h.status == "agrees") and "disagree" not in report
    assert report.count(f"| {STATUS_WORDS[h.status]} |") >= 1
    text = (tmp_path / "s" / "results.json").read_text()
    assert SurveyResult.from_dict(json.loads(text)).to_json() == text == res.to_json()


def test_survey_models_default_list():
    models = survey_models(extra=["nequip:x.ckpt", "aspirin_L2_seed0"])
    assert models[:4] == [f"aspirin_L2_seed{i}" for i in range(4)]
    assert models[-1] == "nequip:x.ckpt" and models.count("aspirin_L2_seed0") == 1


def test_survey_refuses_before_work(aspirin, tmp_path, capsys):
    """A bad spec anywhere in the list is refused before the first model runs."""
    with pytest.raises(ValueError):
        survey(models=["aspirin_L2_seed0", "no_such_model"], dataset=aspirin, degrees=[1],
               progress=False, **FAST)
    code = main(["survey", "--models", "aspirin_L2_seed0", "mace:/nonexistent.model",
                 "--frames", "100", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not (tmp_path / "o").exists()


def test_cli_profile_writes_a_set(tmp_path, capsys):
    code = main(["profile", "--backbones", "aspirin_L2_seed2", "--d", "1", "--lmax", "3",
                 "--frames", "200", "--n-boot", "100", "--out", str(tmp_path / "p"),
                 "--no-progress", "--capacity", "fixed"])
    assert code == 0
    config = json.loads((tmp_path / "p" / "results.json").read_text())["config"]
    assert config["capacity"]["mode"] == "fixed"
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        ".spectral-ceilings.json", "profile.png", "report.md", "results.json"]
    out = capsys.readouterr().out
    assert "blocks.0" in out and "blocks.1" in out and "(measured 2)" in out
    assert main(["profile", "--d", "0", "--out", str(tmp_path / "q")]) == 2
    assert main(["profile", "--capacity", "wide", "--out", str(tmp_path / "q")]) == 2
    assert main(["survey", "--capacity", "wide", "--out", str(tmp_path / "q")]) == 2
    assert "'wide'" in capsys.readouterr().err and not (tmp_path / "q").exists()
    with pytest.raises(ValueError, match="capacity must be 'auto' or 'fixed', got 'wide'"):
        profile(["aspirin_L2_seed2"], d=1, capacity="wide", progress=False)


def test_available_specs_carry_their_prefix():
    """Every listed spec resolves through the registry (the survey's default list)."""
    for spec in adapters.available():
        assert adapters.is_spec(spec), spec


def test_preserved_process_state_restores_what_it_names(monkeypatch):
    """The one guard every adapter uses: dtype, generators and the environment come back;
    with named keys only those do (a framework's one-time settings stay)."""
    import os

    from empirical.adapters._framework import preserved_process_state

    monkeypatch.delenv("SC_TEST_A", raising=False)
    monkeypatch.delenv("SC_TEST_B", raising=False)
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with preserved_process_state():
        torch.set_default_dtype(torch.float64)
        torch.rand(3)
        monkeypatch.setenv("SC_TEST_A", "1")
    assert torch.get_default_dtype() == torch.float32 and "SC_TEST_A" not in os.environ
    assert torch.equal(torch.rand(2), expected)           # the generator is where it was
    with preserved_process_state(environ=("SC_TEST_A",)):
        monkeypatch.setenv("SC_TEST_A", "1")
        monkeypatch.setenv("SC_TEST_B", "1")
    assert "SC_TEST_A" not in os.environ and os.environ["SC_TEST_B"] == "1"
