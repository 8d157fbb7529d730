"""The SevenNet adapter: sevenn 0.13's pretrained potentials as backbones of the diagnostic.

Needs sevenn 0.13 (``pip install 'spectral-ceilings[sevenn]'``); skipped without it. Uses
the checkpoints shipped in the sevenn wheel (7net-0, 7net-l3i5, 7net-mf-0) on a few frames
of the shipped aspirin data; the model is float32, so tolerances are float32's.
"""

import os
import random
import shutil
from pathlib import Path

import pytest

sevenn = pytest.importorskip("sevenn")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from empirical.adapters import sevenn as adapter  # noqa: E402
from empirical.adapters._trust import UntrustedCheckpoint  # noqa: E402
from empirical.backbone import equivariance_error, equivariance_tolerance  # noqa: E402
from _helpers import wigner_D as _D  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:No tensor product accelerator")

IRREPS_7NET0 = "128x0e+64x1e+32x2e"


@pytest.fixture(scope="module")
def aspirin(aspirin):
    """Six frames of the shared ``aspirin`` dataset (conftest.py) as tensors."""
    return (torch.tensor(np.asarray(aspirin.positions[:6]), dtype=torch.float64),
            torch.tensor(np.asarray(aspirin.numbers), dtype=torch.long))


@pytest.fixture(scope="module")
def net0():
    return adapter.load("7net-0")


@pytest.fixture(scope="module")
def mf_spec():
    return adapter.from_spec("7net-mf-0@pbe")


def _calculator_energies(name, positions, numbers, modal=None):
    import ase
    from sevenn.calculator import SevenNetCalculator

    calc = SevenNetCalculator(name, device="cpu", modal=modal)
    out = []
    for p in positions:
        atoms = ase.Atoms(numbers=numbers.numpy(), positions=p.numpy())
        atoms.calc = calc
        out.append((atoms.get_potential_energy(), atoms.get_forces()))
    return out


# -- loading ----------------------------------------------------------------------------------

def test_7net0_irreps_layers_and_origin(net0, aspirin):
    pos, z = aspirin
    assert str(net0.irreps_out) == IRREPS_7NET0
    assert net0.L == 2 and net0.layer == "3_equivariant_gate"
    assert net0.layers == tuple(f"{i}_equivariant_gate" for i in range(5))
    assert net0.parity is False and net0.dtype == torch.float32 and net0.r_max == 5.0
    assert net0.device == torch.device("cpu") and net0.to("cpu") is net0
    # the path inside the installed package, not this machine's site directory
    assert net0.origin == ("sevenn/pretrained_potentials/SevenNet_0__11Jul2024/"
                           f"checkpoint_sevennet_0.pth (sevenn {sevenn.__version__})")
    h = net0.node_features(pos[0], z)
    assert h.shape == (21, o3.Irreps(IRREPS_7NET0).dim) and h.dtype == torch.float64
    assert torch.isfinite(h).all()


def test_load_preserves_global_state_and_reads_l3i5(aspirin):
    pos, z = aspirin
    before_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)           # the model is built in float32 anyway
    try:
        torch_rng, np_rng, py_rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
        env = dict(os.environ)
        bb = adapter.load("7net-l3i5")
        assert torch.get_default_dtype() == torch.float64
        assert torch.equal(torch.get_rng_state(), torch_rng)
        assert np.array_equal(np.random.get_state()[1], np_rng[1])
        assert random.getstate() == py_rng
        assert dict(os.environ) == env
    finally:
        torch.set_default_dtype(before_dtype)
    assert bb.dtype == torch.float32
    assert str(bb.irreps_out) == "128x0e+64x1e+32x2e+32x3e" and bb.L == 3
    assert bb.layer == "3_equivariant_gate" and str(bb.at_layer(4).irreps_out) == "128x0e"
    assert bb.node_features(pos[0].float(), z).shape == (21, bb.irreps_out.dim)


