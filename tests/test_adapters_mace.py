"""The MACE adapter, and MACE itself under e3nn 0.6 (the test the install override rests on).

mace-torch 0.3.16 pins e3nn==0.4.4; this package runs it beside e3nn 0.6 (installed with
``pip install --no-deps mace-torch==0.3.16``). These tests check that MACE built and run there
is what it must be: energy invariant and forces equivariant under rotations and
roto-reflections to ~1e-12 (float64), and the adapter's per-interaction features equivariant
with their irreps' ``D_from_matrix`` (parity included). Skipped without mace.

Model A (module fixture): a seeded float64 ``ScaleShiftMACE`` (what ``mace_run_train
--model MACE`` builds) with 2 interactions, spherical harmonics to ``max_ell`` 3, hidden
irreps ``8x0e+8x1o+8x2e``, correlation 3, on H, C, O; frames are the shipped aspirin data.

``import mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process: this
module imports mace only inside the adapter's guard, so the test process keeps its own
environment (checked at the end of the module and in a fresh interpreter).
"""

import copy
import hashlib
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from empirical.adapters import mace as adapter

ENV_KEY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
ENV_AT_START = os.environ.get(ENV_KEY)

with adapter._preserved_process_state():       # import mace without its process-wide setting
    mace = pytest.importorskip("mace")
    from mace import modules as mace_modules  # noqa: E402

from e3nn import o3  # noqa: E402
from _helpers import rotation as _rotation  # noqa: E402
from _helpers import wigner_D as _D  # noqa: E402

from empirical.data import load as load_dataset  # noqa: E402

ASPIRIN = load_dataset("aspirin")
NUMBERS = torch.tensor(ASPIRIN.numbers)
MODEL_A = dict(max_ell=3, hidden_irreps="8x0e+8x1o+8x2e", correlation=3)


def _build(max_ell, hidden_irreps, correlation, seed=0):
    """A seeded float64 ScaleShiftMACE on H, C, O, with non-trivial scale and shift."""
    with adapter._preserved_process_state():  # float64 and the seed stay inside
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(seed)
        block = mace_modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = mace_modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=max_ell,
            interaction_cls=block, interaction_cls_first=block, num_interactions=2,
            num_elements=3, hidden_irreps=o3.Irreps(hidden_irreps), MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-0.5, -1.5, -2.0]), avg_num_neighbors=15.0,
            atomic_numbers=[1, 6, 8], correlation=correlation, gate=torch.nn.functional.silu,
            radial_MLP=[16, 16], atomic_inter_scale=0.7, atomic_inter_shift=0.1)
    return model.eval()


def _positions(frame: int = 0) -> torch.Tensor:
    return torch.tensor(ASPIRIN.positions[frame], dtype=torch.float64)


def _mace_energy_forces(model, positions: torch.Tensor):
    """MACE's own energy and forces (``compute_force=True``) on the adapter's graph."""
    bb = adapter.from_model(model)
    data = bb.graph(positions, NUMBERS)
    out = model(data, training=False, compute_force=True)
    return out["energy"].detach().reshape(()), out["forces"].detach()


