"""Issue 21, case 5: every size of a model, of training and of C5 is bounded before anything
is built. Each limit is tested at the limit (accepted; the validation, not a build, for the
big ones) and over it (refused with one line, exit 2 through ``cli.main``)."""

import math

import numpy as np
import pytest
import torch

from empirical import cli
from empirical.backbone import Backbone, BackboneConfig, CheckpointError
from empirical.backbone import _model, _train
from empirical.backbone._checkpoint import load, read_checkpoint
from empirical.backbone._model import (MAX_CHANNELS, MAX_CUTOFF_P, MAX_L, MAX_LAYERS,
                                       MAX_N_BASIS, MAX_R_MAX, MAX_RADIAL_HIDDEN, MAX_Z)
from empirical.backbone._train import MAX_BATCH_SIZE, MAX_EPOCHS
from empirical.calibration import _c5
from empirical.calibration._c5 import MAX_STRUCTURES, MAX_TRAIN_EPOCHS
from empirical.data import Dataset


def estimate_size(config):
    return _model.estimate_size(config)


def _one_line_exit_2(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def never_built(monkeypatch):
    """Fail the test if a Backbone is constructed (refusals come before any module)."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a Backbone was built")
    monkeypatch.setattr(Backbone, "__init__", refuse)


@pytest.fixture
def few_structures(monkeypatch):
    """Fail the test if C5 makes more than 10000 structures (on code without the bound,
    ``--structures 100000000`` would allocate tens of GB before anything else)."""
    real = _c5.c5_structures

    def bounded(n, *args, **kwargs):
        assert n <= 10_000, f"c5_structures({n}) was called"
        return real(n, *args, **kwargs)
    monkeypatch.setattr(_c5, "c5_structures", bounded)


# -- the config: each field at and over its bound -----------------------------------------------

SMALL = dict(L=1, channels=1, layers=2)
FIELD_LIMITS = [  # field, accepted at the limit, refused over it, other fields
    ("L", MAX_L, MAX_L + 1, dict(channels=1, layers=2)),
    ("channels", MAX_CHANNELS, MAX_CHANNELS + 1, dict(L=1, layers=2)),
    ("layers", MAX_LAYERS, MAX_LAYERS + 1, dict(L=1, channels=1)),
    ("n_basis", MAX_N_BASIS, MAX_N_BASIS + 1, SMALL),
    ("radial_hidden", MAX_RADIAL_HIDDEN, MAX_RADIAL_HIDDEN + 1, SMALL),
    ("cutoff_p", MAX_CUTOFF_P, MAX_CUTOFF_P + 1, SMALL),
    ("r_max", MAX_R_MAX, MAX_R_MAX * 1.01, SMALL),
    ("species", [1, MAX_Z], [1, MAX_Z + 1], SMALL),
]


@pytest.mark.parametrize("name,at,over,rest", FIELD_LIMITS, ids=[f[0] for f in FIELD_LIMITS])
def test_each_config_size_is_accepted_at_its_limit_and_refused_over_it(name, at, over, rest):
    assert getattr(BackboneConfig(**{**rest, name: at}), name) == at
    with pytest.raises(ValueError, match=name):
        BackboneConfig(**{**rest, name: over})


def test_the_highest_L_is_within_what_e3nn_implements():
    """MAX_L must stay within e3nn's spherical harmonics (which stop at l = 12)."""
    from e3nn import o3

    o3.spherical_harmonics(MAX_L, torch.ones(1, 3), normalize=True)
    with pytest.raises(NotImplementedError):
        o3.spherical_harmonics(13, torch.ones(1, 3), normalize=True)


@pytest.mark.parametrize("config", [dict(L=1, channels=3, layers=2),
                                    dict(L=2, channels=5, layers=3, species=[1, 6, 7, 8]),
                                    dict(L=3, channels=2, layers=4, n_basis=5, radial_hidden=7)])
def test_the_size_estimate_is_exact(config):
    cfg = BackboneConfig(**config)
    model = Backbone(cfg, seed=0)
    est = estimate_size(cfg)
    assert est["parameters"] == sum(p.numel() for p in model.parameters())
    assert est["constants"] == sum(c.numel() + e.numel() for b in model.blocks
                                   for c, e in b.tp._constants64)


@pytest.mark.parametrize("limit,key", [("MAX_PARAMETERS", "parameters"),
                                       ("MAX_CONSTANTS", "constants")])
def test_the_whole_model_is_bounded_at_its_limit(monkeypatch, limit, key):
    config = dict(L=3, channels=8, layers=3)
    size = estimate_size(BackboneConfig(**config))[key]
    monkeypatch.setattr(_model, limit, size)
    BackboneConfig(**config)
    monkeypatch.setattr(_model, limit, size - 1)
    with pytest.raises(ValueError, match="above the limit"):
        BackboneConfig(**config)


def test_a_paper_sized_backbone_is_accepted_and_a_huge_one_refused():
    BackboneConfig(L=4, channels=128, layers=6)                   # 18.5 M parameters
    with pytest.raises(ValueError, match="parameters, above the limit"):
        BackboneConfig(L=4, channels=512, layers=6)
    with pytest.raises(ValueError, match="coupling constants"):
        BackboneConfig(L=8, channels=1, layers=32)


ODD_CONFIGS = [
    {"L": 40}, {"layers": 5000}, {"n_basis": 10 ** 7}, {"n_basis": 1e7}, {"channels": 20000},
    {"species": [999]}, {"species": [0]}, {"species": [-1]}, {"species": [6, 6]},
    {"species": []}, {"species": list(range(1, 1000))}, {"species": [True]},
    {"species": "CHO"}, {"species": [[6]]}, {"species": [6.0]}, {"species": None},
    {"L": 0}, {"L": -3}, {"L": 2.5}, {"L": True}, {"L": "2"}, {"L": None}, {"L": float("nan")},
    {"channels": 0}, {"channels": 10 ** 9}, {"layers": 1}, {"layers": 2 ** 70},
    {"r_max": float("nan")}, {"r_max": float("inf")}, {"r_max": -5.0}, {"r_max": 0},
    {"r_max": "5"}, {"cutoff_p": 0}, {"cutoff_p": 10 ** 6}, {"radial_hidden": 10 ** 6},
    {"avg_num_neighbors": 0.0}, {"avg_num_neighbors": float("nan")},
    {"energy_scale": float("inf")}, {"species_shift": [0.0] * 7},
    {"species_scale": [float("nan")] * 3}, {"activation": ["silu"]}, {"activation": "relu"},
    {"unknown_key": 1},
]


@pytest.mark.parametrize("change", ODD_CONFIGS, ids=[repr(c)[:40] for c in ODD_CONFIGS])
def test_a_crafted_checkpoint_config_is_refused_before_anything_is_built(
        tmp_path, never_built, change):
    blob = read_checkpoint(_shipped_path())
    blob["config"].update(change)
    path = tmp_path / "crafted.pt"
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="crafted.pt") as info:
        load(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("key,value", [("config", [1, 2]), ("config", "L=2"), ("seed", "0"),
                                       ("seed", 2 ** 70), ("seed", -1), ("seed", 1.5),
                                       ("dtype", "float16"), ("dtype", ["float32"]),
                                       ("state_dict", [1])])
def test_other_crafted_checkpoint_fields_are_refused_before_anything_is_built(
        tmp_path, never_built, key, value):
    blob = read_checkpoint(_shipped_path())
    blob[key] = value
    path = tmp_path / "crafted.pt"
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="crafted.pt"):
        load(path)


