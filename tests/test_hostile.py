"""Hostile input and faults (README "Limits and trust"): every test feeds what an attacker or a careless
user would, and checks for one clear refusal and no side effect.

Trust: a third-party checkpoint is pickled code. A crafted pickle that writes a file when
unpickled must not run unless the user said the file is trusted.
"""

import pickle

import pytest

from _helpers import SavedPayload, WritesAFile, crafted_pickle
from empirical import cli
from empirical.adapters._trust import (UntrustedCheckpoint, is_installed_file,
                                       require_trust)


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "written-by-the-checkpoint"
    return crafted_pickle(tmp_path / "best.ckpt", marker), marker


def test_the_crafted_checkpoint_really_runs_code_when_unpickled(crafted):
    """The premise: plain unpickling of the file writes the marker."""
    path, marker = crafted
    pickle.loads(path.read_bytes())
    assert marker.read_text() == "ran"


def test_nequip_adapter_refuses_an_untrusted_checkpoint(crafted):
    adapter = pytest.importorskip("empirical.adapters.nequip")
    pytest.importorskip("nequip")
    path, marker = crafted
    with pytest.raises(UntrustedCheckpoint, match="trusted=True"):
        adapter.load(path)
    assert not marker.exists()
    # the same file declared trusted is loaded by nequip, and its code runs: the refusal
    # above is what stood between the file and the machine
    with pytest.raises(ValueError):
        adapter.load(path, trusted=True)
    assert marker.exists()


