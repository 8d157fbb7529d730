"""empirical.calibration: C5 structures, the axis and ring probes, outputs, CLI."""

import json

import numpy as np
import pytest
import torch

from empirical import cli
from empirical.calibration import (IdealFeatures, c5_structures, reference_positions, run_c5,
                                   synthetic_energy)
from empirical.calibration._structures import APEX, CENTRE, RING, RING_RADIUS


def test_reference_structure_geometry():
    pos = reference_positions()
    ring = pos[list(RING)]
    assert np.allclose(np.linalg.norm(ring, axis=1), RING_RADIUS)
    assert np.allclose(ring[:, 2], 0)
    side = np.linalg.norm(ring - np.roll(ring, 1, axis=0), axis=1)
    assert np.allclose(side, side[0])                       # regular pentagon
    assert np.allclose(pos[APEX, :2], 0) and pos[APEX, 2] > 0
    assert np.allclose(pos[CENTRE], 0)


def test_synthetic_energy_invariant_and_forces_are_gradients():
    data = c5_structures(5, seed=1)
    rot = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64).numpy()
    e, f = synthetic_energy(data.positions)
    e_rot, f_rot = synthetic_energy(data.positions @ rot.T)
    assert np.allclose(e, e_rot) and np.allclose(f_rot, f @ rot.T)
    h = 1e-6
    for atom, axis in [(0, 0), (3, 2), (6, 1)]:
        plus, minus = data.positions.copy(), data.positions.copy()
        plus[:, atom, axis] += h
        minus[:, atom, axis] -= h
        fd = (synthetic_energy(plus)[0] - synthetic_energy(minus)[0]) / (2 * h)
        assert np.allclose(-fd, f[:, atom, axis], atol=1e-6)
    e0, _ = synthetic_energy(reference_positions()[None])
    assert abs(e0[0]) < 1e-12                                # minimum at the reference


def test_structures_are_seeded_and_checked():
    a, b = c5_structures(10, seed=3), c5_structures(10, seed=3)
    assert np.array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c5_structures(10, seed=4).positions)
    assert a.metadata["marked_bond"]["atoms"] == [CENTRE, APEX]
    with pytest.raises(ValueError):
        c5_structures(1, seed=0)


def test_ideal_features_are_harmonics_of_atom_directions():
    pos = torch.tensor(reference_positions())
    h = IdealFeatures(2).node_features(pos, torch.zeros(7, dtype=torch.long))
    assert h.shape == (7, 9)
    assert torch.allclose(h[:, 0], torch.ones(7, dtype=h.dtype))
    # the centre carries the axis, like the apex
    assert torch.allclose(h[CENTRE], h[APEX])


@pytest.fixture(scope="module")
def ideal_c5():
    return run_c5(Ls=(1, 2, 3), degrees=(2, 3), lmax=6, n=1500, sources=("ideal",),
                  progress=False)


def test_ideal_calibration_matches_spanthm_exactly(ideal_c5):
    """Ideal features: rho ~ 1 where spanthm predicts recovery, ~0 where blind; the ring
    probe is blind at (L=2, d=2), seen at (L=2, d=3) and (L=3, d=2)."""
    cells = ideal_c5.to_dict()["cells"]
    ring = {(c["L"], c["d"]): c for c in cells if c["probe"] == "ring"}
    assert ring[(2, 2)]["predicted"] == "blind" and abs(ring[(2, 2)]["rho"]) < 0.15
    assert ring[(2, 3)]["predicted"] == "recoverable" and ring[(2, 3)]["rho"] > 0.99
    assert ring[(3, 2)]["predicted"] == "recoverable" and ring[(3, 2)]["rho"] > 0.99
    assert ring[(1, 3)]["predicted"] == "blind"
    for c in cells:
        if c["probe"] != "axis":
            continue
        if c["l"] == 0:
            assert c["rho"] is None and c["agrees"] is None
            continue
        assert c["predicted"] == ("recoverable" if c["l"] <= c["L"] * c["d"] else "blind")
        if c["predicted"] == "recoverable":
            assert c["rho"] > 0.99, c
        else:
            assert abs(c["rho"]) < 0.15, c
    assert ideal_c5.agreement is True