class _Marker:
    """Unpickling this object creates the file ``path`` (stand-in for hostile code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def model_a():
    return _build(**MODEL_A)


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_a):
    """Model A saved as mace_run_train saves ``<name>.model`` (``torch.save`` of the whole
    module), its state dict, a TorchScript file, and a crafted pickle."""
    root = tmp_path_factory.mktemp("mace")
    out = {"model": root / "small.model", "state": root / "small_state.pt",
           "script": root / "small_compiled.model", "crafted": root / "crafted.model",
           "marker": root / "marker"}
    torch.save(model_a, out["model"])
    torch.save({"model": model_a.state_dict(), "epoch": 3}, out["state"])
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), out["script"])
    torch.save(_Marker(out["marker"]), out["crafted"])
    return out


# -- without mace ----------------------------------------------------------------------------


def test_missing_mace_gives_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "mace", None)        # `import mace` now fails
    for call in (lambda: adapter.load("small.model"), lambda: adapter.from_model(None)):
        with pytest.raises(adapter.MACEMissing) as info:
            call()
        assert str(info.value) == adapter.MISSING_MESSAGE
        assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
        assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "pip install --no-deps mace-torch==0.3.16" in adapter.MISSING_MESSAGE


def test_other_mace_version_is_refused(monkeypatch):
    monkeypatch.setattr(mace, "__version__", "0.4.0")
    with pytest.raises(adapter.MACEMissing,
                       match=r"needs mace-torch 0\.3 .*found mace-torch 0\.4\.0"):
        adapter.load("small.model")


def test_adapter_module_shape():
    assert adapter.PREFIX == "mace" and adapter.available() == []
    assert issubclass(adapter.MACEAdapterError, ValueError)
    assert issubclass(adapter.MACEMissing, ImportError)
    assert issubclass(adapter.MACEMissing, adapter.MACEAdapterError)


# -- MACE itself under e3nn 0.6 --------------------------------------------------------------


def test_mace_energy_invariant_and_forces_equivariant(model_a):
    """MACE's energy is O(3)-invariant and its forces equivariant, to ~1e-12 (float64)."""
    pos = _positions(3)
    energy, forces = _mace_energy_forces(model_a, pos)
    assert forces.abs().max() > 1e-3                      # not a trivial model
    e_tol = 1e-12 * max(1.0, abs(float(energy)))
    f_tol = 1e-12 * max(1.0, float(forces.abs().max()))
    for seed in (0, 1):
        R = _rotation(seed)
        for Q in (R, -R):                                  # a rotation, a roto-reflection
            e_q, f_q = _mace_energy_forces(model_a, pos @ Q.T)
            assert abs(float(e_q - energy)) <= e_tol, float(e_q - energy)
            assert float((f_q - forces @ Q.T).abs().max()) <= f_tol
    # and the check can fail: forces not rotated back are not the rotated ones
    e_q, f_q = _mace_energy_forces(model_a, pos @ _rotation(0).T)
    assert float((f_q - forces).abs().max()) > 1e-3


# -- features --------------------------------------------------------------------------------


def _check_feature_equivariance(bb, tol=1e-12):
    pos = _positions(1)
    h = bb.node_features(pos, NUMBERS)
    assert h.shape == (21, bb.irreps_out.dim) and h.dtype == torch.float64
    scale = max(1.0, float(h.abs().max()))
    for seed in (2, 3):
        R = _rotation(seed)
        for Q in (R, -R):                                  # a rotation, a roto-reflection
            D = _D(bb.irreps_out, Q)
            h_q = bb.node_features(pos @ Q.T, NUMBERS)
            assert float((h_q - h @ D.T).abs().max()) <= tol * scale


def test_features_are_equivariant_per_interaction(model_a):
    bb = adapter.from_model(model_a)
    assert bb.dtype == torch.float64 and bb.L == 2
    assert str(bb.irreps_out) == "8x0e+8x1o+8x2e"            # MACE's parity: 1o, 2e
    for layer in bb.layers:
        _check_feature_equivariance(bb.at_layer(layer))
    # the check sees parity: the same features read as 1e / 2o fail under inversion
    pos = _positions(1)
    h = bb.node_features(pos, NUMBERS)
    wrong = _D("8x0e+8x1e+8x2o", -torch.eye(3, dtype=torch.float64))
    assert float((bb.node_features(-pos, NUMBERS) - h @ wrong.T).abs().max()) > 1e-3