def test_multifidelity_needs_a_known_modal(mf_spec, aspirin):
    bb, name, info = mf_spec.backbone, mf_spec.name, mf_spec.info()
    assert name == "7net-mf-0@PBE" and bb.modal == "PBE" and info["sevenn_modal"] == "PBE"
    assert set(bb.modals) == {"PBE", "R2SCAN"}
    with pytest.raises(adapter.SevenNetAdapterError, match=r"needs a modal.*PBE.*R2SCAN|"
                                                           r"needs a modal.*R2SCAN.*PBE"):
        adapter.from_model(bb.model)
    with pytest.raises(adapter.SevenNetAdapterError, match="unknown modal 'HSE'.*PBE"):
        adapter.from_model(bb.model, modal="HSE")
    # the modal reaches the model: the two fidelities give different energies
    pos, z = aspirin
    r2scan = adapter.from_model(bb.model, modal="r2scan")
    assert r2scan.modal == "R2SCAN"
    assert abs(float(bb.energy(pos[0], z) - r2scan.energy(pos[0], z))) > 1e-3
    (e_ref, _), = _calculator_energies("7net-mf-0", pos[:1], z, modal="PBE")
    assert float(bb.energy(pos[0], z)) == pytest.approx(e_ref, abs=5e-5)


def test_modal_refused_for_single_fidelity_model(net0):
    with pytest.raises(adapter.SevenNetAdapterError, match="not multi-fidelity"):
        adapter.from_model(net0.model, modal="PBE")


def test_download_only_and_unknown_names(monkeypatch):
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("the adapter tried to download")
    monkeypatch.setattr(requests, "get", no_network)
    for name in ("7net-omat", "7net-mf-ompa", "7net-omni"):
        with pytest.raises(adapter.SevenNetNotShipped, match="not shipped in the sevenn wheel"
                                                             ".*not fetched here"):
            adapter.load(name)
    with pytest.raises(adapter.SevenNetAdapterError, match="neither a file nor a SevenNet "
                                                           "pretrained name.*7net-0"):
        adapter.load("7net-nonexistent")
    with pytest.raises(adapter.SevenNetAdapterError, match="no such file"):
        adapter.load("/nonexistent/checkpoint.pth")


