"""empirical.backbone: equivariance, gradients, training, checkpoints, resume, bad input."""

import json
import os

import numpy as np
import pytest
import torch
from e3nn import o3

from empirical import cli
from empirical.backbone import (Backbone, BackboneConfig, CheckpointError, TrainSettings,
                                check_protocol, equivariance_error, load, save_checkpoint,
                                shipped, train)

TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def small(L=2, dtype=torch.float64, seed=0, **kw):
    config = BackboneConfig(L=L, channels=4, layers=3, avg_num_neighbors=16.0,
                            energy_shift=-51.0, energy_scale=1.0, **kw)
    return Backbone(config, seed=seed, dtype=dtype)


def frame(aspirin, k=0, dtype=torch.float64):
    return torch.tensor(aspirin.positions[k], dtype=dtype), torch.tensor(aspirin.numbers)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_features_equivariant_under_rotations_and_reflection(aspirin, L, dtype):
    """node_features(R x) = D(R) node_features(x) for random rotations and for -R
    (parity included through irreps_out.D_from_matrix)."""
    model = small(L, dtype)
    pos, num = frame(aspirin, dtype=dtype)
    torch.manual_seed(L)
    for _ in range(3):
        R = o3.rand_matrix(dtype=dtype)
        assert equivariance_error(model, pos, num, R) < TOL[dtype] * 10
        assert equivariance_error(model, pos, num, -R) < TOL[dtype] * 10
    assert {ir.l for _, ir in model.irreps_out} == set(range(L + 1))
    assert {ir.p for _, ir in model.irreps_out} == {1, -1}


def test_equivariance_check_can_fail(aspirin):
    """A features function that is not equivariant is caught by the same measurement."""

    class Broken:
        irreps_out = o3.Irreps("1x1o")

        def node_features(self, positions, numbers):
            return positions.abs()

    pos, num = frame(aspirin)
    assert equivariance_error(Broken(), pos, num, o3.rand_matrix(dtype=torch.float64)) > 1e-3


def test_energy_invariant_forces_equivariant(aspirin):
    model = small()
    pos, num = frame(aspirin, 3)
    R = o3.rand_matrix(dtype=torch.float64)
    e, f = model.energy_and_forces(pos, num)
    e_r, f_r = model.energy_and_forces(pos @ R.T, num)
    assert abs(float((e - e_r).detach())) < 1e-9
    assert float((f_r - f @ R.T).abs().max()) < 1e-9
    e_m, _ = model.energy_and_forces(-pos, num)  # inversion
    assert abs(float((e - e_m).detach())) < 1e-9