def test_layers_split_node_feats_per_interaction(model_a):
    bb = adapter.from_model(model_a)
    assert bb.layers == ("interaction_0", "interaction_1")
    assert bb.layer == "interaction_0"                     # the last one with l > 0
    assert [str(i) for i in bb.layer_irreps] == ["8x0e+8x1o+8x2e", "8x0e"]
    last = bb.at_layer(1)
    assert last.model is bb.model and last.layer == "interaction_1" and last.L == 0
    assert bb.at_layer("interaction_1").layer == "interaction_1"
    assert bb.at_layer(-2).layer == "interaction_0"
    # each slice is what model.products[i] outputs (forward hooks, independent of the split)
    captured = []
    handles = [p.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
               for p in model_a.products]
    try:
        pos = _positions(2)
        feats = [bb.node_features(pos, NUMBERS), last.node_features(pos, NUMBERS)]
    finally:
        for handle in handles:
            handle.remove()
    widths = [f.shape[-1] for f in feats]
    assert widths == [72, 8] == [i.dim for i in bb.layer_irreps]
    assert torch.equal(feats[0], captured[0]) and torch.equal(feats[1], captured[3])
    with pytest.raises(adapter.MACEAdapterError, match="2 interaction layers"):
        bb.at_layer(2)
    with pytest.raises(adapter.MACEAdapterError, match="no layer 'interaction_7'"):
        bb.at_layer("interaction_7")


def test_batch_matches_single_and_mace_calculator(model_a):
    bb = adapter.from_model(model_a)
    pos = torch.tensor(ASPIRIN.positions[:3], dtype=torch.float64)
    feats, energies = bb.features_batch(pos, NUMBERS)
    assert feats.shape == (3, 21, 72) and energies.shape == (3,)
    for i in range(3):
        assert torch.allclose(feats[i], bb.node_features(pos[i], NUMBERS), rtol=0, atol=1e-12)
        assert abs(float(energies[i] - bb.energy(pos[i], NUMBERS))) < 1e-12
    again, none = bb.features_batch(pos, NUMBERS, with_energy=False)
    assert none is None and torch.equal(again, feats)
    # MACE's own ASE calculator: the same energy, and -grad of the adapter's energy is its force
    import ase

    with adapter._preserved_process_state():
        from mace.calculators import MACECalculator

        # a copy: the calculator freezes the weights of the models it is given
        calc = MACECalculator(models=copy.deepcopy(model_a), device="cpu", default_dtype="float64")
        atoms = ase.Atoms(numbers=ASPIRIN.numbers, positions=ASPIRIN.positions[0], calculator=calc)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    for dtype in (torch.float64, torch.float32):          # both position dtypes accepted
        p = pos[0].to(dtype).clone().requires_grad_(True)
        e = bb.energy(p, NUMBERS)
        assert e.shape == () and e.dtype == dtype
        (grad,) = torch.autograd.grad(e, p)
        tol = 1e-12 if dtype == torch.float64 else 1e-4
        assert abs(float(e.detach()) - energy) <= tol * max(1.0, abs(energy))
        assert np.abs(-grad.double().numpy() - forces).max() <= tol * max(1.0, np.abs(forces).max())
    assert bb.node_features(pos[0].float(), NUMBERS).dtype == torch.float32


def test_unknown_atomic_numbers_and_bad_shapes(model_a):
    bb = adapter.from_model(model_a)
    pos = _positions()
    numbers = NUMBERS.clone()
    numbers[0] = 7
    with pytest.raises(adapter.MACEAdapterError, match=r"\[7\] \(N\) are not elements of the MACE"):
        bb.node_features(pos, numbers)
    with pytest.raises(adapter.MACEAdapterError, match="shape"):
        bb.node_features(pos[None], NUMBERS)
    with pytest.raises(adapter.MACEAdapterError, match="20 atomic numbers for 21 atoms"):
        bb.energy(pos, NUMBERS[:20])
    with pytest.raises(adapter.MACEAdapterError, match="not a mace.modules.MACE model"):
        adapter.from_model(torch.nn.Linear(2, 2))


def test_model_is_left_as_it_was(model_a):
    flags = [p.requires_grad for p in model_a.parameters()]
    model_a.train()
    try:
        bb = adapter.from_model(model_a)
        pos = _positions().requires_grad_(True)
        torch.autograd.grad(bb.energy(pos, NUMBERS), pos)
        bb.features_batch(pos.detach()[None], NUMBERS)
        assert all(m.training for m in model_a.modules())
        assert all(not m._forward_hooks for m in model_a.modules())
        assert [p.requires_grad for p in model_a.parameters()] == flags and any(flags)
    finally:
        model_a.eval()
    plain = _positions()
    with torch.no_grad():
        assert not bb.energy(plain, NUMBERS).requires_grad
    assert not plain.requires_grad                         # MACE's requires_grad_ hit a copy