def test_untrusted_checkpoint_is_not_opened(tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    crafted = tmp_path / "crafted.pth"
    torch.save({"config": Payload()}, crafted)
    with pytest.raises(UntrustedCheckpoint, match="trusted=True"):
        adapter.load(str(crafted))
    assert not marker.exists()
    with pytest.raises(UntrustedCheckpoint):
        adapter.from_spec(str(crafted))
    assert not marker.exists()
    # the file really is code: trusting it runs it (then sevenn fails on its content)
    with pytest.raises(adapter.SevenNetAdapterError):
        adapter.load(str(crafted), trusted=True)
    assert marker.read_text() == "ran"


def test_copied_checkpoint_needs_trust(tmp_path, monkeypatch, net0, aspirin):
    from sevenn.util import pretrained_name_to_path

    monkeypatch.chdir(tmp_path)
    copy = Path("runs") / "my_7net.pth"             # relative, as a user types it
    copy.parent.mkdir()
    shutil.copy(pretrained_name_to_path("7net-0"), copy)
    with pytest.raises(UntrustedCheckpoint):
        adapter.load(copy)
    entry = adapter.from_spec(str(copy), trusted=True)
    bb, name, info = entry.backbone, entry.name, entry.info()
    assert name == "sevenn-my_7net.pth" and info["sha256"] == net0.sha256   # never a path
    # the path as given, never resolved to this machine's absolute path
    assert info["source"] == f"sevenn {sevenn.__version__}: runs/my_7net.pth"
    pos, z = aspirin
    assert torch.equal(bb.node_features(pos[0], z), net0.node_features(pos[0], z))


# -- what the backbone computes -----------------------------------------------------------------

def test_features_are_rotation_equivariant(net0, aspirin):
    pos, z = aspirin
    x = pos[1].float()
    rotation = torch.tensor(Rotation.random(random_state=3).as_matrix(), dtype=torch.float64)
    h = net0.node_features(x, z)
    tol = equivariance_tolerance(torch.float32, float(h.abs().max()))
    err = equivariance_error(net0, x, z, rotation.float())
    assert err <= tol
    # same check by hand, float64 D(R), in the l = 1 and l = 2 blocks
    h_rot = net0.node_features(x @ rotation.float().T, z).double()
    expected = h.double() @ _D(net0.irreps_out, rotation).T
    assert (h_rot - expected).abs().max() <= tol
    assert h[:, 128:].abs().max() > 1e-2             # the l > 0 blocks are not empty
    # SO(3) only (is_parity False): a roto-reflection does not act through D_from_matrix
    assert equivariance_error(net0, x, z, -rotation.float()) > 100 * tol


def test_features_batch_equals_one_at_a_time(net0, aspirin):
    pos, z = aspirin
    x = pos[:5].float()
    single = torch.stack([net0.node_features(p, z) for p in x])
    energies = torch.stack([net0.energy(p, z) for p in x])
    batched = adapter.from_model(net0.model, batch_size=2)       # 2 + 2 + 1 per graph
    with torch.no_grad():
        h, e = batched.features_batch(x, z)
        h_only, none = batched.features_batch(x, z, with_energy=False)
    assert h.shape == (5, 21, 480) and e.shape == (5,) and none is None
    scale = float(single.abs().max())
    assert (h - single).abs().max() <= 1e-6 * scale
    assert torch.equal(h_only, h)           # stopping after the layer changes nothing
    assert (e - energies).abs().max() <= 5e-5
    assert e.dtype == torch.float32


def test_energy_and_forces_equal_sevennet_calculator(net0, aspirin):
    pos, z = aspirin
    reference = _calculator_energies("7net-0", pos[:3], z)
    for p, (e_ref, f_ref) in zip(pos[:3], reference):
        x = p.clone().requires_grad_(True)
        e = net0.energy(x, z)
        assert e.dtype == torch.float64 and e.shape == ()
        assert float(e.detach()) == pytest.approx(e_ref, abs=5e-5)   # float32: ~1.5e-5 eV ulp
        force = -torch.autograd.grad(e, x)[0]
        assert np.abs(force.numpy() - f_ref).max() < 1e-4
    with torch.no_grad():
        _, e = net0.features_batch(pos[:3].float(), z)
    assert np.abs(e.double().numpy() - [r[0] for r in reference]).max() < 5e-5


def test_layers_and_at_layer(net0, aspirin):
    pos, z = aspirin
    x = pos[0].float()
    last = net0.at_layer(-1)
    assert last.layer == "4_equivariant_gate" and str(last.irreps_out) == "128x0e"
    assert last.L == 0 and last.model is net0.model
    first = net0.at_layer("0_equivariant_gate")
    assert first.layer == "0_equivariant_gate" and str(first.irreps_out) == IRREPS_7NET0
    assert net0.at_layer(3).layer == net0.layer
    assert torch.equal(net0.at_layer(3).node_features(x, z), net0.node_features(x, z))
    h0, h3 = first.node_features(x, z), net0.node_features(x, z)
    assert not torch.allclose(h0, h3)
    assert last.node_features(x, z).shape == (21, 128)
    with pytest.raises(adapter.SevenNetAdapterError, match="5 interaction layers"):
        net0.at_layer(5)
    with pytest.raises(adapter.SevenNetAdapterError, match="no interaction layer 'force_output'"):
        net0.at_layer("force_output")


def test_unknown_element_and_bad_shapes(net0, aspirin):
    pos, z = aspirin
    bad = z.clone()
    bad[0] = 100                                       # fermium: not among 7net-0's elements
    with pytest.raises(adapter.SevenNetAdapterError, match=r"\[100\] \(Fm\).*not elements"):
        net0.node_features(pos[0], bad)
    with pytest.raises(adapter.SevenNetAdapterError, match="20 atomic numbers for 21 atoms"):
        net0.energy(pos[0], z[:20])
    with pytest.raises(adapter.SevenNetAdapterError, match=r"\(B, n_atoms, 3\)"):
        net0.features_batch(pos[0], z)


def test_from_spec_and_available(net0):
    names = adapter.available()
    assert names[:3] == ["7net-0", "7net-0_22may2024", "7net-l3i5"]
    assert "7net-mf-0@PBE" in names and not any("omat" in n or "omni" in n for n in names)
    entry = adapter.from_spec("sevenn:7NET-0")
    bb, name, info = entry.backbone, entry.name, entry.info()
    assert not Path(entry.source.split(" (")[0]).is_absolute()
    assert str(Path(sevenn.__file__).parents[1]) not in entry.source
    assert name == "7net-0" and bb.layer == "3_equivariant_gate"
    assert set(info) >= {"source", "sha256", "seed", "test_energy_mae_meV",
                         "test_force_mae_meV_per_A", "sevenn_layer", "sevenn_modal",
                         "parameters"}
    assert info["seed"] == -1 and info["test_energy_mae_meV"] is None
    assert info["test_force_mae_meV_per_A"] is None and info["sevenn_modal"] is None
    assert info["sevenn_layer"] == "3_equivariant_gate" and info["parameters"] == 842623
    assert info["sha256"] == net0.sha256 and len(info["sha256"]) == 64
    with pytest.raises(adapter.SevenNetAdapterError, match="not multi-fidelity"):
        adapter.from_spec("7net-0@PBE")


def test_diagnose_end_to_end_measures_ceiling_2():
    import empirical

    result = empirical.diagnose(backbones=["sevenn:7net-0"], dataset="aspirin", frames=200,
                                degrees=[1], lmax=3, n_boot=200, k_sweep=(), progress=False)
    record = result.backbones[0]
    assert record.name == "7net-0" and record.L == 2
    assert result.summaries[1].ceiling == 2
    assert result.summaries[1].measured_ceiling == 2


def test_missing_sevenn_is_one_import_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sevenn", None)      # import sevenn now fails
    with pytest.raises(adapter.SevenNetMissing, match="pip install 'spectral-ceilings"
                                                      r"\[sevenn\]'") as info:
        adapter.load("7net-0")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    assert adapter.available() == []


def test_threads_split_batches_and_equal_one_thread(net0, aspirin):
    """The diagnostic may split a thread-safe backbone's batches over threads (the model's
    eval/batch modes are counted per model): identical features and energies, and the
    model's modes are back as they were."""
    from scipy.spatial.transform import Rotation

    from empirical.diagnostic._features import atom_features, thread_safe

    pos, z = aspirin
    shared = adapter.from_model(net0.model)
    assert not thread_safe(shared)          # correct, but not offered (slower: module doc)
    shared.thread_safe = True
    assert thread_safe(shared)
    rot = Rotation.random(6, random_state=3).as_matrix()       # 2 batches of <= 4
    one = atom_features(net0, pos.numpy(), z.numpy(), rot, [6, 7], threads=1)
    two = atom_features(shared, pos.numpy(), z.numpy(), rot, [6, 7], threads=3)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert adapter._mode_users == {}


def test_the_so3_model_is_judged_on_the_rotation():
    """SevenNet is SO(3)-only: the record keeps both errors, says parity false, and the
    rotation alone decides 'equivariant' (no 'not equivariant' warning)."""
    import empirical

    result = empirical.diagnose(backbones=["sevenn:7net-0"], dataset="aspirin", frames=60,
                                degrees=[1], lmax=3, n_boot=50, k_sweep=(), progress=False)
    record = result.backbones[0]
    assert record.extra["parity"] is False and record.equivariant is True
    assert record.equivariance_error["reflection"] > 1.0            # measured, and kept
    assert not any("not equivariant" in w for w in result.warnings)