@pytest.mark.parametrize("change", [{"L": 40}, {"layers": 5000}, {"n_basis": 10 ** 7},
                                    {"channels": 20000}, {"species": [999]}])
def test_the_issue_checkpoints_are_one_line_exit_2(tmp_path, capsys, never_built, change):
    blob = read_checkpoint(_shipped_path())
    blob["config"].update(change)
    path = tmp_path / "crafted.pt"
    torch.save(blob, path)
    err = _one_line_exit_2(["diagnose", "--backbones", str(path), "--out",
                            str(tmp_path / "run"), "--no-progress"], capsys)
    assert "crafted.pt" in err and next(iter(change)) in err
    assert not (tmp_path / "run").exists()


def _shipped_path():
    from empirical.backbone import shipped

    return next(e["path"] for e in shipped("diagnostic") if e["name"] == "aspirin_L2_seed0")


# -- train ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("option,limit", [("--L", MAX_L),
                                          ("--channels", MAX_CHANNELS),
                                          ("--layers", MAX_LAYERS),
                                          ("--epochs", MAX_EPOCHS),
                                          ("--batch-size", MAX_BATCH_SIZE)])
def test_train_sizes_are_parsed_at_the_limit_and_refused_over_it(tmp_path, capsys, never_built,
                                                                  option, limit):
    base = ["train", "--data", str(_toy_npz(tmp_path)), "--seed", "0", "--out",
            str(tmp_path / "run"), "--no-progress", *SPLITS]
    args = cli.build_parser().parse_args(base + [option, str(limit)])
    assert getattr(args, option[2:].replace("-", "_")) == limit
    err = _one_line_exit_2(base + [option, str(limit + 1)], capsys)
    assert option in err and str(limit + 1) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [["--L", "100"], ["--channels", "100000"],
                                  ["--layers", "100000"], ["--L", "0"], ["--L", "-1"],
                                  ["--L", "2.5"], ["--channels", "1e9"], ["--layers", "1"],
                                  ["--epochs", "0"], ["--batch-size", "-1"],
                                  ["--energy-weight", "nan"], ["--force-weight", "inf"],
                                  ["--max-minutes", "nan"], ["--r-max", "inf"]])