# -- files and trust -------------------------------------------------------------------------


def test_untrusted_file_is_refused_before_it_is_opened(files):
    for path in (files["crafted"], files["model"]):
        with pytest.raises(adapter.UntrustedCheckpoint, match="trusted=True"):
            adapter.load(path)
    assert not files["marker"].exists()
    with pytest.raises(adapter.UntrustedCheckpoint):
        adapter.from_spec(str(files["crafted"]))
    assert not files["marker"].exists()


def test_trusted_model_file_loads(files, model_a):
    bb = adapter.load(files["model"], trusted=True)
    assert bb.origin == f"mace-torch {mace.__version__}: {files['model']}"
    assert bb.sha256 == hashlib.sha256(files["model"].read_bytes()).hexdigest()
    assert not any(p.requires_grad for p in bb.parameters())   # loaded frozen
    assert (bb.layer, bb.r_max, bb.atomic_numbers) == ("interaction_0", 5.0, (1, 6, 8))
    ref = adapter.from_model(model_a)
    pos = _positions(4)
    assert torch.equal(bb.node_features(pos, NUMBERS), ref.node_features(pos, NUMBERS))
    assert float(bb.energy(pos, NUMBERS)) == float(ref.energy(pos, NUMBERS))
    assert adapter.load(f"mace:{files['model']}", trusted=True, layer=1).layer == "interaction_1"
    assert bb.to("cpu") is bb and bb.device == torch.device("cpu")


def test_other_files_get_clear_errors(files, tmp_path):
    with pytest.raises(adapter.MACEAdapterError, match="no such file"):
        adapter.load(tmp_path / "absent.model", trusted=True)
    with pytest.raises(adapter.MACEAdapterError, match="TorchScript"):
        adapter.load(files["script"], trusted=True)
    with pytest.raises(adapter.MACEAdapterError, match="state dict"):
        adapter.load(files["state"], trusted=True)
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(adapter.MACEAdapterError, match="could not load"):
        adapter.load(tmp_path / "bad.model", trusted=True)


def test_from_spec_and_info(files):
    from empirical import adapters

    entry = adapter.from_spec(str(files["model"]), trusted=True)
    bb, name, info = entry.backbone, entry.name, entry.info()
    assert name == "mace-small" and bb.layer == "interaction_0"
    assert info["source"] == bb.origin and info["sha256"] == bb.sha256 and info["seed"] == -1
    assert info["test_energy_mae_meV"] is None and info["test_force_mae_meV_per_A"] is None
    assert info["layers"] == {"interaction_0": "8x0e+8x1o+8x2e", "interaction_1": "8x0e"}
    assert info["model_class"] == "ScaleShiftMACE" and info["r_max"] == 5.0
    entry1 = adapters.from_spec(f"mace:{files['model']}@interaction_1", trusted=True)
    assert entry1.name == "mace-small@interaction_1"
    assert entry1.backbone.layer == "interaction_1"
    assert adapters.is_spec(f"mace:{files['model']}")


# -- process state ---------------------------------------------------------------------------