def test_forces_are_negative_gradient(aspirin):
    """F = -dE/dr against central finite differences (float64)."""
    model = small()
    pos, num = frame(aspirin, 7)
    _, f = model.energy_and_forces(pos, num)
    h = 1e-5
    for atom, axis in [(0, 0), (6, 2), (17, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(model.energy(plus, num) - model.energy(minus, num)) / (2 * h)
        assert float(f[atom, axis]) == pytest.approx(float(fd), abs=1e-6)


def test_batched_energy_equals_single(aspirin):
    model = small()
    p0, num = frame(aspirin, 0)
    p1, _ = frame(aspirin, 1)
    batch = torch.arange(2).repeat_interleave(len(num))
    e = model.energy(torch.cat([p0, p1]), num.repeat(2), batch)
    assert float(e[0]) == pytest.approx(float(model.energy(p0, num)), abs=1e-10)
    assert float(e[1]) == pytest.approx(float(model.energy(p1, num)), abs=1e-10)


def test_bad_inputs_raise(aspirin):
    model = small()
    pos, num = frame(aspirin)
    dup = pos.clone()
    dup[1] = dup[0]
    with pytest.raises(ValueError, match="zero-length"):
        model.node_features(dup, num)
    with pytest.raises(ValueError, match="not among"):
        model.node_features(pos, torch.full_like(num, 7))
    with pytest.raises(ValueError, match="L must be"):
        BackboneConfig(L=0)
    with pytest.raises(TypeError, match="seed"):
        Backbone(BackboneConfig(), seed=None)
    with pytest.raises(TypeError, match="node_features"):
        check_protocol(type("X", (), {"irreps_out": o3.Irreps("1x0e")})())


def _tiny_dataset(aspirin, n=24):
    return aspirin.subset(np.arange(n))


SETTINGS = dict(epochs=3, batch_size=4, lr=1e-2, train_frames=8, val_frames=4, test_frames=4,
                patience=100, stop_patience=100)


def test_loss_falls_on_a_tiny_dataset(aspirin, tmp_path):
    ds = _tiny_dataset(aspirin, 40)
    config = BackboneConfig(L=2, channels=8, layers=3)
    meta = train(ds, tmp_path, config, seed=0, settings=TrainSettings(**{**SETTINGS,
                 "epochs": 5, "batch_size": 2, "train_frames": 32}), progress=False,
                 log=lambda s: None)
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < 0.5 * losses[0]
    assert meta["test"]["frames"] == 4 and meta["status"] == "finished"


@pytest.mark.parametrize("L", [1, 2, 3])
def test_fused_blocks_equal_e3nn_reference(aspirin, L):
    """The hand-written edge tensor product + fused linear equals e3nn's generic
    ``o3.TensorProduct("uvu")`` + ``o3.Linear`` block by block (float64), also for the
    scalar-only last block, and so do the gradients."""
    model = small(L=L, seed=L)
    pos = torch.tensor(np.concatenate(aspirin.positions[:2]), requires_grad=True)
    num = torch.tensor(np.tile(aspirin.numbers, 2))
    batch = torch.arange(2).repeat_interleave(len(aspirin.numbers))
    h, onehot, _, (src, dst, sh, basis) = model._features(pos, num, batch, upto=0)
    for block in model.blocks:
        fast = block(h, onehot, src, dst, sh, basis)
        ref = block.forward_reference(h, onehot, src, dst, sh, basis)
        assert fast.shape == ref.shape
        assert torch.allclose(fast, ref, atol=1e-12, rtol=0)
        (g_fast,) = torch.autograd.grad(fast.square().sum(), pos, retain_graph=True)
        (g_ref,) = torch.autograd.grad(ref.square().sum(), pos, retain_graph=True)
        assert torch.allclose(g_fast, g_ref, atol=1e-10, rtol=0)
        h = fast


def test_checkpoint_with_legacy_coupling_buffers_loads(aspirin):
    """Checkpoints written before the fused tensor product stored constant ``tp.cg_*``
    buffers; they load and give the same outputs (the constants are rebuilt)."""
    model = small(seed=5)
    state = dict(model.state_dict())
    state["blocks.0.tp.cg_0"] = torch.zeros(1, 1, 1)
    back = small(seed=6)
    back.load_state_dict(state)
    pos, num = frame(aspirin, 1)
    assert torch.equal(back.node_features(pos, num), model.node_features(pos, num))
    with pytest.raises(RuntimeError):
        back.load_state_dict({**state, "blocks.0.tp.bogus": torch.zeros(1)})


def test_checkpoint_round_trip(aspirin, tmp_path):
    model = small(seed=3)
    path = save_checkpoint(tmp_path / "m.pt", model, {"note": "x"})
    back = load(path)
    pos, num = frame(aspirin, 2)
    assert torch.equal(back.node_features(pos, num), model.node_features(pos, num))
    assert float(back.energy(pos, num)) == float(model.energy(pos, num))
    assert back.metadata["note"] == "x" and back.irreps_out == model.irreps_out


def test_compressed_checkpoint_loads_identically(aspirin, tmp_path):
    """An xz-compressed copy (how the control backbones ship) is smaller, loads to the same
    outputs, and keeps its name without .pt.xz; a corrupt .xz file is one clear error."""
    from empirical.backbone._checkpoint import checkpoint_name, compress_checkpoint

    model = small(seed=4)
    plain = save_checkpoint(tmp_path / "m.pt", model, {"note": "y"})
    packed = compress_checkpoint(plain, tmp_path / "m.pt.xz")
    assert packed.stat().st_size < plain.stat().st_size
    back = load(packed)
    pos, num = frame(aspirin, 2)
    assert torch.equal(back.node_features(pos, num), model.node_features(pos, num))
    assert back.metadata["note"] == "y"
    assert checkpoint_name(packed) == checkpoint_name(plain) == "m"
    (tmp_path / "bad.pt.xz").write_bytes(b"not xz")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(tmp_path / "bad.pt.xz")


def test_resume_continues_where_it_stopped(aspirin, tmp_path):
    """2 epochs + resume to 4 gives exactly the weights and history of 4 epochs at once."""
    ds = _tiny_dataset(aspirin)
    config = BackboneConfig(L=1, channels=4, layers=2)
    kw = dict(progress=False, log=lambda s: None)
    full = train(ds, tmp_path / "full", config, seed=1, settings=TrainSettings(**{**SETTINGS,
                 "epochs": 4}), **kw)
    train(ds, tmp_path / "part", config, seed=1, settings=TrainSettings(**{**SETTINGS,
          "epochs": 2}), **kw)
    resumed = train(ds, tmp_path / "part", config, seed=1, settings=TrainSettings(**{
        **SETTINGS, "epochs": 4}), resume=True, **kw)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    assert [h["train_loss"] for h in resumed["history"]] == \
        [h["train_loss"] for h in full["history"]]
    a, b = load(tmp_path / "full" / "last.pt"), load(tmp_path / "part" / "last.pt")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(bad)
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an"):
        load(tmp_path / "other.pt")


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,needle", [
    (["train", "--seed", "0", "--out", "{tmp}/r", "--L", "0"], "--L"),
    (["train", "--seed", "0", "--out", "{tmp}/r", "--data", "{tmp}/missing.npz"], "no such file"),
    (["train", "--seed", "0", "--out", "{tmp}/r", "--resume"], "no checkpoint"),
    (["train", "--out", "{tmp}/r"], "--seed"),
    (["train", "--seed", "0", "--out", "{tmp}/corrupt", "--resume"], "corrupt"),
    (["train", "--seed", "0", "--out", "{tmp}/r", "--activation", "relu"], "relu"),
])
def test_cli_bad_options_exit_2(capsys, tmp_path, argv, needle):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "last.pt").write_bytes(b"garbage")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_train_tiny(capsys, tmp_path, aspirin):
    path = tmp_path / "tiny.npz"
    from empirical.data import save_npz

    save_npz(_tiny_dataset(aspirin), path)
    code, out, _ = run(capsys, "train", "--data", str(path), "--seed", "0", "--out",
                       str(tmp_path / "run"), "--L", "1", "--channels", "4", "--layers", "2",
                       "--epochs", "1", "--train-frames", "8", "--val-frames", "4",
                       "--test-frames", "4", "--no-progress")
    assert code == 0 and "force MAE" in out
    model = load(tmp_path / "run" / "backbone.pt")
    assert model.metadata["splits"]["sizes"] == {"train": 8, "validation": 4, "test": 4}
    code, _, err = run(capsys, "train", "--data", str(path), "--seed", "0", "--out",
                       str(tmp_path / "run"))
    assert code == 2 and "--resume" in err


