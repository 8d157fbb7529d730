"""Hostile input and faults (issue 14): every test feeds what an attacker or a careless
user would, and checks for one clear refusal and no side effect.

Trust: a third-party checkpoint is pickled code. A crafted pickle that writes a file when
unpickled must not run unless the user said the file is trusted.
"""

import pickle

import pytest

from empirical import cli
from empirical.adapters._trust import (UntrustedCheckpoint, is_installed_file,
                                       require_trust)


class _WritesAFile:
    """Unpickling this runs ``open(marker, "w").write("ran")``: a stand-in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "written-by-the-checkpoint"
    path = tmp_path / "best.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": _WritesAFile(marker)}))
    return path, marker


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


def test_our_own_checkpoints_never_unpickle_code(crafted, tmp_path):
    """``empirical.backbone.load`` reads with ``weights_only=True``: the crafted pickle is
    refused, trusted or not, and its code does not run."""
    from empirical.backbone import load

    path, marker = crafted
    own = tmp_path / "model.pt"
    own.write_bytes(path.read_bytes())
    with pytest.raises(Exception):
        load(own)
    assert not marker.exists()


def test_trust_rule(tmp_path):
    assert is_installed_file("/usr/lib/python3/dist-packages/pkg/model.ckpt")
    assert is_installed_file("/venv/lib/python3.11/site-packages/pkg/model.nequip.zip")
    assert not is_installed_file(tmp_path / "model.ckpt")
    require_trust(tmp_path / "model.ckpt", True, "nequip")          # said trusted
    with pytest.raises(UntrustedCheckpoint, match="pickled code"):
        require_trust(tmp_path / "model.ckpt", False, "nequip")
    with pytest.raises(ValueError, match="True or False"):
        require_trust(tmp_path / "model.ckpt", "yes", "nequip")