def test_odd_train_sizes_are_one_line_exit_2(tmp_path, capsys, never_built, argv):
    data = _toy_npz(tmp_path)
    err = _one_line_exit_2(["train", "--data", str(data), "--seed", "0", "--out",
                            str(tmp_path / "run"), "--no-progress", *SPLITS, *argv], capsys)
    assert "split" not in err       # refused for the size, not for the frames


SPLITS = ["--train-frames", "10", "--val-frames", "5", "--test-frames", "5"]


def _toy_npz(tmp_path, n=30):
    rng = np.random.default_rng(0)
    pos = np.array([[0.0, 0, 0], [1.2, 0, 0], [0, 1.1, 0]])[None] + rng.normal(
        scale=0.05, size=(n, 3, 3))
    path = tmp_path / "toy.npz"
    np.savez(path, positions=pos, numbers=np.array([6, 8, 1]),
             energies=-1000.0 + 0.05 * rng.normal(size=n), forces=rng.normal(size=(n, 3, 3)))
    return path


def test_train_refuses_more_frames_than_the_dataset_has(tmp_path, capsys, never_built):
    """Guards a behaviour that already held (make_splits refuses before the model)."""
    data = _toy_npz(tmp_path, n=30)
    err = _one_line_exit_2(["train", "--data", str(data), "--seed", "0", "--out",
                            str(tmp_path / "run"), "--train-frames", "20", "--val-frames", "5",
                            "--test-frames", "6", "--no-progress"], capsys)
    assert "30" in err


def test_the_training_step_memory_is_bounded_at_its_limit(tmp_path, monkeypatch, capsys):
    config = BackboneConfig(L=1, channels=2, layers=2, species=[1, 6, 8],
                            avg_num_neighbors=2.0)
    need = _train.training_bytes(config, 3, 8)
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(need))
    _train._check_training_memory(config, 3, 8, torch.float32, "cpu")
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(need - 1))
    with pytest.raises(ValueError, match="batch size 8"):
        _train._check_training_memory(config, 3, 8, torch.float32, "cpu")
    # through the command: a 4096-configuration batch of a wide model is refused unbuilt
    monkeypatch.delenv("EMPIRICAL_MAX_BYTES")
    monkeypatch.setattr(Backbone, "__init__", lambda *a, **k: pytest.fail("built"))
    err = _one_line_exit_2(["train", "--data", str(_toy_npz(tmp_path)), "--seed", "0",
                            "--out", str(tmp_path / "run"), "--train-frames", "10",
                            "--val-frames", "5", "--test-frames", "5", "--L", "4",
                            "--channels", "128", "--batch-size", "4096", "--no-progress"],
                           capsys)
    assert "--batch-size" in err and "GB" in err


def test_the_training_statistics_do_not_hold_every_pair_at_once():
    """dataset_statistics works a few frames at a time (same numbers as all at once)."""
    rng = np.random.default_rng(1)
    n, atoms = 50, 40
    data = Dataset(positions=rng.normal(scale=3, size=(n, atoms, 3)),
                   numbers=np.full(atoms, 6), energies=rng.normal(size=n),
                   forces=rng.normal(size=(n, atoms, 3)), metadata={"source": "t"})
    stats = _train.dataset_statistics(data, np.arange(n), 5.0)
    d = np.linalg.norm(data.positions[:, :, None] - data.positions[:, None], axis=-1)
    assert math.isclose(stats["avg_num_neighbors"], (((d < 5).sum(axis=(1, 2)) - atoms)
                                                     / atoms).mean())


