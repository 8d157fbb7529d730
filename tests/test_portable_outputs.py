"""No absolute path of the machine a run happened on goes into an output (docs/method.md §6):
inputs given as absolute paths are recorded relative to the output directory."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch

from empirical import cli
from empirical.backbone import shipped
from empirical.data import load, save_npz
from spanthm.io import portable_text, write_set


def _absolute_paths(text: str, machine_roots):
    return sorted({r for r in machine_roots if re.search(r"(?<![\w.~-])" + re.escape(r), text)})


def _roots(tmp_path):
    return {str(tmp_path), os.path.realpath(tmp_path)}


def _texts(folder):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".md", ".txt", ".log"):
            yield path, path.read_text()


def test_portable_text_relativizes_only_machine_paths(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "data").mkdir()
    text = (f"source {tmp_path}/data/x.npz, missing /nonexistent-root-xyz/a.pt, "
            f"rho(4) / rho(5) in meV/A, rho(4)/rho(5), (x)/usr, https://example.org/a/b, "
            f"{tmp_path}/data.")
    got = portable_text(text, out)
    assert "../data/x.npz" in got and "../data." in got
    assert "/nonexistent-root-xyz/a.pt" in got          # not a path of this machine
    assert "rho(4) / rho(5) in meV/A" in got and "https://example.org/a/b" in got
    assert "rho(4)/rho(5), (x)/usr" in got       # a top-level name is never taken for a path
    assert not _absolute_paths(got, _roots(tmp_path))


@pytest.mark.parametrize("name", ["plain.pt", "café.pt", "with space.pt", 'quo"te.pt',
                                  "back\\slash.pt", "ünï cødé/x.pt"])
def test_json_paths_are_read_with_their_escapes(tmp_path, name):
    """Inside results.json a path is JSON-escaped (ensure_ascii, quotes, backslashes):
    it is found and made relative all the same, and the file stays valid JSON."""
    import json

    target = tmp_path / "in" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("x")
    text = json.dumps({"source": str(target), "label": f"nequip 0.19.1: {target}"}, indent=1)
    got = json.loads(portable_text(text, tmp_path / "out", json_escaped=True))
    assert got["source"] == os.path.join("..", "in", name)
    assert got["label"] == "nequip 0.19.1: " + os.path.join("..", "in", name)


def test_a_set_holds_no_absolute_path(tmp_path):
    out = tmp_path / "out"
    write_set(out, {"results.json": f'{{"source": "{tmp_path}/m.pt"}}'.encode(),
                    "plot.png": f"{tmp_path}/m.pt".encode()})
    assert (out / "results.json").read_text() == '{"source": "../m.pt"}'
    assert (out / "plot.png").read_bytes() == f"{tmp_path}/m.pt".encode()   # binary: as is


def test_diagnose_with_absolute_inputs_records_them_relative(tmp_path, aspirin):
    model = tmp_path / "models" / "mine.pt"
    model.parent.mkdir()
    shutil.copy(next(e["path"] for e in shipped(role="diagnostic")), model)
    data = tmp_path / "data" / "small.npz"
    save_npz(aspirin.subset(range(120)), data)
    out = tmp_path / "runs" / "diag"
    assert cli.main(["diagnose", "--backbones", str(model), "--data", str(data),
                     "--frames", "120", "--n-boot", "20", "--degrees", "1", "--lmax", "3",
                     "--k-sweep", "--no-progress", "--no-plots", "--out", str(out)]) == 0
    found = {p.name: _absolute_paths(t, _roots(tmp_path)) for p, t in _texts(out)}
    assert found and not any(found.values()), found
    assert "../../models/mine.pt" in (out / "results.json").read_text()


def test_a_training_checkpoint_records_its_data_relative(tmp_path, aspirin):
    data = tmp_path / "data" / "small.npz"
    save_npz(aspirin.subset(range(40)), data)
    out = tmp_path / "runs" / "train"
    assert cli.main(["train", "--data", str(data), "--L", "1", "--seed", "0", "--out", str(out),
                     "--channels", "4", "--layers", "2", "--epochs", "1",
                     "--train-frames", "20", "--val-frames", "10", "--test-frames", "10",
                     "--no-progress"]) == 0
    meta = torch.load(out / "best.pt", weights_only=True)["metadata"]
    assert meta["data"]["source"] == "../../data/small.npz"
    assert not _absolute_paths(repr(meta), _roots(tmp_path))