def test_shipped_backbones(capsys, aspirin):
    """Four diagnostic L=2 aspirin backbones, seeds 0-3, 1000 training frames, MAEs recorded;
    each loads, is equivariant, and `empirical backbones --json` lists them with their role."""
    rows = shipped(role="diagnostic")
    assert sorted(r["seed"] for r in rows) == [0, 1, 2, 3]
    for r in rows:
        assert r["L"] == 2 and r["training_frames"] == 1000 and r["role"] == "diagnostic"
        assert r["force_mae_meV_per_A"] > 0 and r["energy_mae_meV"] > 0
        assert os.path.getsize(r["path"]) <= 2 * 1024 * 1024
        model = load(r["path"])
        pos, num = frame(aspirin, 11, dtype=torch.float32)
        assert equivariance_error(model, pos, num) < 1e-3
    code, out, _ = run(capsys, "backbones", "--json", "--role", "diagnostic")
    assert code == 0 and [r["name"] for r in json.loads(out)] == [r["name"] for r in rows]
    code, out, _ = run(capsys, "backbones", "--json")
    assert code == 0 and len(json.loads(out)) == len(shipped())


def test_shipped_control_backbones_are_listed():
    """Every backbone `empirical controls` reads is shipped with the role "control", with
    the L, width and gate its name promises, trained on 1000 aspirin frames."""
    from empirical.controls import CONTROL_BACKBONES

    rows = {r["name"]: r for r in shipped(role="control")}
    assert set(rows) == set(CONTROL_BACKBONES)
    expect = {"aspirin_L2_c64_seed0": (2, 64, "silu"), "aspirin_L2_c128_seed0": (2, 128, "silu"),
              "aspirin_L2_tanh_seed0": (2, 32, "tanh"), "aspirin_L2_gelu_seed0": (2, 32, "gelu"),
              "aspirin_L1_seed0": (1, 32, "silu"), "aspirin_L3_seed0": (3, 32, "silu")}
    for name, r in rows.items():
        assert (r["L"], r["channels"], r["activation"]) == expect[name]
        assert r["training_frames"] == 1000 and r["force_mae_meV_per_A"] > 0


