"""The nequip adapter: nequip 0.19 models as backbones of the diagnostic.

Needs nequip 0.19 (``pip install 'spectral-ceilings[nequip]'``); skipped without it. The
models are tiny and seeded: A (float64, l_max 1, parity, 3 layers, 4 channels) is saved with
Lightning's own checkpoint writer (what ``nequip-train`` does) and packaged with
``nequip-package build`` (run in-process), and both files are loaded back through the
adapter; B (float32, l_max 2, no parity, 2 layers) is wrapped in memory.
"""

import subprocess
import sys

import pytest

nequip = pytest.importorskip("nequip")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _helpers import rotation as _rotation  # noqa: E402
from _helpers import wigner_D as _D  # noqa: E402

from empirical.adapters import nequip as adapter  # noqa: E402
from empirical.data import Dataset  # noqa: E402
from empirical.runtime import default_dtype  # noqa: E402

TYPES = ["H", "C", "O"]
NUMBERS = np.array([6, 8, 1, 1, 6])            # the marked pair is atoms 0, 1 (C, O)
MODEL_A = dict(seed=0, model_dtype="float64", type_names=TYPES, r_max=3.0, num_layers=3,
               l_max=1, parity=True, num_features=4, radial_mlp_width=8, avg_num_neighbors=3.0,
               per_type_energy_scales=1.0, per_type_energy_shifts=0.0)