def test_cli_refuses_an_untrusted_checkpoint_exit_2(crafted, tmp_path, capsys):
    pytest.importorskip("nequip")
    path, marker = crafted
    out = tmp_path / "run"
    code = cli.main(["diagnose", "--backbones", f"nequip:{path}", "--out", str(out),
                     "--no-progress", "--n-boot", "10"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--trust-checkpoints" in err and err.count("\n") == 1
    assert not marker.exists() and not out.exists()


def test_our_own_checkpoints_never_unpickle_code(tmp_path):
    """``empirical.backbone.load`` reads with ``weights_only=True``: a torch file whose
    pickle runs code is refused by torch's safe unpickler, and its code does not run."""
    from empirical.backbone import CheckpointError, load

    marker = tmp_path / "written-by-the-checkpoint"
    own = tmp_path / "model.pt"
    torch.save({"format": "empirical-backbone/1", "state_dict": WritesAFile(marker)}, own)
    with pytest.raises(CheckpointError, match=r"model\.pt'.*\(UnpicklingError\)"):
        load(own)
    assert not marker.exists()
    torch.load(own, weights_only=False)       # the premise: an unsafe load runs its code
    assert marker.read_text() == "ran"


def test_trust_rule(tmp_path):
    # a folder name is no proof of installation: only an installed RECORD is
    assert not is_installed_file("/usr/lib/python3/dist-packages/pkg/model.ckpt")
    assert not is_installed_file("/venv/lib/python3.11/site-packages/pkg/model.nequip.zip")
    assert not is_installed_file(tmp_path / "model.ckpt")
    require_trust(tmp_path / "model.ckpt", True, "nequip")          # said trusted
    with pytest.raises(UntrustedCheckpoint, match="pickled code"):
        require_trust(tmp_path / "model.ckpt", False, "nequip")
    with pytest.raises(ValueError, match="True or False"):
        require_trust(tmp_path / "model.ckpt", "yes", "nequip")


# -- outputs: never mixed, never lost ----------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402

from empirical.io import (MANIFEST_NAME, OutputExists, check_output_dir,  # noqa: E402
                          write_file_set)
from empirical.data import Dataset, save_npz  # noqa: E402


class _Ideal:
    dtype = torch.float64

    def __init__(self):
        self.irreps_out = o3.Irreps.spherical_harmonics(1)

    def node_features(self, positions, numbers):
        v = positions[1] - positions[0]
        return o3.spherical_harmonics(self.irreps_out, v[None], normalize=True,
                                      normalization="component").repeat(len(positions), 1)


def _toy(n=120):
    rng = np.random.default_rng(0)
    pos = rng.normal(scale=1.2, size=(n, 3, 3))
    pos[:, 1] = pos[:, 0] + rng.normal(size=(n, 3))
    return Dataset(positions=pos, numbers=np.array([6, 8, 1]), energies=rng.normal(size=n),
                   forces=np.zeros_like(pos),
                   metadata={"source": "toy", "marked_bond": {"atoms": [0, 1]}})


def test_a_set_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real = os.fsync

    def interrupted(fd):
        """The second file's sync to disk is interrupted."""
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(fd)

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_file_set(out, {"a.png": b"1", "results.json": b"{}"})
    monkeypatch.undo()
    assert not out.exists() and list(tmp_path.iterdir()) == []      # no half set, no temp
    write_file_set(out, {"a.png": b"1", "results.json": b"{}"})
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "a.png", "results.json"]
    # an interrupted overwrite leaves the earlier set as it was
    calls["n"] = 0
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_file_set(out, {"b.png": b"2", "results.json": b"[]"}, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "a.png", "results.json"]
    assert (out / "results.json").read_bytes() == b"{}"
    # an overwrite replaces the set: the earlier run's files do not stay beside the new ones
    write_file_set(out, {"b.png": b"2", "results.json": b"[]"}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "b.png", "results.json"]
    with pytest.raises(OutputExists, match="already holds files"):
        write_file_set(out, {"c": b""})


def test_diagnose_refuses_a_used_output_directory_before_any_work(tmp_path, capsys,
                                                                   monkeypatch):
    data = tmp_path / "toy.npz"
    save_npz(_toy(), data)
    out = tmp_path / "run"
    out.mkdir()
    (out / "frequency_response_d9.png").write_bytes(b"earlier run")
    import empirical.diagnostic as diagnostic

    def no_work(*a, **k):
        raise AssertionError("diagnose ran although the output was refused")

    monkeypatch.setattr(diagnostic, "diagnose", no_work)
    code = cli.main(["diagnose", "--data", str(data), "--marked", "0", "1", "--out", str(out),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "already holds files" in err and "--overwrite" in err
    assert err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["frequency_response_d9.png"]


def test_diagnose_overwrite_replaces_the_whole_set(tmp_path, capsys):
    from empirical.backbone import Backbone, BackboneConfig, save_checkpoint

    data = tmp_path / "toy.npz"
    save_npz(_toy(), data)
    ckpt = tmp_path / "bb.pt"
    save_checkpoint(ckpt, Backbone(BackboneConfig(L=1, channels=4, layers=2,
                                                  species=[1, 6, 8]), seed=0),
                    {"note": "random init"})
    out = tmp_path / "run"
    write_file_set(out, {"frequency_response_d9.png": b"earlier run"})   # an earlier run
    code = cli.main(["diagnose", "--data", str(data), "--backbones", str(ckpt), "--marked",
                     "0", "1", "--degrees", "1", "--lmax", "2", "--n-boot", "10",
                     "--k-sweep", "--no-plots", "--out", str(out), "--overwrite",
                     "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "report.md", "results.json"]


def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="not a writable directory"):
        check_output_dir(blocker / "run")
    code = cli.main(["compare", "--c5", str(tmp_path), "--aspirin", str(tmp_path),
                     "--out", str(blocker / "cmp")])
    err = capsys.readouterr().err
    assert code == 2 and "not a writable directory" in err and err.count("\n") == 1


def test_reproduce_keeps_finished_steps_and_says_so(tmp_path, capsys, monkeypatch):
    from empirical import reproduce as rep

    out = tmp_path / "repro"
    ran = []

    def run():
        ran.append(1)
        return SavedPayload({"config": {"seed": 0}, "x": 1}, seconds=1.0)

    first = rep._step(out, "c5", 0, False, run, SavedPayload, log=lambda s: None)
    again = rep._step(out, "c5", 0, False, run, SavedPayload, log=lambda s: None)
    assert len(ran) == 1 and again.to_dict() == first.to_dict()          # resumed, not rerun
    with pytest.raises(ValueError, match="seed 0, not 1"):
        rep._step(out, "c5", 1, False, run, SavedPayload, log=lambda s: None)
    rep._step(out, "c5", 0, True, run, SavedPayload, log=lambda s: None)   # --overwrite reruns
    assert len(ran) == 2

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "reproduce", interrupted)
    code = cli.main(["reproduce", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130 and "finished steps kept" in err and "c5/" in err


def test_interrupt_during_the_first_imports_is_one_line(monkeypatch, capsys):
    """Ctrl-C while the command's modules are still being imported: exit 130, one line."""
    import builtins

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name in ("backbone", "empirical.backbone") or (args and args[2] and
                                                           "CheckpointError" in args[2]):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    code = cli.main(["backbones"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 130 and err.strip() == "empirical: interrupted; nothing was written"


# -- work bounded before it starts ---------------------------------------------------------------

import spanthm  # noqa: E402
from spanthm import cli as spanthm_cli  # noqa: E402


@pytest.mark.parametrize("argv,needle", [
    (["check", "--L", "1000", "--d", "50"], "SPANTHM_MAX_COST"),
    (["check", "--L", "0", "--d", "1000000"], "SPANTHM_MAX_D"),
    (["check", "--features", "100000", "--d", "1"], "SPANTHM_MAX_COST"),
    (["multiplicities", "--L", "1000", "--d", "50"], "SPANTHM_MAX_COST"),
    (["table", "--Lmax", "1000", "--dmax", "50"], "SPANTHM_MAX_COST"),
    (["table", "--Lmax", "30", "--dmax", "10"], "in all"),
    (["check", "--L", "99999999999999999999999", "--d", "2"], "SPANTHM_MAX_COST"),
    (["certify", "--L", "400", "--d", "2"], "SPANTHM_MAX_COST"),
])
def test_spanthm_refuses_work_above_the_limits(argv, needle, capsys):
    assert spanthm_cli.main(argv) == 2
    captured = capsys.readouterr()
    assert needle in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_spanthm_api_limits_and_the_knob(monkeypatch):
    with pytest.raises(ValueError, match="SPANTHM_MAX_D"):
        spanthm.spectrum([0], 10 ** 6)
    with pytest.raises(ValueError, match="SPANTHM_MAX_FEATURES"):
        spanthm.spectrum(range(10 ** 22), 2)
    assert spanthm.spectrum(range(3), 2).ceiling == 4
    monkeypatch.setenv("SPANTHM_MAX_COST", "10")          # the limit is the knob's
    with pytest.raises(ValueError, match="above the limit of 10"):
        spanthm.spectrum(range(3), 2)


def test_verify_bounds_its_input(tmp_path, capsys):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (8 * 1024 * 1024 + 10))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    cert = json.loads(json.dumps(spanthm.certificate(range(2), 2)))
    cert["instance"]["d"] = 10 ** 6
    huge_d = tmp_path / "huge_d.json"
    huge_d.write_text(json.dumps(cert))
    for path, needle in [(big, "larger than"), (deep, "nested deeper"),
                         (huge_d, "above the limit")]:
        assert spanthm_cli.main(["verify", str(path)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_batch_certify_writes_all_or_nothing(tmp_path, capsys):
    out = tmp_path / "certs"
    out.mkdir()
    (out / "L2_d1.json").mkdir()              # one target path is a directory
    assert spanthm_cli.main(["certify", "--Lmax", "2", "--dmax", "2", "--out-dir",
                             str(out)]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["L2_d1.json"]


@pytest.mark.parametrize("extra,needle", [
    (["--degrees", "50"], "EMPIRICAL_MAX_BYTES"),
    (["--n-boot", "1000000000"], "bootstrap"),
    (["--rotations", "1000000"], "EMPIRICAL_MAX_BYTES"),
    (["--lmax", "13"], "stop at l = 12"),
])
def test_diagnose_refuses_work_above_the_limits(extra, needle, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["diagnose", "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    import lzma

    from empirical.backbone import CheckpointError, _checkpoint
    from empirical.backbone import load

    bomb = tmp_path / "bomb.pt.xz"
    bomb.write_bytes(lzma.compress(b"\0" * (2 * 1024 * 1024)))
    monkeypatch.setattr(_checkpoint, "MAX_DECOMPRESSED", 1024 * 1024)
    with pytest.raises(CheckpointError, match="expands to more than"):
        load(bomb)


# -- no verdict without a measurement -----------------------------------------------------------

from empirical.diagnostic import diagnose  # noqa: E402


def _toy_data(scale=1.0, n=150):
    """Toy molecules with bonds of about 1-2 A (``scale`` mimics other length units)."""
    rng = np.random.default_rng(3)
    base = np.array([[0.0, 0, 0], [1.2, 0, 0], [0, 1.1, 0], [0, 0, 1.0]])
    pos = base[None] + rng.normal(scale=0.05, size=(n, 4, 3))
    return Dataset(positions=pos * scale, numbers=np.array([6, 8, 1, 1]),
                   energies=rng.normal(scale=0.1, size=n), forces=rng.normal(size=(n, 4, 3)),
                   metadata={"source": "toy", "marked_bond": {"atoms": [0, 1]}})


class _NotEquivariant(_Ideal):
    """Harmonics of a direction with two axes swapped: not equivariant."""

    def node_features(self, positions, numbers):
        return super().node_features(positions[:, [1, 0, 2]], numbers)


def test_an_untested_ceiling_is_not_called_agreement(capsys):
    # 800 held-out samples: enough for rho(2)'s interval to fit the blind band (§2.8)
    res = diagnose(backbones=[_Ideal()], dataset=_toy_data(n=1000), degrees=(1, 2), lmax=2,
                   n_boot=200, k_sweep=(), rotations_per_config=4, progress=False)
    assert res.summaries[1].agreement is True           # l = 2 > dL = 1 was measured
    assert res.summaries[2].status == "untested"
    assert res.summaries[2].agreement is None           # dL = 2 = lmax: nothing above
    assert res.agreement is None
    assert any("untested" in w for w in res.warnings)
    assert res.to_dict()["summary"]["2"]["agreement"] is None


def test_a_backbone_that_is_not_equivariant_is_flagged():
    res = diagnose(backbones=[_NotEquivariant()], dataset=_toy_data(), degrees=(1,), lmax=3,
                   n_boot=200, k_sweep=(), progress=False)
    assert res.backbones[0].equivariant is False
    assert any("not equivariant" in w and "outside the theorem's premise" in w
               for w in res.warnings)
    ok = diagnose(backbones=[_Ideal()], dataset=_toy_data(), degrees=(1,), lmax=3,
                  n_boot=200, k_sweep=(), progress=False)
    assert ok.backbones[0].equivariant is True and not ok.warnings


def test_data_in_other_units_and_few_resamples_are_warned_about():
    res = diagnose(backbones=[_Ideal()], dataset=_toy_data(scale=0.1), degrees=(1,), lmax=3,
                   n_boot=20, k_sweep=(), progress=False)
    text = " ".join(res.warnings)
    assert "positions are expected in Angstrom" in text
    assert "20 bootstrap resamples" in text


# -- messages -----------------------------------------------------------------------------------

def test_a_boolean_is_not_an_atom_index():
    from empirical.diagnostic import marked_atoms

    for bad in [(True, 1), (0, False), ("0", 1)]:
        with pytest.raises(ValueError, match="marked atoms must be integers"):
            marked_atoms(_toy_data(), bad)
    assert marked_atoms(_toy_data(), (np.int64(0), 1)) == (0, 1)


def test_the_report_counts_rotations_as_rotations():
    from empirical.diagnostic._report import render_report

    res = diagnose(backbones=[_Ideal()], dataset=_toy_data(), degrees=(1,), lmax=3,
                   n_boot=200, k_sweep=(), rotations_per_config=3, progress=False)
    text = render_report(res)
    assert "3 Haar-random rotations each" in text and "one Haar-random rotation each" not in text


def test_compare_bounds_its_input(tmp_path, capsys):
    from empirical import io as _io

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    bad_c5 = tmp_path / "c5.json"
    bad_c5.write_text(json.dumps({"cells": [], "config": {}}))
    asp = Path(__file__).resolve().parents[1] / "docs" / "diagnose_aspirin" / "results.json"
    for c5, needle in [(deep, "nested deeper"), (bad_c5, "not the results of empirical c5")]:
        code = cli.main(["compare", "--c5", str(c5), "--aspirin", str(asp),
                         "--out", str(tmp_path / "cmp")])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, err
    with pytest.raises(ValueError, match="larger than"):
        _io.read_json(big, max_bytes=1024)
    assert not (tmp_path / "cmp").exists()


def test_a_frame_without_neighbours_is_named(tmp_path):
    from empirical.backbone import Backbone, BackboneConfig

    data = _toy_data(n=60)
    pos = data.positions.copy()
    pos[7] *= 20                                  # frame 7 blown apart: no pair inside 5 A
    data = Dataset(positions=pos, numbers=data.numbers, energies=data.energies,
                   forces=data.forces, metadata=data.metadata)
    bb = Backbone(BackboneConfig(L=1, channels=4, layers=2, species=[1, 6, 8]), seed=0)
    with pytest.raises(ValueError, match=r"frame 7: no atom pair within the backbone's cutoff"):
        diagnose(backbones=[bb.eval()], dataset=data, degrees=(1,), lmax=2, n_boot=10,
                 k_sweep=(), progress=False)


def test_a_checkpoint_whose_config_does_not_fit_its_weights_is_one_line(tmp_path, capsys):
    from empirical.backbone import shipped
    from empirical.backbone._checkpoint import read_checkpoint

    path = next(e["path"] for e in shipped() if e["name"] == "aspirin_L2_seed0")
    blob = read_checkpoint(path)
    blob["config"]["channels"] = 16
    bad = tmp_path / "mismatch.pt"
    torch.save(blob, bad)
    code = cli.main(["diagnose", "--backbones", str(bad), "--out", str(tmp_path / "run"),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "does not match the backbone" in err and "more" in err and "mismatch.pt" in err


def test_non_numeric_energies_name_the_file_and_the_field(tmp_path, capsys):
    data = _toy_data(n=20)
    path = tmp_path / "strings.npz"
    np.savez(path, positions=data.positions, numbers=data.numbers,
             energies=np.array(["x"] * 20), forces=data.forces)
    code = cli.main(["diagnose", "--data", str(path), "--out", str(tmp_path / "run"),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "strings.npz" in err and "energies are not numeric" in err


def test_spanthm_interrupt_during_start_up_is_one_line(monkeypatch, capsys):
    """``import spanthm`` is light (sympy loads on first use), so an interrupt while a
    command's modules load reaches the command's handler: exit 130, one line."""
    import builtins
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import sys, spanthm.cli; "
                            "print('sympy' in sys.modules)"], capture_output=True, text=True)
    assert probe.stdout.strip() == "False"
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name.endswith("_spectrum") or (args and args[2] and "spectrum" in args[2]):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    code = spanthm_cli.main(["check", "--L", "2", "--d", "2"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 130 and err.strip() == "spanthm: interrupted"


def test_certify_checks_its_output_before_computing(tmp_path, capsys, monkeypatch):
    import spanthm._certificates as certs

    def no_work(*a, **k):
        raise AssertionError("computed although the output was refused")

    monkeypatch.setattr(certs, "certificate", no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, needle in [(tmp_path, "is a directory"), (blocker / "c.json", "not a writable")]:
        assert spanthm_cli.main(["certify", "--L", "2", "--d", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1
