"""Tests of empirical.diagnostic._report: the files of DiagnoseResult.save (results.json,
report.md, PNG plots), their content, determinism, and all-or-nothing writing.

The payload comes from a real (tiny) diagnose run: two fake backbones whose features are
the spherical harmonics (l <= 2) of the marked direction plus noise, on 300 random frames.
"""

import copy
import json
import os

import numpy as np
import pytest
import torch
from e3nn import o3

from empirical.data import Dataset
from empirical.diagnostic import DiagnoseResult, diagnose
from empirical.diagnostic import _report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeBackbone:
    """Protocol object: features = Y_{0,1,2}(u) of the marked direction + noise."""

    def __init__(self, seed, noise=0.3, with_energy=True):
        self.irreps_out = o3.Irreps("1x0e+1x1o+1x2e")
        self._gen = torch.Generator().manual_seed(seed)
        self._noise = noise
        if with_energy:
            self.energy = lambda positions, numbers: torch.tensor(0.0)

    def node_features(self, positions, numbers):
        u = positions[1] - positions[0]
        sh = o3.spherical_harmonics([0, 1, 2], u.double(), normalize=True,
                                    normalization="component")
        h = sh.expand(positions.shape[0], -1).clone()
        return h + self._noise * torch.randn(h.shape, generator=self._gen, dtype=h.dtype)


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    n = 300
    data = Dataset(rng.normal(size=(n, 3, 3)), np.array([6, 8, 1]),
                   rng.normal(scale=0.05, size=n), rng.normal(size=(n, 3, 3)),
                   metadata={"source": "synthetic test set", "marked_bond": {"atoms": [0, 1]},
                             "atom_labels": ["C1", "O2", "H3"]})
    return diagnose([FakeBackbone(0), FakeBackbone(1)], data, degrees=(1, 2), lmax=5,
                    n_boot=50, k_sweep=(1, 2), progress=False)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag") / "run"
    paths = result.save(out)
    return out, paths


def _headline_row(report, l):
    return [line for line in report.splitlines() if line.startswith(f"| {l} | ")]


def test_files_exist_with_expected_names(result, written):
    out, paths = written
    degrees = sorted(int(d) for d in result.payload["summary"])
    expected = (["results.json", "report.md"] + [f"frequency_response_d{d}.png" for d in degrees]
                + ["frequency_response.png", "k_sweep.png"])
    assert [p.name for p in paths] == expected
    assert sorted(os.listdir(out)) == sorted(expected)  # no temp files left
    assert all(p.parent == out and p.is_file() for p in paths)


def test_results_json_is_to_json(result, written):
    out, _ = written
    text = (out / "results.json").read_text(encoding="utf-8")
    assert text == result.to_json()
    assert json.loads(text) == result.payload


def test_pngs_are_valid_and_nontrivial(written):
    out, paths = written
    for p in paths:
        if p.suffix == ".png":
            data = p.read_bytes()
            assert data[:8] == PNG_MAGIC, p.name
            assert len(data) > 10_000, p.name


def test_report_headline_rows(result, written):
    out, _ = written
    report = (out / "report.md").read_text(encoding="utf-8")
    s = result.payload["summary"]
    lmax = result.payload["config"]["lmax"]
    for d in s:
        assert f"### d = {d} (L = 2, predicted ceiling dL = {s[d]['ceiling']}" in report
    for l in range(lmax + 1):
        rows = _headline_row(report, l)
        assert len(rows) == len(s), (l, rows)  # one row per d
    for d, sd in s.items():
        for l in range(1, lmax + 1):
            rho = f"{sd['rho'][str(l)]:.3f}"
            assert any(rho in row for row in _headline_row(report, l)), (d, l)
    for row in _headline_row(report, 0):
        cols = [c.strip() for c in row.strip("|").split("|")]
        assert cols[2:] == ["undefined"] * 5  # rho, R2, gain, measured, agrees
    assert "l = 0: the target is constant" in report