MODEL_B = dict(seed=1, model_dtype="float32", type_names=TYPES, r_max=3.0, num_layers=2,
               l_max=2, parity=False, num_features=[4, 3, 2], radial_mlp_width=8,
               avg_num_neighbors=3.0, per_type_energy_scales=0.5, per_type_energy_shifts=-1.0)
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def _reference_molecule(seed: int = 1) -> np.ndarray:
    """A random 5-atom geometry (Angstrom), all atoms more than 1 A apart."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.uniform(-1.3, 1.3, size=(len(NUMBERS), 3))
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(NUMBERS), 1)]
        if d.min() > 1.0:
            return x


def _build(config):
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    with adapter._preserved_global_state():   # nequip sets float64 and seeds globally
        set_global_state()
        model = NequIPGNNModel(**config)
    return model.eval()


def _nequip_reference(model, positions: np.ndarray, layer: str):
    """Energy, forces and the layer's node_features from nequip's own ASE pipeline."""
    import ase
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms

    captured = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: captured.update(h=o["node_features"]))
    try:
        with default_dtype(torch.float64):    # nequip's data dtype (its global state)
            calc = NequIPCalculator(model, device="cpu", transforms=basic_transforms(
                model.metadata, float(model.metadata["r_max"]), TYPES, {t: t for t in TYPES}))
            atoms = ase.Atoms(numbers=NUMBERS, positions=positions, calculator=calc)
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    finally:
        handle.remove()
    return float(energy), forces, captured["h"].detach()


@pytest.fixture(scope="module")
def model_a():
    return _build(MODEL_A)


@pytest.fixture(scope="module")
def model_b():
    return _build(MODEL_B)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint (Lightning's writer) and a package (``nequip-package build``) of model
    A with perturbed weights, and the in-memory model they hold."""
    import ase.io
    import lightning
    from ase.calculators.singlepoint import SinglePointCalculator
    from nequip.train import NequIPLightningModule
    from nequip.utils import get_current_code_versions
    from nequip.utils.global_state import set_global_state

    root = tmp_path_factory.mktemp("nequip")
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(3):                        # nequip-package reads one example frame
        atoms = ase.Atoms(numbers=NUMBERS, positions=_reference_molecule()
                          + 0.05 * rng.normal(size=(5, 3)))
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal()),
                                           forces=rng.normal(size=(5, 3)))
        frames.append(atoms)
    ase.io.write(root / "frames.xyz", frames, format="extxyz")
    transforms = [{"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                   "model_type_names": TYPES,
                   "chemical_species_to_atom_type_map": {t: t for t in TYPES}},
                  {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": 3.0}]
    data = {"_target_": "nequip.data.datamodule.ASEDataModule", "seed": 0,
            "train_file_path": str(root / "frames.xyz"), "val_file_path": str(root / "frames.xyz"),
            "transforms": transforms}
    info = {"versions": get_current_code_versions(verbose=False), "data": data,
            "training_module": {"_target_": "nequip.train.NequIPLightningModule"}}
    with adapter._preserved_global_state():
        set_global_state()
        module = NequIPLightningModule(
            model={"_target_": "nequip.model.NequIPGNNModel", **MODEL_A},
            num_datasets={"train": 1, "val": 1, "test": 0}, info_dict=info)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():                 # stand-in for training: weights that differ
            for p in module.parameters():     # from the seeded initialization
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        trainer = lightning.Trainer(logger=False, enable_checkpointing=False,
                                    enable_progress_bar=False, enable_model_summary=False,
                                    accelerator="cpu", devices=1, max_epochs=0)
        trainer.strategy.connect(module)
        ckpt = root / "model.ckpt"
        trainer.save_checkpoint(ckpt)
        from nequip.scripts.package import main as nequip_package
        package = root / "model.nequip.zip"
        nequip_package(["build", str(ckpt), str(package)])
    model = module.model["sole_model"].eval()
    return {"ckpt": ckpt, "package": package, "model": model}


# -- without nequip ------------------------------------------------------------------------


def test_missing_nequip_gives_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "nequip", None)      # `import nequip` now fails
    for call in (lambda: adapter.load("model.nequip.zip"), lambda: adapter.from_model(None)):
        with pytest.raises(adapter.NequIPMissing) as info:
            call()
        assert str(info.value) == ("the nequip adapter needs nequip 0.19: "
                                   "pip install 'spectral-ceilings[nequip]'")
        assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_other_nequip_version_is_refused(monkeypatch):
    monkeypatch.setattr(nequip, "__version__", "0.20.0")
    with pytest.raises(adapter.NequIPMissing, match=r"needs nequip 0\.19: .*found nequip 0\.20\.0"):
        adapter.load("model.nequip.zip")


def test_import_is_lazy():
    code = ("import sys; sys.modules['nequip'] = None\n"
            "import empirical.adapters.nequip as a\n"
            "try:\n    a.load('x.ckpt')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == adapter.MISSING_MESSAGE


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ckpt", "package"])
def test_load_checkpoint_and_package(saved, kind):
    import hashlib

    path = saved[kind]
    dtype, rng_state = torch.get_default_dtype(), torch.get_rng_state()
    bb = adapter.load(path, trusted=True)         # a file this test wrote itself
    assert torch.get_default_dtype() == dtype                  # nequip's global state undone
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert bb.origin == f"nequip {nequip.__version__}: {path}"
    assert bb.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (bb.L, str(bb.irreps_out)) == (1, "4x0e+4x1e+4x1o")
    assert bb.layer == "model.func.layer1_convnet"           # layer2 (the last) is scalar-only
    assert bb.type_names == TYPES and bb.r_max == 3.0 and bb.dtype == torch.float64
    assert not any(p.requires_grad for p in bb.parameters())  # loaded frozen
    ref = adapter.from_model(saved["model"])
    pos = torch.tensor(_reference_molecule())
    num = torch.tensor(NUMBERS)
    assert torch.allclose(bb.node_features(pos, num), ref.node_features(pos, num),
                          rtol=0, atol=1e-12)
    assert abs(float(bb.energy(pos, num)) - float(ref.energy(pos, num))) < 1e-12
    assert bb.node_features(pos, num).abs().max() > 1e-3   # not a trivial model


@pytest.mark.parametrize("kind", ["ckpt", "package"])
def test_e3nn_settings_are_left_as_they_were(saved, kind):
    """nequip's ``conditional_torchscript_mode`` restores only e3nn's legacy
    ``jit_script_fx`` flag, which e3nn maps to ``jit_mode="script"``: after a nequip model
    was built or loaded, every e3nn module built later (MACE's spherical harmonics) held a
    ``torch.jit.script`` function that cannot be copied ("ScriptFunction cannot be
    pickled": the MACE tests failed after these in one process). The adapter's guard
    restores e3nn's settings exactly; an e3nn module built afterwards deep-copies."""
    import copy

    import e3nn
    from e3nn import o3

    before = dict(e3nn.get_optimization_defaults())
    adapter.load(saved[kind], trusted=True)
    assert e3nn.get_optimization_defaults() == before
    # the fixtures built and packaged a model too: e3nn is still on its own default
    assert before["jit_mode"] == e3nn._DEFAULT_JIT_MODE
    copy.deepcopy(o3.SphericalHarmonics(2, True))


def test_load_nequip_prefix_and_missing_file(saved, tmp_path):
    assert adapter.load(f"nequip:{saved['ckpt']}", trusted=True).origin.endswith(
        str(saved["ckpt"]))
    with pytest.raises(adapter.NequIPAdapterError, match="no such file"):
        adapter.load(tmp_path / "absent.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(adapter.NequIPAdapterError, match="could not load"):
        adapter.load(tmp_path / "bad.ckpt", trusted=True)


# -- the protocol -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["a", "b"])
def test_features_are_equivariant(which, model_a, model_b):
    model = {"a": model_a, "b": model_b}[which]
    bb = adapter.from_model(model)
    dtype = bb.dtype
    assert dtype == {"a": torch.float64, "b": torch.float32}[which]
    pos = torch.tensor(_reference_molecule(), dtype=dtype)
    num = torch.tensor(NUMBERS)
    h = bb.node_features(pos, num)
    assert h.shape == (len(NUMBERS), bb.irreps_out.dim) and h.dtype == dtype
    assert bb.L == {"a": 1, "b": 2}[which]
    scale = max(1.0, float(h.abs().max()))
    for seed in (0, 1):
        R = _rotation(seed)
        for Q in (R, -R):                                    # a rotation, a roto-reflection
            D = _D(bb.irreps_out, Q).to(dtype)
            h_q = bb.node_features(pos @ Q.to(dtype).T, num)
            assert float((h_q - h @ D.T).abs().max()) <= TOL[dtype] * scale
    # parity is really there: the 1e block of model A does not flip under inversion
    if which == "a":
        h_inv = bb.node_features(-pos, num)
        assert not torch.allclose(h_inv, h, atol=1e-6)


@pytest.mark.parametrize("which", ["a", "b"])
def test_energy_forces_and_features_match_nequip(which, model_a, model_b):
    model = {"a": model_a, "b": model_b}[which]
    bb = adapter.from_model(model)
    positions = _reference_molecule() + 0.03 * np.random.default_rng(5).normal(size=(5, 3))
    energy, forces, h_ref = _nequip_reference(model, positions, bb.layer)
    tol = TOL[bb.dtype]
    for dtype in (torch.float64, torch.float32):             # both position dtypes accepted
        pos = torch.tensor(positions, dtype=dtype, requires_grad=True)
        e = bb.energy(pos, torch.tensor(NUMBERS))
        assert e.shape == () and e.dtype == dtype
        (grad,) = torch.autograd.grad(e, pos)
        assert grad.dtype == dtype
        t = max(tol, TOL[dtype])
        assert abs(float(e.detach()) - energy) <= t * max(1.0, abs(energy))
        assert np.abs(-grad.double().numpy() - forces).max() <= t * max(1.0, np.abs(forces).max())
    h = bb.node_features(torch.tensor(positions, dtype=bb.dtype), torch.tensor(NUMBERS))
    assert torch.allclose(h, h_ref.to(h.dtype), rtol=0, atol=tol)


def test_model_is_left_as_it_was(model_a):
    model_a.train()
    try:
        bb = adapter.from_model(model_a)
        pos = torch.tensor(_reference_molecule(), requires_grad=True)
        torch.autograd.grad(bb.energy(pos, torch.tensor(NUMBERS)), pos)
        bb.node_features(pos, torch.tensor(NUMBERS))
        assert all(m.training for m in model_a.modules())
        assert all(m.do_derivatives for m in model_a.modules() if hasattr(m, "do_derivatives"))
        assert all(not m._forward_hooks for m in model_a.modules())
        assert any(p.requires_grad for p in model_a.parameters())
    finally:
        model_a.eval()
    with torch.no_grad():                                    # no graph without position grad
        assert not bb.energy(pos.detach(), torch.tensor(NUMBERS)).requires_grad


def test_layer_choice_and_type_mapping(model_a):
    num = torch.tensor(NUMBERS)
    pos = torch.tensor(_reference_molecule())
    first = adapter.from_model(model_a, layer=0)
    assert first.layer == "model.func.layer0_convnet" and str(first.irreps_out) == "4x0e+4x1o"
    by_name = adapter.from_model(model_a, layer="model.func.layer0_convnet")
    assert torch.equal(first.node_features(pos, num), by_name.node_features(pos, num))
    assert adapter.from_model(model_a, layer=-1).L == 0      # the scalar-only last layer
    with pytest.raises(adapter.NequIPAdapterError, match="3 interaction layers"):
        adapter.from_model(model_a, layer=5)
    with pytest.raises(adapter.NequIPAdapterError, match=r"\[7\] \(N\)"):
        adapter.from_model(model_a).node_features(pos, torch.tensor([6, 8, 1, 1, 7]))
    with pytest.raises(adapter.NequIPAdapterError, match="not all chemical symbols"):
        adapter.from_model(model_a, type_names=["h", "c", "o"])
    renamed = adapter.from_model(model_a, type_names=["h", "c", "o"],
                                 chemical_species_to_atom_type_map={"H": "h", "C": "c", "O": "o"})
    assert torch.equal(renamed.node_features(pos, num),
                       adapter.from_model(model_a).node_features(pos, num))
    with pytest.raises(adapter.NequIPAdapterError, match="not a nequip GraphModel"):
        adapter.from_model(torch.nn.Linear(2, 2))


# -- the diagnostic ---------------------------------------------------------------------------


def test_diagnose_puts_the_d2_ceiling_at_2_for_l_max_1(model_a):
    """A random-initialized l_max = 1 nequip model: a degree-2 probe recovers l <= 2 and
    nothing above (span theorem, ceiling dL = 2). Frames: one random 5-atom H/C/O molecule
    with 0.02 A seeded jitter, as MD frames of one molecule (the diagnostic's premise; fully
    random molecules would leave the marked bond's direction unreadable at any l)."""
    from empirical.diagnostic import diagnose

    rng = np.random.default_rng(11)
    n = 300
    positions = _reference_molecule() + 0.02 * rng.normal(size=(n, len(NUMBERS), 3))
    data = Dataset(positions, NUMBERS, rng.normal(size=n), rng.normal(size=(n, len(NUMBERS), 3)),
                   metadata={"marked_bond": {"atoms": [0, 1]}, "source": "random molecule"})
    bb = adapter.from_model(model_a)
    payload = diagnose(backbones=[bb], dataset=data, degrees=(2,), lmax=4, n_boot=20,
                       k_sweep=(), progress=False).to_dict()
    summary = payload["summary"]["2"]
    assert summary["ceiling"] == 2
    assert summary["measured_ceiling"] == 2, summary["rho"]
    assert summary["rho"]["2"] >= 0.5 and max(abs(summary["rho"][l]) for l in "34") < 0.5
    record = payload["backbones"][0]
    assert record["L"] == 1 and record["irreps_out"] == "4x0e+4x1e+4x1o"
    assert max(record["equivariance_error"].values()) < 1e-9


# -- the batch path, layers, device and the spec ---------------------------------------------


@pytest.mark.parametrize("which", ["a", "b"])
def test_features_batch_equals_one_configuration_at_a_time(which, model_a, model_b):
    bb = adapter.from_model(model_a if which == "a" else model_b)
    dtype = bb.model_dtype
    rng = np.random.default_rng(5)
    pos = torch.tensor(_reference_molecule() + 0.05 * rng.normal(size=(4, len(NUMBERS), 3)),
                       dtype=dtype)
    num = torch.tensor(NUMBERS)
    h, e = bb.features_batch(pos, num)
    assert h.shape == (4, len(NUMBERS), bb.irreps_out.dim) and e.shape == (4,)
    for i in range(4):
        torch.testing.assert_close(h[i], bb.node_features(pos[i], num), atol=TOL[dtype],
                                   rtol=0)
        torch.testing.assert_close(e[i], bb.energy(pos[i], num), atol=TOL[dtype] * 10, rtol=0)
    assert bb.features_batch(pos, num, with_energy=False)[1] is None


def test_layers_at_layer_and_device(model_a):
    bb = adapter.from_model(model_a)
    assert bb.layers == ("model.func.layer0_convnet", "model.func.layer1_convnet")
    assert bb.layer == bb.layers[-1] and bb.at_layer(-1) is bb
    first = bb.at_layer(0)
    assert first.layer == "model.func.layer0_convnet" and first.model is bb.model
    assert str(first.irreps_out) == "4x0e+4x1o" and bb.layer == bb.layers[-1]
    with pytest.raises(adapter.NequIPAdapterError, match="2 layers"):
        bb.at_layer(2)
    assert bb.device == torch.device("cpu") and bb.to("cpu") is bb


def test_from_spec_names_and_trust(saved, tmp_path):
    with pytest.raises(adapter.UntrustedCheckpoint):
        adapter.from_spec(str(saved["ckpt"]))
    entry = adapter.from_spec(str(saved["ckpt"]), trusted=True)
    obj, name, info = entry.backbone, entry.name, entry.info()
    assert name == "model" and info["nequip_layer"] == obj.layer
    assert info["sha256"] == obj.sha256 and info["parameters"] > 0 and info["seed"] == -1
    assert adapter.available() == []