def test_a_shipped_control_backbone_is_equivariant(aspirin):
    """Fast equivalent of the slow test below: the smallest control backbone loads and is
    equivariant."""
    model = load("aspirin_L1_seed0")
    pos, num = frame(aspirin, 3, dtype=torch.float32)
    assert equivariance_error(model, pos, num) < 1e-3


@pytest.mark.slow
def test_shipped_control_backbones_load_and_are_equivariant(aspirin):
    from empirical.controls import CONTROL_BACKBONES

    for name in CONTROL_BACKBONES:
        model = load(name)
        pos, num = frame(aspirin, 3, dtype=torch.float32)
        assert equivariance_error(model, pos, num) < 1e-3


def test_shipped_role_rejected():
    with pytest.raises(ValueError, match="role must be one of"):
        shipped(role="main")


def test_save_every_keeps_the_checkpoints_of_one_run(aspirin, tmp_path):
    """``save_every = 2`` over 4 epochs keeps the initialization and epochs 2 and 4, each a
    weights-only checkpoint of this package: the initialization equals a fresh model of the
    same seed, the last one equals last.pt, and they differ from each other."""
    from empirical.backbone import load
    from empirical.backbone._train import epoch_checkpoint_name

    ds = _tiny_dataset(aspirin, 40)
    config = BackboneConfig(L=1, channels=4, layers=2)
    train(ds, tmp_path, config, seed=3, settings=TrainSettings(**{**SETTINGS, "epochs": 4,
          "batch_size": 4, "train_frames": 32, "save_every": 2}), progress=False,
          log=lambda s: None)
    kept = sorted(p.name for p in tmp_path.glob("epoch_*.pt"))
    assert kept == [epoch_checkpoint_name(k) for k in (0, 2, 4)] == [
        "epoch_0000.pt", "epoch_0002.pt", "epoch_0004.pt"]
    models = {k: load(tmp_path / epoch_checkpoint_name(k)) for k in (0, 2, 4)}
    last = load(tmp_path / "last.pt")
    fresh = Backbone(models[0].config, seed=3)
    for (name, a), b in zip(models[0].state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(models[4].state_dict().values(), last.state_dict().values()):
        assert torch.equal(a, b)
    w = [dict(m.named_parameters())["embedding.weight"] for m in models.values()]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    with pytest.raises(ValueError, match="save_every"):
        TrainSettings(save_every=-1)


def test_learning_curves_png_is_byte_identical_across_reruns(tmp_path):
    """The learning-curve PNG goes through empirical.render (one dpi, fixed metadata): the
    same checkpoints written twice give the same bytes."""
    from empirical.backbone import plot_learning_curves
    from empirical.render import DPI

    paths = [r["path"] for r in shipped() if r["role"] == "diagnostic"][:2]
    first = plot_learning_curves(paths, tmp_path / "a.png").read_bytes()
    second = plot_learning_curves(paths, tmp_path / "b.png").read_bytes()
    assert first == second
    assert b"Software" not in first
    width = int.from_bytes(first[16:20], "big")       # the IHDR chunk: a 10-inch figure
    assert width == 10 * DPI