def test_c5_outputs_and_cli(ideal_c5, tmp_path, capsys):
    written = ideal_c5.save(tmp_path / "c5")
    names = sorted(p.name for p in written)
    assert names == ["c5_heatmap.png", "report.md", "results.json"]
    payload = json.loads((tmp_path / "c5" / "results.json").read_text())
    assert payload == ideal_c5.to_dict()
    for c in payload["cells"]:
        assert set(c) >= {"features", "L", "d", "probe", "l", "rho", "predicted", "agrees"}
    assert (tmp_path / "c5" / "c5_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "c5" / "report.md").read_text()
    assert "ring l=5" in report and "## ideal (L = 2)" in report

    out = tmp_path / "cli"
    code = cli.main(["c5", "--L", "1", "--degrees", "1", "--lmax", "2", "--structures", "60",
                     "--sources", "ideal", "random", "--channels", "4", "--out", str(out),
                     "--no-progress", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert (out / "results.json").exists() and (out / "report.md").exists()


def test_briefly_trained_source_runs_and_records_training():
    res = run_c5(Ls=(1,), degrees=(1,), lmax=2, n=80, sources=("trained",), channels=4,
                 train_epochs=1, train_frames=40, progress=False)
    assert res.training[0].features == "L1-trained" and res.training[0].epochs == 1
    assert {c.features for c in res.cells} == {"L1-trained"}


@pytest.mark.parametrize("kwargs,needle", [
    (dict(Ls=(0,)), "L must be"), (dict(degrees=(0,)), "probe degree"),
    (dict(lmax=-1), "lmax"), (dict(sources=("oracle",)), "feature source"),
    (dict(n=5), "at least 20"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        run_c5(progress=False, **kwargs)


# -- controls ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_controls():
    from empirical.controls import run_controls

    return run_controls(frames=160, n_boot=20, kinds=("untrained", "parameters", "activation"),
                        parameter_widths=(9, 27), progress=False)


def test_controls_contract_fast(tmp_path):
    """Fast equivalent of the contract test below: the untrained control alone on 80
    frames (d = 1, 2, 3 with the parameters control's sample budget), the same record
    contract; the plan of the other controls is checked without running them below."""
    from empirical.controls import run_controls

    res = run_controls(frames=80, n_boot=10, kinds=("untrained",),
                       parameter_widths=(9, 27), progress=False)
    p = res.to_dict()
    assert [(c["kind"], c["d"]) for c in p["controls"]] == [("untrained", d) for d in (1, 2, 3)]
    for c in p["controls"]:
        assert set(c) >= {"name", "kind", "L", "d", "measured_ceiling", "predicted_ceiling",
                          "agrees", "status", "k", "spn_coefficients"}
        assert c["status"] == "measured"
        assert c["agrees"] == (c["measured_ceiling"] == c["predicted_ceiling"])
        assert c["predicted_ceiling"] == c["L"] * c["d"]
    assert p["complete"] and len(p["runs"]) == 1 and "k" in p["runs"][0]["config"]
    res.save(tmp_path / "c")
    assert (tmp_path / "c" / "report.md").read_text().startswith("# Controls")


@pytest.mark.slow
def test_controls_contract(small_controls, tmp_path):
    p = small_controls.to_dict()
    kinds = {c["kind"] for c in p["controls"]}
    assert kinds == {"untrained", "parameters", "activation"}
    for c in p["controls"]:
        assert set(c) >= {"name", "kind", "L", "d", "measured_ceiling", "predicted_ceiling",
                          "agrees", "status"}
        if c["status"] == "measured":
            assert c["agrees"] == (c["measured_ceiling"] == c["predicted_ceiling"])
            assert c["predicted_ceiling"] == c["L"] * c["d"]
        else:
            assert c["measured_ceiling"] is None and c["agrees"] is None
    params = [c for c in p["controls"] if c["kind"] == "parameters"]
    assert params[0]["d"] == 3 and params[1]["d"] == 2
    assert params[0]["spn_coefficients"] < params[1]["spn_coefficients"]
    # every control backbone is shipped: nothing missing, the run is complete
    assert all(c["status"] == "measured" for c in p["controls"]) and p["complete"]
    acts = {c["backbone"] for c in p["controls"] if c["kind"] == "activation"}
    assert acts == {"aspirin_L2_seed0", "aspirin_L2_tanh_seed0", "aspirin_L2_gelu_seed0"}
    written = small_controls.save(tmp_path / "controls")
    assert sorted(x.name for x in written) == ["report.md", "results.json"]
    assert "| control | kind |" in (tmp_path / "controls" / "report.md").read_text()


def test_controls_without_their_backbone_are_listed_as_missing():
    """A control whose backbone is neither shipped nor given is planned as unavailable (the
    run then lists it as missing and reports complete: false), the random ones never."""
    from empirical.controls._controls import _plan

    plan = _plan(available={"aspirin_L2_seed0"}, frames=1000)
    unavailable = {p.backbone for p in plan if not p.available}
    assert unavailable == {"aspirin_L2_c64_seed0", "aspirin_L2_c128_seed0",
                           "aspirin_L2_tanh_seed0", "aspirin_L2_gelu_seed0",
                           "aspirin_L1_seed0", "aspirin_L3_seed0"}
    assert all(p.available for p in _plan(available=set(), frames=1000)
               if p.backbone in ("random", "gate-points"))


def test_controls_bad_options():
    from empirical.controls import run_controls

    with pytest.raises(ValueError, match="control kind"):
        run_controls(kinds=("luck",), progress=False)
    with pytest.raises(ValueError, match="fewer coefficients"):
        run_controls(parameter_widths=(9, 18), progress=False)


# -- compare ----------------------------------------------------------------------------------

def test_compare_calibration_with_a_diagnostic(ideal_c5, tmp_path, capsys):
    from empirical.calibration import compare
    from empirical.diagnostic import diagnose

    data = c5_structures(1200, seed=8)
    diag = diagnose(backbones=[IdealFeatures(2)], dataset=data, degrees=(2, 3), lmax=6,
                    n_boot=20, k_sweep=(), progress=False)
    cmp = compare(ideal_c5, diag)
    assert cmp["L"] == 2 and cmp["agreement"] is True
    assert {(r["d"], r["l"]) for r in cmp["rows"]} == {(d, l) for d in (2, 3) for l in range(1, 7)}
    assert "agree at every l" in cmp["paragraph"]
    # a disagreement is reported, not hidden
    bad = diag.to_dict()
    bad["summary"]["2"]["rho"]["5"] = 0.8
    bad["summary"]["2"]["measured_ceiling"] = 5     # kept consistent: compare checks them
    bad["summary"]["2"]["rho_above"] = 0.8
    bad["summary"]["2"]["rho_ci"]["5"] = [0.7, 0.9]
    bad["summary"]["2"]["status"] = "violates"
    bad["summary"]["2"]["agreement"] = False
    bad_cmp = compare(ideal_c5.to_dict(), bad)
    assert "aspirin VIOLATES the upper bound; the prediction is not met by: aspirin at l = 5" \
        in bad_cmp["paragraph"] and bad_cmp["agreement"] is False

    ideal_c5.save(tmp_path / "c5")
    diag.save(tmp_path / "asp", plots=False)
    code = cli.main(["compare", "--c5", str(tmp_path / "c5"), "--aspirin", str(tmp_path / "asp"),
                     "--out", str(tmp_path / "cmp")])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {
        "compare.json", "compare.md", "compare_d2.png", "compare_d3.png",
        ".spectral-ceilings.json"}
    code = cli.main(["compare", "--c5", str(tmp_path / "nowhere"), "--aspirin",
                     str(tmp_path / "asp"), "--out", str(tmp_path / "cmp2")])
    assert code == 2 and "no results.json" in capsys.readouterr().err
    assert not (tmp_path / "cmp2").exists()


def test_reproduce_rejects_unknown_preset(tmp_path):
    from empirical.reproduce import reproduce

    with pytest.raises(ValueError, match="preset"):
        reproduce("medium", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_gate_points_backbone_is_an_equivariant_protocol_object():
    from empirical.backbone import GatePointsBackbone, check_protocol, equivariance_error

    model = GatePointsBackbone(L=2, channels=8, species=[6, 8], seed=1)
    check_protocol(model)
    data = c5_structures(2, seed=0)
    pos, num = torch.tensor(data.positions[0]), torch.tensor(data.numbers)
    assert model.node_features(pos, num).shape == (7, model.irreps_out.dim)
    assert {ir.l for _, ir in model.irreps_out} == {0, 1, 2}
    rot = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    assert equivariance_error(model, pos, num, rot) < 1e-4
    assert equivariance_error(model, pos, num, -rot) < 1e-4
    again = GatePointsBackbone(L=2, channels=8, species=[6, 8], seed=1)
    assert torch.equal(again.node_features(pos, num), model.node_features(pos, num))
    with pytest.raises(ValueError):
        GatePointsBackbone(L=0)