def test_process_state_after_load_and_features(files):
    """In a fresh interpreter: import the adapter (which imports no mace), load a model file
    and compute features; the environment is as before, and a plain ``torch.load`` of a
    crafted pickle still refuses it (nothing created). Control: with mace's setting the same
    load runs it."""
    code = textwrap.dedent(f"""
        import os, pickle, sys, torch
        import e3nn.o3                # (sets torch's TORCHINDUCTOR_CACHE_DIR on import)
        before, dtype = dict(os.environ), torch.get_default_dtype()
        rng = torch.get_rng_state()
        from empirical.adapters import mace as adapter
        assert "mace" not in sys.modules                  # imported when used, not before
        bb = adapter.load({str(files['model'])!r}, trusted=True)
        pos = torch.zeros(2, 3, 3, dtype=torch.float64)
        pos[:, 1, 0], pos[:, 2, 1] = 1.0, 1.1
        bb.features_batch(pos, torch.tensor([6, 1, 8]))
        bb.energy(pos[0], torch.tensor([6, 1, 8]))
        assert "mace" in sys.modules
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
        assert torch.get_default_dtype() == dtype and torch.equal(torch.get_rng_state(), rng)
        try:
            torch.load({str(files['crafted'])!r})
        except pickle.UnpicklingError:
            print("refused")
        assert not os.path.exists({str(files['marker'])!r})
        os.environ[{ENV_KEY!r}] = "1"                     # what `import mace` leaves behind
        torch.load({str(files['crafted'])!r}).close()
        print("control", os.path.exists({str(files['marker'])!r}))
        os.remove({str(files['marker'])!r})
    """)
    env = {k: v for k, v in os.environ.items() if k != ENV_KEY}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    # (mace prints a line about cuequivariance on import)
    assert out.stdout.splitlines()[-2:] == ["refused", "control True"], out.stdout


def test_process_state_in_this_process(files, model_a):
    """After the tests above ran the adapter here: no weights-only override left, and a
    plain ``torch.load`` of the crafted pickle fails without running it."""
    bb = adapter.load(files["model"], trusted=True)
    bb.features_batch(torch.tensor(ASPIRIN.positions[:2]), NUMBERS)
    assert os.environ.get(ENV_KEY) == ENV_AT_START
    if ENV_AT_START is None:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(files["crafted"])
        assert not files["marker"].exists()


def test_a_mace_model_after_a_nequip_model_in_one_process():
    """nequip's model builder runs under its ``conditional_torchscript_mode``, which leaves
    e3nn's ``jit_mode`` at ``"script"``; the nequip adapter's guard puts e3nn's settings
    back. Without it, a MACE model built afterwards in the same process holds a
    ``torch.jit.script`` function and cannot be copied ("ScriptFunction cannot be
    pickled"), which failed these tests after the nequip ones."""
    pytest.importorskip("nequip")
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    from empirical.adapters import nequip as nequip_adapter
    from empirical.adapters._framework import preserved_process_state

    with preserved_process_state():   # whatever happens, later tests find e3nn as it was
        with nequip_adapter._preserved_global_state():
            set_global_state()
            NequIPGNNModel(seed=0, model_dtype="float64", type_names=["H", "C", "O"],
                           r_max=3.0, num_layers=2, l_max=1, parity=True, num_features=4,
                           radial_mlp_width=8, avg_num_neighbors=3.0,
                           per_type_energy_scales=1.0, per_type_energy_shifts=0.0)
        model = _build(**MODEL_A)
        copy.deepcopy(model)
        pickle.loads(pickle.dumps(model))
        feats, _ = adapter.from_model(model).features_batch(
            torch.tensor(ASPIRIN.positions[:2]), NUMBERS)
    assert torch.isfinite(feats).all()


# -- the diagnostic --------------------------------------------------------------------------


def test_diagnose_measures_the_ceiling_of_the_hooked_layer(model_a):
    """An untrained MACE (L = 2 at interaction_0): a degree-1 probe recovers l <= 2 and
    nothing above (span theorem, ceiling d L = 2)."""
    import empirical

    bb = adapter.from_model(model_a)
    payload = empirical.diagnose(backbones=[bb], dataset="aspirin", frames=200, degrees=[1],
                                 lmax=3, n_boot=200, k_sweep=(), progress=False).to_dict()
    summary = payload["summary"]["1"]
    assert summary["ceiling"] == 1 * bb.L == 2
    assert summary["measured_ceiling"] == 2, summary["rho"]
    record = payload["backbones"][0]
    assert record["L"] == 2 and record["irreps_out"] == "8x0e+8x1o+8x2e"
    assert record["layer"] == "interaction_0"
    assert max(record["equivariance_error"].values()) < 1e-9
