"""Attack on the rule "no absolute path of the machine a run happened on goes into an
output" (docs/method.md §6; README "Limits and trust", row "paths in outputs").

Each test reproduces one leak an independent attack found (and that is now closed): each
failed while the leak was there. Tiny settings: the whole file runs in well under 30 s.

1. The manifest's recorded command (``.spectral-ceilings.json``) keeps an adapter spec's
   absolute path: ``native:/abs/x.pt`` and ``--backbones=native:/abs/x.pt``
   (``spanthm.io._portable`` rewrote only an argument that *is* an absolute path, or
   ``--opt=/abs``; it now goes through ``portable_text``).
2. A sweep's task store keeps every run entry's dataset source absolute (``run/*.npz``,
   member ``meta``: ``"source": "/abs/.../a.npz"``); the sweep now records a dataset file
   relative to its config file before any task sees it.
3. Plots are binary and never pass through ``portable_text``: a backbone named by its path
   (``sevenn:/abs/x.pth``) was drawn absolute into profile.png's title; a SevenNet file
   is now named after the file (``sevenn-x.pth``), like MACE's.
4. ``portable_text(..., json_escaped=True)`` skips a path that follows an escaped control
   character inside a JSON string (``"x\\n/abs/a.npz"``): the ``n`` of ``\\n`` is a word
   character, so the look-behind refused the match; escapes are now allowed before it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

from empirical import cli
from empirical.backbone import shipped
from empirical.data import load, save_npz
from spanthm.io import manifest_bytes, portable_text


def _leaks(text: str, tmp_path) -> list:
    roots = {str(tmp_path), os.path.realpath(tmp_path)}
    return sorted(r for r in roots if re.search(r"(?<![\w.~-])" + re.escape(r), text))


def _checkpoint(tmp_path):
    src = next(e["path"] for e in shipped(role="diagnostic"))
    dst = tmp_path / "in" / "b.pt"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def _data(tmp_path):
    path = tmp_path / "in" / "a.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(load("aspirin").subset(range(120)), path)
    return path


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_manifest_command_relativizes_an_adapter_spec(tmp_path, monkeypatch, form):
    """LEAK 1 (unit): ``empirical diagnose --backbones native:/abs/b.pt`` records
    ``native:/abs/b.pt`` in the manifest's command."""
    ckpt = _checkpoint(tmp_path)
    argv = (["--backbones", f"native:{ckpt}"] if form == "separate"
            else [f"--backbones=native:{ckpt}"])
    monkeypatch.setattr(sys, "argv", ["empirical", "diagnose", *argv])
    out = tmp_path / "out"
    out.mkdir()
    text = manifest_bytes({}, base=out).decode()
    assert not _leaks(text, tmp_path), text


def test_diagnose_manifest_has_no_absolute_native_spec(tmp_path, monkeypatch):
    """LEAK 1 (end to end), as from the shell:

        empirical diagnose --data /abs/a.npz --backbones native:/abs/b.pt --frames 120 \\
            --n-boot 20 --degrees 1 --lmax 3 --k-sweep --no-plots --out /abs/out
        grep /abs /abs/out/.spectral-ceilings.json      # "native:/abs/b.pt"
    """
    data, ckpt, out = _data(tmp_path), _checkpoint(tmp_path), tmp_path / "out"
    args = ["diagnose", "--data", str(data), "--backbones", f"native:{ckpt}",
            "--frames", "120", "--n-boot", "20", "--degrees", "1", "--lmax", "3",
            "--k-sweep", "--no-plots", "--no-progress", "--threads", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["empirical", *args])
    assert cli.main(args) == 0
    for path in sorted(out.iterdir()):
        if path.suffix in (".json", ".md"):
            assert not _leaks(path.read_text(), tmp_path), (path.name, path.read_text()[:600])


def test_sweep_store_run_entries_have_no_absolute_source(tmp_path):
    """LEAK 2, as from the shell (a TOML with ``datasets = ["/abs/a.npz"]``):

        empirical sweep /abs/s.toml --frames 120 --workers 1
        python -c "import numpy as np,glob; [print(np.load(f)['meta']) for f in
                   glob.glob('/abs/out.store/run/*/*.npz')]"     # "source": "/abs/a.npz"
    """
    pytest.importorskip("distributed")
    from distributed import Client

    from empirical.sweep import parse_config, sweep

    data, ckpt = _data(tmp_path), _checkpoint(tmp_path)
    raw = {"datasets": [str(data)], "groups": [{"name": "g", "backbones": [str(ckpt)]}],
           "degrees": [1], "lmax": 3, "frames": 120, "n_boot": 20, "k_sweep": [],
           "chunk": 120}
    store = tmp_path / "store"
    with Client(processes=False, n_workers=1, threads_per_worker=1,
                dashboard_address=":0") as client:
        sweep(parse_config(raw, base=tmp_path), store=store, client=client, progress=False)
    found = []
    for entry in sorted(store.rglob("*.npz")):
        with np.load(entry, allow_pickle=False) as z:
            for key in z.files:
                if z[key].dtype.kind in "SU" and _leaks(str(z[key]), tmp_path):
                    found.append((str(entry.relative_to(store)), key))
    assert not found, found


def test_portable_text_json_path_after_an_escaped_newline(tmp_path):
    """LEAK 4 (mechanism): a JSON string holding ``"...\\n/abs/a.npz"`` keeps the path."""
    data = tmp_path / "in" / "a.npz"
    data.parent.mkdir(parents=True)
    data.write_text("x")
    for sep in ("\n", "\t"):
        text = json.dumps({"note": f"read{sep}{data}"})
        got = portable_text(text, tmp_path / "out", json_escaped=True)
        note = json.loads(got)["note"]
        assert str(tmp_path) not in note and os.path.realpath(tmp_path) not in note, got


def test_profile_plot_has_no_absolute_backbone_name(tmp_path, monkeypatch):
    """LEAK 3, as from the shell (the title of profile.png reads "/abs/s.pth: rho(l) ..."):

        cp .../sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth /abs/s.pth
        empirical profile --data /abs/a.npz --backbones sevenn:/abs/s.pth --trust-checkpoints \
            --frames 60 --n-boot 20 --d 1 --lmax 3 --out /abs/p
    """
    sevenn = pytest.importorskip("sevenn")
    import matplotlib.figure
    import matplotlib.text

    pth = (os.path.join(os.path.dirname(sevenn.__file__), "pretrained_potentials",
                        "SevenNet_0__11Jul2024", "checkpoint_sevennet_0.pth"))
    if not os.path.isfile(pth):
        pytest.skip("no SevenNet-0 checkpoint")
    model = tmp_path / "in" / "s.pth"
    data = _data(tmp_path)
    shutil.copy(pth, model)
    drawn = []
    original = matplotlib.figure.Figure.savefig

    def savefig(fig, *a, **k):
        drawn.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        return original(fig, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    out = tmp_path / "out"
    args = ["profile", "--data", str(data), "--backbones", f"sevenn:{model}",
            "--trust-checkpoints", "--frames", "60", "--n-boot", "20", "--d", "1",
            "--lmax", "3", "--no-progress", "--threads", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["empirical", *args])
    assert cli.main(args) == 0
    assert drawn, "no figure was drawn"
    assert not [t for t in drawn if _leaks(t, tmp_path)], [t for t in drawn if "/" in t]