def test_report_sections(result, written):
    out, _ = written
    report = (out / "report.md").read_text(encoding="utf-8")
    paper = result.payload["paper"]
    assert "## Paper vs this run" in report
    assert f"| rho(4) | {paper['rho']['4']:.3f} |" in report
    assert f"| rho(5) | {paper['rho']['5']:.3f} |" in report
    assert f"| cliff ratio rho(4)/rho(5) | {paper['cliff_ratio']:.1f} |" in report
    assert f"| R2_inj(4) | {paper['r2_inj']['4']:.3f} |" in report
    assert f"| R2_inj(5) | {paper['r2_inj']['5']:.3f} |" in report
    assert "## Capacity (k sweep)" in report and "not fitted" in report  # d=2 at m=2
    assert "| 1 (9) |" in report and "| 2 (18) |" in report
    assert "d = 1: rho(2) changes by" in report
    assert "<details>" in report and "</details>" in report
    assert "| FakeBackbone_0 | 2 | 4 |" in report
    assert "noise floor is unstable" in report and "excludes 0" in report
    assert "Overall: the measurement agrees" in report
    assert "undercovers" in report and "0.80-0.85" in report
    assert "Recoverable: mean rho >= 0.5; blind: |mean rho| <= 0.2" in report
    assert "e3nn " in report and "numpy " in report
    for name in ("frequency_response_d1.png", "frequency_response_d2.png",
                 "frequency_response.png", "k_sweep.png"):
        assert f"![{name}]({name})" in report
    assert "synthetic test set, 300 of 300 frames" in report
    assert "(C1, O2)" in report and " meV" in report
    assert "-0.000" not in report
    assert report.splitlines()[-1].startswith("Run time: ")


def test_rewrite_is_identical_up_to_timing(result, written, tmp_path):
    out, _ = written
    other = DiagnoseResult(payload=copy.deepcopy(result.payload), seconds=result.seconds + 12.3)
    paths = other.save(tmp_path / "again")
    first = (out / "report.md").read_text(encoding="utf-8").splitlines()
    second = (tmp_path / "again" / "report.md").read_text(encoding="utf-8").splitlines()
    assert first[:-1] == second[:-1]
    assert first[-1] != second[-1]
    for p in paths:  # the plots and results.json are byte-identical
        if p.name != "report.md":
            assert p.read_bytes() == (out / p.name).read_bytes(), p.name


