"""Issue 21, output safety: ``--overwrite`` replaces only what this tool wrote, never an
input, never the current directory; symlinked outputs are followed and leave nothing
behind; output files are checked before the work; results read back are bounded and named.

Most refusals happen before any work: the expensive function is replaced by one that fails
the test if it is reached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from _helpers import SavedPayload
from empirical import cli
from empirical.data import Dataset, save_npz

MANIFEST = ".spectral-ceilings.json"


def _toy(n=60, metadata=None):
    rng = np.random.default_rng(0)
    pos = rng.normal(scale=1.2, size=(n, 3, 3))
    pos[:, 1] = pos[:, 0] + rng.normal(size=(n, 3))
    return Dataset(positions=pos, numbers=np.array([6, 8, 1]), energies=rng.normal(size=n),
                   forces=np.zeros_like(pos), metadata=metadata or {"source": "toy"})


def _tree(root: Path) -> dict:
    """Every file under ``root`` with its bytes (hidden ones included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _no_work(monkeypatch, module, name):
    def fail(*a, **k):
        raise AssertionError(f"{name} ran although the output was refused")
    monkeypatch.setattr(module, name, fail)


def _one_line_2(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _our_set(out: Path, files=None):
    from empirical.io import write_file_set
    write_file_set(out, files or {"results.json": b"{}", "report.md": b"# r\n"})


@pytest.fixture
def no_diagnose(monkeypatch):
    import empirical.diagnostic as diagnostic
    _no_work(monkeypatch, diagnostic, "diagnose")


def _diagnose(out, *extra, data=None):
    return cli.main(["diagnose", *(["--data", str(data)] if data else []), "--marked", "0", "1",
                     "--out", str(out), "--no-progress", *extra])


# ------------------------------------------------------------------ case 1: --overwrite


def test_overwrite_never_deletes_the_input_it_read(tmp_path, capsys, no_diagnose):
    """Issue: `diagnose --data DIR/data/good300.npz --out DIR --overwrite` deleted the data."""
    data = tmp_path / "DIR" / "data" / "good300.npz"
    data.parent.mkdir(parents=True)
    save_npz(_toy(), data)
    before = _tree(tmp_path)
    err = _one_line_2(capsys, _diagnose(tmp_path / "DIR", "--overwrite", data=data))
    assert "contains the input" in err and "good300.npz" in err
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_directory_of_foreign_files(tmp_path, capsys, no_diagnose):
    """Issue: `--out SOMEDIR --overwrite` wiped a thesis.tex and a source tree."""
    data = tmp_path / "toy.npz"
    save_npz(_toy(), data)
    some = tmp_path / "SOMEDIR"
    (some / "src").mkdir(parents=True)
    (some / "thesis.tex").write_text("\\chapter{years of work}")
    (some / "src" / "a.py").write_text("print(1)")
    before = _tree(tmp_path)
    err = _one_line_2(capsys, _diagnose(some, "--overwrite", data=data))
    assert "did not write" in err and "thesis.tex" in err and "src/" in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("spec", ["nequip:{}", "mace:{}@2", "sevenn:{}", "{}"])
def test_an_input_inside_our_own_output_is_never_replaced(tmp_path, capsys, no_diagnose, spec):
    """Even a file our manifest vouches for is kept when this run reads it (adapter specs
    included: the PATH inside nequip:PATH, mace:PATH@LAYER, sevenn:PATH)."""
    out = tmp_path / "run"
    _our_set(out, {"model.ckpt": b"weights", "results.json": b"{}"})
    before = _tree(tmp_path)
    code = cli.main(["diagnose", "--backbones", spec.format(out / "model.ckpt"),
                     "--out", str(out), "--overwrite", "--no-progress"])
    assert "contains the input" in _one_line_2(capsys, code)
    assert _tree(tmp_path) == before


def test_overwrite_replaces_our_own_set_and_writes_a_manifest(tmp_path, capsys):
    from empirical.io import read_manifest, write_file_set
    out = tmp_path / "run"
    write_file_set(out, {"a.png": b"1", "results.json": b"{}"})
    manifest = read_manifest(out)
    assert manifest["tool"] == "spectral-ceilings" and manifest["version"]
    assert set(manifest["files"]) == {"a.png", "results.json"} and manifest["command"]
    write_file_set(out, {"b.png": b"2", "results.json": b"[]"}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "b.png", "results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]        # nothing left aside


@pytest.mark.parametrize("tamper", ["added", "edited", "symlink", "forged", "forged-dir",
                                    "no-manifest", "bad-manifest"])
def test_a_manifest_vouches_only_for_files_it_hashed(tmp_path, tamper):
    from empirical.io import ForeignFiles, OutputExists, write_file_set
    out = tmp_path / "run"
    _our_set(out)
    if tamper == "added":
        (out / "notes.txt").write_text("mine")
    elif tamper == "edited":
        (out / "report.md").write_text("# my edits\n")
    elif tamper == "symlink":
        (out / "link").symlink_to(tmp_path)
    elif tamper in ("forged", "forged-dir"):    # a hand-written manifest listing thesis.tex
        (out / "thesis.tex").write_text("thesis")
        manifest = json.loads((out / MANIFEST).read_text())
        manifest["files"]["thesis.tex"] = "0" * 64
        if tamper == "forged-dir":
            (out / "src").mkdir()
            (out / "src" / "a.py").write_text("x")
            manifest["dirs"]["src"] = "set"
        (out / MANIFEST).write_text(json.dumps(manifest))
    elif tamper == "no-manifest":
        (out / MANIFEST).unlink()
    else:
        (out / MANIFEST).write_text("[" * 100000)
    before = _tree(tmp_path)
    with pytest.raises((ForeignFiles, OutputExists), match="did not write"):
        write_file_set(out, {"x": b""}, overwrite=True)
    assert _tree(tmp_path) == before


def test_only_a_manifest_or_a_missing_listed_file_is_fine(tmp_path):
    from empirical.io import OutputExists, write_file_set
    out = tmp_path / "run"
    _our_set(out)
    (out / "report.md").unlink()                      # listed, not there: nothing to keep
    write_file_set(out, {"x": b"1"}, overwrite=True)
    (out / "x").unlink()                              # only the manifest left
    with pytest.raises(OutputExists):
        write_file_set(out, {"y": b"2"})              # still needs --overwrite
    write_file_set(out, {"y": b"2"}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "y"]


def test_an_empty_existing_directory_is_written_into(tmp_path, capsys):
    from empirical.io import write_file_set
    out = tmp_path / "empty"
    out.mkdir()
    write_file_set(out, {"x": b"1"})
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "x"]


def test_a_file_gained_during_the_run_is_kept(tmp_path, monkeypatch):
    """The check is repeated just before the swap: a file added while the run worked stops
    the write, and nothing is deleted."""
    import spanthm.io as sio
    from empirical.io import ForeignFiles, write_file_set
    out = tmp_path / "run"
    _our_set(out)
    real = sio.write_set

    def late(out_dir, files, kind="set", recheck=None):
        (Path(out_dir) / "late.txt").write_text("added while computing")
        return real(out_dir, files, kind, recheck)

    monkeypatch.setattr("empirical.io.write_set", late)
    with pytest.raises(ForeignFiles, match="late.txt"):
        write_file_set(out, {"x": b""}, overwrite=True)
    assert (out / "late.txt").exists() and (out / "results.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_vouched_file_size_limit(tmp_path, monkeypatch):
    """A listed file over MAX_VOUCHED_FILE_BYTES is never vouched for (hashing is bounded)."""
    import spanthm.io as sio
    out = tmp_path / "run"
    _our_set(out, {"a": b"12345678"})
    monkeypatch.setattr(sio, "MAX_VOUCHED_FILE_BYTES", 8)
    assert sio.unvouched(out) == []                    # at the limit
    monkeypatch.setattr(sio, "MAX_VOUCHED_FILE_BYTES", 7)
    assert sio.unvouched(out) == ["a"]                 # over it


def test_manifest_size_limit(tmp_path, monkeypatch):
    import spanthm.io as sio
    out = tmp_path / "run"
    _our_set(out, {"a": b"1"})
    size = (out / MANIFEST).stat().st_size
    monkeypatch.setattr(sio, "MAX_MANIFEST_BYTES", size)
    assert sio.read_manifest(out) is not None and sio.unvouched(out) == []
    monkeypatch.setattr(sio, "MAX_MANIFEST_BYTES", size - 1)
    assert sio.read_manifest(out) is None and sio.unvouched(out) == [MANIFEST, "a"]


def test_foreign_listing_limit(tmp_path, capsys, no_diagnose):
    """FOREIGN_SHOWN names, then "and N more"."""
    from spanthm.io import FOREIGN_SHOWN
    some = tmp_path / "some"
    some.mkdir()
    for i in range(FOREIGN_SHOWN):
        (some / f"f{i}").write_text("x")
    err = _one_line_2(capsys, _diagnose(some, "--overwrite"))
    assert "more" not in err and f"f{FOREIGN_SHOWN - 1}" in err
    (some / "g").write_text("x")
    err = _one_line_2(capsys, _diagnose(some, "--overwrite"))
    assert "and 1 more" in err


def test_train_never_mixes_into_a_foreign_directory(tmp_path, capsys, monkeypatch):
    import empirical.backbone as backbone
    _no_work(monkeypatch, backbone, "train")
    data = tmp_path / "DIR" / "d.npz"
    data.parent.mkdir()
    save_npz(_toy(), data)
    some = tmp_path / "SOMEDIR"
    some.mkdir()
    (some / "thesis.tex").write_text("t")
    before = _tree(tmp_path)
    for argv, needle in [(["--out", str(some)], "--resume"),
                         (["--out", str(some), "--resume"], "training did not write"),
                         (["--data", str(data), "--out", str(data.parent), "--resume"],
                          "contains the input")]:
        code = cli.main(["train", "--seed", "0", "--epochs", "1", "--no-progress", *argv])
        assert needle in _one_line_2(capsys, code)
    assert _tree(tmp_path) == before
    run = tmp_path / "run"                      # a run folder of checkpoints is resumed
    run.mkdir()
    for name in ("last.pt", "best.pt", "epoch_0003.pt", ".last.pt.x1y2.tmp"):
        (run / name).write_bytes(b"")
    from empirical.io import check_train_dir
    assert check_train_dir(run, resume=True) == run


def test_compare_never_writes_over_its_inputs(tmp_path, capsys):
    c5 = tmp_path / "c5"
    _our_set(c5, {"results.json": b"{}"})
    before = _tree(tmp_path)
    code = cli.main(["compare", "--c5", str(c5), "--aspirin", str(tmp_path / "x"),
                     "--out", str(c5), "--overwrite"])
    assert "is the input" in _one_line_2(capsys, code)
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------ case 2: sweep store

@pytest.mark.parametrize("layout", ["same", "store-inside", "out-inside"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_sweep_store_overlapping_out_is_refused_before_work(tmp_path, capsys, monkeypatch,
                                                           layout, overwrite):
    pytest.importorskip("dask")
    import empirical.sweep as sweep_mod
    _no_work(monkeypatch, sweep_mod, "sweep")
    cfg = tmp_path / "c.toml"
    cfg.write_text('degrees = [1]\nlmax = 3\n[[groups]]\nbackbones = ["aspirin_L2_seed2"]\n')
    x = tmp_path / "X"
    if overwrite:             # an existing store; without --overwrite the case: new
        (x / "features").mkdir(parents=True)
        (x / "features" / "entry.npz").write_bytes(b"a finished task")
    out, store = {"same": (x, x), "store-inside": (x, x / "store"),
                  "out-inside": (x / "o", x)}[layout]
    before = _tree(tmp_path)
    code = cli.main(["sweep", str(cfg), "--out", str(out), "--store", str(store),
                     "--no-progress", *(["--overwrite"] if overwrite else [])])
    assert "lies inside the other" in _one_line_2(capsys, code)
    assert _tree(tmp_path) == before and x.exists() == overwrite


# ------------------------------------------------------------- case 3: --out . (the cwd)

@pytest.mark.parametrize("where", [".", "..", "empty-cwd"])
def test_out_that_is_or_holds_the_current_directory_is_refused(tmp_path, capsys, monkeypatch,
                                                               no_diagnose, where):
    run = tmp_path / "run"
    _our_set(run)
    cwd = run
    if where == "empty-cwd":
        cwd = tmp_path / "empty"
        cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(tmp_path)
    err = _one_line_2(capsys, _diagnose("." if where != ".." else "..", "--overwrite"))
    assert "current directory" in err and "Errno" not in err
    assert _tree(tmp_path) == before and not list(tmp_path.glob(".*"))


# -------------------------------------------------------------- case 4: symlinked --out

def test_out_symlink_is_followed_and_nothing_is_left_behind(tmp_path):
    from empirical.io import write_file_set
    real = tmp_path / "real" / "run"
    real.parent.mkdir()
    _our_set(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    write_file_set(link, {"new.json": b"1"}, overwrite=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == [MANIFEST, "new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["run"]    # no .old, no .tmp


def test_symlink_loop_and_foreign_symlink_target(tmp_path, capsys, no_diagnose):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "does not resolve" in _one_line_2(capsys, _diagnose(tmp_path / "a"))
    some = tmp_path / "some"
    some.mkdir()
    (some / "thesis.tex").write_text("t")
    (tmp_path / "l").symlink_to(some)
    assert "thesis.tex" in _one_line_2(capsys, _diagnose(tmp_path / "l", "--overwrite"))
    assert (some / "thesis.tex").read_text() == "t"


# ------------------------------------------------------- case 5: data aspirin --out FILE

@pytest.fixture
def no_generation(monkeypatch):
    import empirical.data as data
    _no_work(monkeypatch, data, "generate_aspirin")


def _aspirin(out, *extra):
    return cli.main(["data", "aspirin", "--frames", "2", "--no-progress", "--out", str(out),
                     *extra])


def test_data_aspirin_checks_its_output_before_the_md(tmp_path, capsys, no_generation):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("t")
    for out, extra, needle in [(blocker / "x.npz", [], "not a writable directory"),
                               (tmp_path, [], "is a directory"),
                               (thesis, [], "already exists"),
                               (thesis, ["--overwrite"], "not a file this tool wrote")]:
        assert needle in _one_line_2(capsys, _aspirin(out, *extra))
    assert thesis.read_text() == "t"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into a read-only directory")
def test_data_aspirin_read_only_directory(tmp_path, capsys, no_generation):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not a writable directory" in _one_line_2(capsys, _aspirin(ro / "x.npz"))
    finally:
        ro.chmod(0o755)


def test_data_aspirin_overwrite_replaces_only_our_dataset(tmp_path, capsys, monkeypatch):
    import empirical.data as data
    ours = _toy(metadata={"method": "GFN2-xTB", "generation_seconds": 1.0,
                          "mean_kinetic_temperature_K": 500.0, "ms_per_md_step": 1.0})
    monkeypatch.setattr(data, "generate_aspirin", lambda **k: ours)
    other = tmp_path / "other.npz"
    save_npz(_toy(), other)                          # an npz, not one we generated
    assert "not a file this tool wrote" in _one_line_2(capsys, _aspirin(other, "--overwrite"))
    mine = tmp_path / "mine.npz"
    assert _aspirin(mine) == 0
    assert "already exists" in _one_line_2(capsys, _aspirin(mine))
    assert _aspirin(mine, "--overwrite") == 0


def test_dataset_metadata_size_limit(tmp_path, monkeypatch):
    import empirical.io as eio
    path = tmp_path / "mine.npz"
    save_npz(_toy(metadata={"method": "GFN2-xTB", "generation_seconds": 1.0}), path)
    import zipfile
    size = zipfile.ZipFile(path).getinfo("metadata.npy").file_size
    monkeypatch.setattr(eio, "MAX_DATASET_METADATA_BYTES", size)
    assert eio.is_generated_dataset(path)
    monkeypatch.setattr(eio, "MAX_DATASET_METADATA_BYTES", size - 1)
    assert not eio.is_generated_dataset(path)


# ------------------------------------------------------------- case 6: backbones --plot

def test_backbones_plot_names_what_was_typed(tmp_path, capsys):
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("t")
    for plot, needle in [(tmp_path, "is a directory"), (thesis, "not a file this tool wrote"),
                         (thesis / "x.png", "not a writable directory")]:
        err = _one_line_2(capsys, cli.main(["backbones", "--plot", str(plot)]))
        assert needle in err and f"--plot {plot}" in err and ".tmp" not in err
    assert thesis.read_text() == "t"


# --------------------------------------------------- case 7: reproduce reads back results

@pytest.mark.parametrize("content", [b'{"config": {"seed": 0}}', b"[" * 200000 + b"]" * 200000,
                                     b"\x89\x00garbage", b""])
def test_reproduce_refuses_a_results_file_it_did_not_write(tmp_path, capsys, monkeypatch,
                                                          content):
    import empirical.calibration as calibration
    _no_work(monkeypatch, calibration, "run_c5")
    bad = tmp_path / "D" / "c5" / "results.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(content)
    code = cli.main(["reproduce", "--out", str(tmp_path / "D"), "--no-progress"])
    assert "c5/results.json" in _one_line_2(capsys, code)
    assert bad.read_bytes() == content


def test_reproduce_step_reads_back_or_names_the_file(tmp_path):
    """_step: a results.json in a folder we wrote that does not read back (an older schema)
    is recomputed; in a folder we did not write it is refused naming the file; deep nesting
    is bounded (no RecursionError)."""
    from empirical import reproduce as rep
    from empirical.io import write_file_set

    def read(p):
        return SavedPayload(rep._with_keys("c5", p))

    ran = []

    def run():
        ran.append(1)
        return SavedPayload({"config": {"seed": 0}, "cells": [], "agreement": 1, "summary": {}})

    out = tmp_path / "D"
    write_file_set(out / "c5", {"results.json": b'{"config": {"seed": 0}}'})   # old schema
    rep._step(out, "c5", 0, False, run, read, log=lambda s: None)
    assert ran == [1] and "cells" in json.loads((out / "c5" / "results.json").read_text())
    rep._step(out, "c5", 0, False, run, read, log=lambda s: None)              # now resumed
    assert ran == [1]
    for content in (b"[" * 100000 + b"]" * 100000, b'{"config": {"seed": 0}}'):
        (out / "c5" / "results.json").write_bytes(content)                    # not ours
        with pytest.raises(ValueError, match="c5/results.json"):
            rep._step(out, "c5", 0, False, run, read, log=lambda s: None)
    assert ran == [1]


def test_reproduce_refuses_foreign_folders_and_keeps_its_own(tmp_path, capsys, monkeypatch):
    import empirical.calibration as calibration
    _no_work(monkeypatch, calibration, "run_c5")
    from empirical import reproduce as rep
    d = tmp_path / "D"
    d.mkdir()
    (d / "README.md").write_text("# my project")
    for extra in ([], ["--overwrite"]):
        code = cli.main(["reproduce", "--out", str(d), "--no-progress", *extra])
        assert "README.md" in _one_line_2(capsys, code)
    assert (d / "README.md").read_text() == "# my project"
    diag = tmp_path / "diag"
    _our_set(diag)                                    # another command's folder
    assert "another command" in _one_line_2(
        capsys, cli.main(["reproduce", "--out", str(diag), "--no-progress"]))
    # its own top-level files, written through the manifest, are accepted on a rerun
    ours = tmp_path / "R"
    ours.mkdir()
    rep._write_top(ours, {"README.md": b"a", "index.json": b"{}"})
    assert rep.check_reproduce_dir(ours) == ours
    rep._write_top(ours, {"README.md": b"b", "index.json": b"{}"})
    assert rep._foreign(ours) == []
    (ours / "README.md").write_text("edited by hand")
    with pytest.raises(ValueError, match="README.md"):
        rep.check_reproduce_dir(ours)


# ------------------------------------------------------------- spanthm certify outputs

def test_certify_out_dir_replaces_only_its_own_set(tmp_path, capsys):
    from spanthm import cli as spanthm_cli
    some = tmp_path / "some"
    some.mkdir()
    (some / "thesis.tex").write_text("t")
    code = spanthm_cli.main(["certify", "--Lmax", "1", "--dmax", "1", "--out-dir", str(some),
                             "--overwrite"])
    assert code == 2 and "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in some.iterdir()) == ["thesis.tex"]
    certs = tmp_path / "certs"
    assert spanthm_cli.main(["certify", "--Lmax", "2", "--dmax", "1", "--out-dir",
                             str(certs)]) == 0
    assert sorted(p.name for p in certs.iterdir()) == [MANIFEST, "L1_d1.json", "L2_d1.json"]
    assert spanthm_cli.main(["certify", "--Lmax", "1", "--dmax", "1", "--out-dir",
                             str(certs)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert spanthm_cli.main(["certify", "--Lmax", "1", "--dmax", "1", "--out-dir", str(certs),
                             "--overwrite"]) == 0
    assert sorted(p.name for p in certs.iterdir()) == [MANIFEST, "L1_d1.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs", "some"]


def test_certify_out_file_replaces_only_a_certificate(tmp_path, capsys):
    from spanthm import cli as spanthm_cli
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("t")
    for extra, needle in [([], "already exists"), (["--overwrite"], "not a spanthm certificate")]:
        assert spanthm_cli.main(["certify", "--L", "1", "--d", "1", "--out", str(thesis),
                                 *extra]) == 2
        assert needle in capsys.readouterr().err
    assert thesis.read_text() == "t"
    cert = tmp_path / "c.json"
    assert spanthm_cli.main(["certify", "--L", "1", "--d", "1", "--out", str(cert)]) == 0
    assert spanthm_cli.main(["certify", "--L", "1", "--d", "1", "--out", str(cert),
                             "--overwrite"]) == 0


def _remove_chain(leaf):
    """Remove a deep chain of folders from its leaf up, without recursion (shutil.rmtree,
    and so pytest's clean-up of old temporary folders, recurses once per level)."""
    import os as _os

    leaf.unlink()
    level = leaf.parent
    while level.name == "a":
        for entry in level.iterdir():
            entry.unlink()
        level.rmdir()
        level = level.parent
    for entry in level.iterdir():
        entry.unlink()
    _os.rmdir(level)


def test_a_deep_chain_of_manifests_is_foreign_not_a_crash(tmp_path, capsys):
    """Hand-made manifests that vouch for a sub-directory that vouches for a
    sub-directory ... (1500 deep, past Python's recursion limit) make the folder foreign:
    ``--overwrite`` is refused in one line and nothing is deleted (it was a
    RecursionError traceback). At MAX_SET_DEPTH the chain is still checked."""
    import json as _json

    from spanthm import io as sio

    def chain(root, depth):
        level = root
        for _ in range(depth):
            level.mkdir(parents=True, exist_ok=True)
            (level / sio.MANIFEST_NAME).write_text(_json.dumps(
                {"tool": sio.MANIFEST_TOOL, "files": {}, "dirs": {"a": "set"}}))
            level = level / "a"
        level.mkdir(parents=True, exist_ok=True)
        (level / "keep.txt").write_text("mine")
        return level / "keep.txt"

    keep = chain(tmp_path / "deep", 1500)
    try:
        code = cli.main(["c5", "--out", str(tmp_path / "deep"), "--overwrite",
                         "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "did not write" in err, err
        assert keep.read_text() == "mine"
        assert sio.unvouched(tmp_path / "deep")        # foreign, not an exception
    finally:
        _remove_chain(keep)
    # at the depth limit a chain of sets is still followed (and here holds a foreign file)
    at = chain(tmp_path / "at", sio.MAX_SET_DEPTH)
    assert sio.unvouched(tmp_path / "at") == ["a/" * sio.MAX_SET_DEPTH + "keep.txt"]
    at.unlink()
    assert sio.unvouched(tmp_path / "at") == []
    over = chain(tmp_path / "over", sio.MAX_SET_DEPTH + 1)
    over.unlink()
    assert sio.unvouched(tmp_path / "over") == ["a/" * (sio.MAX_SET_DEPTH + 1)]


def test_an_output_on_a_read_only_file_system_is_refused_before_work(tmp_path, monkeypatch,
                                                                    capsys):
    """Root passes ``os.access`` on a read-only file system; the check now tries to
    create a file there (and removes it). Simulated by a mkstemp that fails as a
    read-only mount does, for the shared helper every command uses."""
    import errno
    import tempfile as _tempfile

    from spanthm import io as sio

    real_mkstemp = _tempfile.mkstemp

    def read_only(*args, **kwargs):
        if kwargs.get("prefix") == ".write-probe.":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, **kwargs)

    assert sio.unwritable_anchor(tmp_path / "out") is None
    assert not [p for p in tmp_path.iterdir()]          # the probe leaves nothing
    monkeypatch.setattr(_tempfile, "mkstemp", read_only)
    assert sio.unwritable_anchor(tmp_path / "out") == tmp_path
    code = cli.main(["c5", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a writable directory" in err, err
    assert not (tmp_path / "out").exists()


def test_the_manifest_records_no_absolute_path(tmp_path, monkeypatch):
    """The manifest records the command line; an absolute path typed there (``--out
    /abs/run``, ``--data=/abs/x.npz``) is written relative to the output directory, so no
    path of the machine a run happened on goes into an output."""
    import json as _json
    import sys as _sys

    from spanthm import io as sio

    out = tmp_path / "run"
    data = tmp_path / "in" / "x.npz"
    monkeypatch.setattr(_sys, "argv", ["/usr/bin/empirical", "diagnose", "--out", str(out),
                                       f"--data={data}", "--seed", "3"])
    sio.write_set(out, {"a.txt": b"a"})
    manifest = _json.loads((out / sio.MANIFEST_NAME).read_text())
    assert manifest["command"] == ["empirical", "diagnose", "--out", ".",
                                   "--data=../in/x.npz", "--seed", "3"]
    assert str(tmp_path) not in (out / sio.MANIFEST_NAME).read_text()