@pytest.mark.parametrize("value,ok", [(MAX_EPOCHS, True), (MAX_EPOCHS + 1, False),
                                      (0, False), (True, False), (2.0, False)])
def test_train_settings_epochs_are_bounded(value, ok):
    if ok:
        assert _train.TrainSettings(epochs=value).epochs == value
    else:
        with pytest.raises(ValueError, match="epochs"):
            _train.TrainSettings(epochs=value)


# -- C5 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option,limit", [("--L", MAX_L),
                                          ("--structures", MAX_STRUCTURES),
                                          ("--channels", MAX_CHANNELS),
                                          ("--train-epochs", MAX_TRAIN_EPOCHS),
                                          ("--lmax", 12)])
def test_c5_sizes_are_parsed_at_the_limit_and_refused_over_it(tmp_path, capsys, never_built,
                                                               few_structures, option, limit):
    base = ["c5", "--out", str(tmp_path / "run"), "--sources", "random"]
    args = cli.build_parser().parse_args(base + [option, str(limit)])
    value = getattr(args, "Ls" if option == "--L" else option[2:].replace("-", "_"))
    assert value == ([limit] if option == "--L" else limit)
    err = _one_line_exit_2(base + [option, str(limit + 1), "--no-progress"], capsys)
    assert option in err and str(limit + 1) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [["--L", "50"], ["--structures", "100000000"],
                                  ["--L", "1", "1"], ["--degrees", "300"], ["--degrees", "40"],
                                  ["--degrees", "2", "2"], ["--structures", "19"],
                                  ["--channels", "100000"], ["--L", "0"], ["--lmax", "-1"],
                                  ["--train-epochs", "0"], ["--structures", "1e9"]])
def test_odd_c5_sizes_are_one_line_exit_2(tmp_path, capsys, never_built, few_structures,
                                           argv):
    _one_line_exit_2(["c5", "--out", str(tmp_path / "run"), "--no-progress", "--sources",
                      "random", *argv], capsys)
    assert not (tmp_path / "run").exists()


C5_ARGS = dict(Ls=[1, 2], degrees=[1, 2], lmax=3, n=200, seed=0, sources=["random", "ideal"],
               channels=4, train_epochs=2, train_frames=50, test_fraction=0.25, folds=3,
               jitter=0.05)


def test_c5_memory_is_bounded_at_its_limit(monkeypatch, never_built):
    need = _c5.c5_bytes(C5_ARGS["Ls"], C5_ARGS["degrees"], C5_ARGS["n"], C5_ARGS["sources"],
                        C5_ARGS["channels"])
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(need))
    _c5.validate_c5(**C5_ARGS)
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(need - 1))
    with pytest.raises(ValueError, match="C5 request"):
        _c5.validate_c5(**C5_ARGS)


def test_the_default_c5_fits_and_the_largest_count_of_structures_needs_the_knob():
    defaults = dict(Ls=[1, 2, 3], degrees=[1, 2, 3], sources=list(_c5.SOURCES), channels=32)
    assert _c5.c5_bytes(n=6000, **defaults) < 4e9
    with pytest.raises(ValueError, match="C5 request"):
        _c5.validate_c5(**{**C5_ARGS, **dict(defaults, n=MAX_STRUCTURES),
                           "sources": list(_c5.SOURCES)})


@pytest.mark.parametrize("name,at,over", [("train_epochs", MAX_TRAIN_EPOCHS,
                                           MAX_TRAIN_EPOCHS + 1),
                                          ("train_frames", MAX_STRUCTURES,
                                           MAX_STRUCTURES + 1),
                                          ("jitter", 1.5, 1.6), ("folds", 20, 21)])
def test_c5_api_options_are_bounded(never_built, name, at, over):
    _c5.validate_c5(**{**C5_ARGS, name: at})
    with pytest.raises(ValueError, match=name):
        _c5.validate_c5(**{**C5_ARGS, name: over})


@pytest.mark.parametrize("change", [dict(n=2.5e3), dict(n=True), dict(Ls=[]), dict(Ls=[2.0]),
                                    dict(degrees=[]), dict(sources=[]),
                                    dict(sources=["ideal", "ideal"]), dict(lmax=13),
                                    dict(jitter=float("nan")), dict(jitter=float("inf")),
                                    dict(test_fraction=float("nan")), dict(seed=-1),
                                    dict(channels=0)])
def test_odd_c5_api_options_are_refused(never_built, few_structures, change):
    with pytest.raises(ValueError):
        _c5.run_c5(**{**C5_ARGS, **change}, progress=False)