def test_plot_error_writes_nothing(result, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    def boom(*args, **kwargs):
        raise RuntimeError("plotting failed")

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(_report, "_draw_response", boom)
    with pytest.raises(RuntimeError, match="plotting failed"):
        result.save(fresh)
    assert not fresh.exists()
    assert plt.get_fignums() == []

    # the last plot failing, after the others were rendered: still nothing written
    monkeypatch.undo()
    existing = tmp_path / "existing"
    existing.mkdir()
    monkeypatch.setattr(_report, "k_sweep_figure", boom)
    with pytest.raises(RuntimeError, match="plotting failed"):
        result.save(existing)
    assert os.listdir(existing) == []
    assert plt.get_fignums() == []


def test_report_error_writes_nothing(result, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("bad content")

    monkeypatch.setattr(_report, "render_report", boom)
    with pytest.raises(ValueError):
        result.save(tmp_path / "x", plots=False)
    assert not (tmp_path / "x").exists()


def test_no_plots(result, tmp_path):
    paths = result.save(tmp_path / "np", plots=False)
    assert [p.name for p in paths] == ["results.json", "report.md"]
    assert sorted(os.listdir(tmp_path / "np")) == ["report.md", "results.json"]
    assert "No plots were written." in (tmp_path / "np" / "report.md").read_text()


def _strip_energy(payload):
    p = copy.deepcopy(payload)
    for s in p["summary"].values():
        s["r2_inj"] = {k: None for k in s["r2_inj"]}
        s["r2_inj_ci"] = {k: None for k in s["r2_inj_ci"]}
    for row in p["probes"]:
        row["r2_inj"] = None
    for c in p["cells"]:
        c["r2_inj"] = None
    for b in p["backbones"]:
        b["eps_eV"] = None
    return p


def test_no_energy_panel_and_report(result):
    import matplotlib.pyplot as plt

    payload = _strip_energy(result.payload)
    fig = _report.frequency_response_figure(payload, [2])
    try:
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    finally:
        plt.close(fig)
    assert "no energy: R2_inj undefined" in texts
    report = _report.render_report(DiagnoseResult(payload=payload, seconds=1.0))
    assert "| R2_inj(4) | 0.374 | undefined |" in report
    assert "none (no energy)" in report


def test_lmax_below_boundary_plus_one(result):
    """lmax = 4: rho(5) absent; the paper table says undefined, the boundary says why."""
    p = copy.deepcopy(result.payload)
    p["config"]["lmax"] = 4
    for s in p["summary"].values():
        for key in ("rho", "rho_ci", "r2_inj", "r2_inj_ci", "gain", "gain_ci"):
            s[key].pop("5", None)
    s2 = p["summary"]["2"]
    s2.update(rho_above=None, cliff_ratio=None, cliff_ratio_ci=None, delta_contrast=None,
              delta_contrast_ci=None)
    p["cells"] = [c for c in p["cells"] if c["l"] <= 4]
    p["probes"] = [r for r in p["probes"] if r["l"] <= 4]
    p["k_sweep"] = [r for r in p["k_sweep"] if r["l"] <= 4]
    report = _report.render_report(DiagnoseResult(payload=p, seconds=0.0))
    assert "| rho(5) | 0.078 | undefined |" in report
    assert "rho(5) = not measured (lmax = 4)" in report
    assert "rho(5) was not measured" in report
    assert _headline_row(report, 5) == []


def test_no_d2_and_no_sweep(result):
    p = copy.deepcopy(result.payload)
    del p["summary"]["2"]
    p["cells"] = [c for c in p["cells"] if c["d"] != 2]
    p["probes"] = [r for r in p["probes"] if r["d"] != 2]
    p["k_sweep"] = []
    report = _report.render_report(DiagnoseResult(payload=p, seconds=0.0))
    assert "this run has no such cell, so there is no comparison" in report
    assert "No capacity sweep was run." in report
    assert _report.plot_names(p) == ["frequency_response_d1.png", "frequency_response.png"]


def test_disagreement_verdict(result):
    p = copy.deepcopy(result.payload)
    for c in p["cells"]:
        if c["d"] == 1 and c["l"] == 3:
            c.update(measured="ambiguous", agrees=False)
    p["summary"]["1"]["agreement"] = False
    report = _report.render_report(DiagnoseResult(payload=p, seconds=0.0))
    assert "- d = 1: 1 of 5 defined cells disagree" in report
    assert "l = 3 predicted blind, measured ambiguous" in report
    assert "Overall: the measurement disagrees with spanthm's prediction at d = 1" in report


def test_number_format():
    assert _report._num(None) == "undefined"
    assert _report._num(-0.0001) == "0.000"
    assert _report._num(11.66, 1) == "11.7"
    assert _report._num(-0.0004, signed=True) == "+0.000"
    assert _report._num(0.25, signed=True) == "+0.250"
    assert _report._with_ci(0.5, [None, None]) == "0.500 [undefined]"
    assert _report._with_ci(0.5, [0.4, 0.61234]) == "0.500 [0.400, 0.612]"


def test_capacity_interpretation_from_numbers(result):
    p = copy.deepcopy(result.payload)
    for row in p["k_sweep"]:
        if row["d"] == 1 and row["l"] == 2:
            row["rho"] = 0.6 if row["channels_per_degree"] == 1 else 0.8
        if row["d"] == 1 and row["l"] == 3 and row["channels_per_degree"] == 2:
            row["rho"] = 0.3
    report = _report.render_report(DiagnoseResult(payload=p, seconds=0.0))
    assert ("d = 1: rho(2) changes by +0.200 between the two largest widths (k = 9 and 18): "
            "not saturated") in report
    assert "rho(3) leaves the blind threshold (|rho| <= 0.2) at k = 18." in report
    assert "| 2 (18) | 0.800 | 0.300 | not fitted | not fitted |" in report
