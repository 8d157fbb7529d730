"""Tests of empirical.diagnostic._report: the files of DiagnoseResult.save (results.json,
report.md, PNG plots), their content, determinism, and all-or-nothing writing.

The result comes from a real (tiny) diagnose run: two fake backbones whose features are
the spherical harmonics (l <= 2) of the marked direction plus noise, on 300 random frames.
Variants are built as typed records (``dataclasses.replace``) or from an edited
``results.json`` dictionary through ``DiagnoseResult.from_dict``; the report reads the
records only, never ``result.to_dict()``.
"""

import copy
import dataclasses
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


def _edited(result, seconds=0.0):
    """A deep copy of ``result.to_dict()`` to edit, and the rebuilder of a result from it."""
    payload = copy.deepcopy(result.to_dict())

    def rebuild(p=payload):
        out = DiagnoseResult.from_dict(p)
        out.seconds = seconds
        return out
    return payload, rebuild


def _line(report, prefix):
    found = [line for line in report.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


def test_files_exist_with_expected_names(result, written):
    out, paths = written
    degrees = result.degrees
    expected = (["results.json", "report.md"] + [f"frequency_response_d{d}.png" for d in degrees]
                + ["frequency_response.png", "k_sweep.png"])
    assert [p.name for p in paths] == expected
    assert sorted(os.listdir(out)) == sorted(expected + [".spectral-ceilings.json"])  # no temp
    assert all(p.parent == out and p.is_file() for p in paths)


def test_results_json_is_to_json(result, written):
    out, _ = written
    text = (out / "results.json").read_text(encoding="utf-8")
    assert text == result.to_json()
    assert json.loads(text) == result.to_dict()


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
    s = result.summaries
    for d in s:
        assert f"### d = {d} (L = 2, predicted ceiling dL = {s[d].ceiling}" in report
    for l in range(result.lmax + 1):
        rows = _headline_row(report, l)
        assert len(rows) == len(s), (l, rows)  # one row per d
    for d, sd in s.items():
        for l in range(1, result.lmax + 1):
            rho = f"{sd.rho[l]:.3f}"
            assert any(rho in row for row in _headline_row(report, l)), (d, l)
    for row in _headline_row(report, 0):
        cols = [c.strip() for c in row.strip("|").split("|")]
        assert cols[2:] == ["undefined"] * 5  # rho, R2, gain, measured, status
    assert "l = 0: the target is constant" in report


def test_report_sections(result, written):
    out, _ = written
    report = (out / "report.md").read_text(encoding="utf-8")
    paper = result.paper
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
    # 60 held-out samples: the blind intervals reach past +-0.2, so both stay undecided
    assert result.statuses == {1: "undecided", 2: "undecided"}
    assert "Overall: d = 1 undecided; d = 2 undecided." in report
    assert "- d = 1: **undecided**" in report and "Status: **undecided** (`undecided`)" in report
    assert "undercovers" in report and "0.80-0.85" in report
    assert "recovered when its lower end >= 0.5" in report
    assert "blind when it lies inside [-0.2, 0.2]" in report
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
    _, rebuild = _edited(result, seconds=result.seconds + 12.3)
    other = rebuild()
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
    assert sorted(os.listdir(tmp_path / "np")) == [".spectral-ceilings.json", "report.md",
                                                   "results.json"]
    assert "No plots were written." in (tmp_path / "np" / "report.md").read_text()


def _strip_energy(result):
    p, rebuild = _edited(result, seconds=1.0)
    for s in p["summary"].values():
        s["r2_inj"] = {k: None for k in s["r2_inj"]}
        s["r2_inj_ci"] = {k: None for k in s["r2_inj_ci"]}
    for row in p["probes"]:
        row["r2_inj"] = None
    for c in p["cells"]:
        c["r2_inj"] = None
    for b in p["backbones"]:
        b["eps_eV"] = None
    return rebuild()


def test_no_energy_panel_and_report(result):
    import matplotlib.pyplot as plt

    stripped = _strip_energy(result)
    fig = _report.frequency_response_figure(stripped, [2])
    try:
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    finally:
        plt.close(fig)
    assert "no energy: R2_inj undefined" in texts
    report = _report.render_report(stripped)
    assert "| R2_inj(4) | 0.374 | undefined |" in report
    assert "none (no energy)" in report


def test_lmax_below_boundary_plus_one(result):
    """lmax = 4: rho(5) absent; the paper table says undefined, the boundary says why."""
    p, rebuild = _edited(result)
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
    report = _report.render_report(rebuild())
    assert "| rho(5) | 0.078 | undefined |" in report
    assert "rho(5) = not measured (lmax = 4)" in report
    assert "rho(5) was not measured" in report
    assert _headline_row(report, 5) == []


def test_no_d2_and_no_sweep(result):
    typed = DiagnoseResult(
        config=result.config, backbones=result.backbones,
        predicted={d: p for d, p in result.predicted.items() if d != 2},
        probes=[r for r in result.probes if r.d != 2],
        summaries={d: s for d, s in result.summaries.items() if d != 2},
        cells=[c for c in result.cells if c.d != 2], k_sweep=[], paper=result.paper,
        warnings=result.warnings)
    report = _report.render_report(typed)
    assert "this run has no such cell, so there is no comparison" in report
    assert "No capacity sweep was run." in report
    assert _report.plot_names(typed) == ["frequency_response_d1.png", "frequency_response.png"]


def _typed_variant(result, **changes):
    fields = dict(config=result.config, backbones=result.backbones, predicted=result.predicted,
                  probes=result.probes, summaries=result.summaries, cells=result.cells,
                  k_sweep=result.k_sweep, paper=result.paper, warnings=result.warnings)
    fields.update(changes)
    return DiagnoseResult(**fields)


def _with_status(result, d, status, cell_changes):
    """``result`` with degree ``d``'s status set and cells ``{l: status}`` replaced."""
    cells = [dataclasses.replace(c, status=cell_changes[c.l])
             if c.d == d and c.l in cell_changes else c for c in result.cells]
    summaries = {**result.summaries,
                 d: dataclasses.replace(result.summaries[d], status=status, agreement=False)}
    return _typed_variant(result, cells=cells, summaries=summaries)


def test_violates_verdict_names_causes_and_failed_backbones(result):
    backbones = [dataclasses.replace(result.backbones[0], equivariant=False,
                                     equivariance_error={"rotation": 0.75, "reflection": 0.5}),
                 dataclasses.replace(result.backbones[1], equivariant=True)]
    variant = _with_status(result, 1, "violates", {3: "exceeds"})
    variant.backbones = backbones
    report = _report.render_report(variant)
    assert "- d = 1: **violates** the upper bound: rho(3) = " in report
    assert "not equivariant" in report and "declared irreps" in report
    assert "target leakage" in report
    assert "The equivariance check failed for: FakeBackbone_0 (max error 0.750" in report
    assert "FakeBackbone_1 (max" not in report
    assert "Overall: d = 1 VIOLATES the upper bound; d = 2 undecided." in report
    assert "disagree" not in report


def test_undecided_verdict_says_what_would_decide(result):
    report = _report.render_report(_with_status(result, 1, "undecided", {2: "undecided"}))
    line = next(ln for ln in report.splitlines() if ln.startswith("- d = 1:"))
    assert "**undecided**" in line and "rho(2) = " in line and "(width " in line
    assert "more frames" in line and "more rotations per configuration" in line
    assert "this run: 1)" in line     # rotations per configuration of the run


def test_boundary_not_reached_verdict(result):
    report = _report.render_report(
        _with_status(result, 2, "boundary_not_reached", {4: "not_recovered"}))
    line = next(ln for ln in report.splitlines() if ln.startswith("- d = 2:"))
    assert "**boundary not reached**" in line and "the upper bound holds" in line
    assert "do not carry degree 4 to this probe" in line


def test_number_format():
    from empirical.render import num, with_interval
    from empirical.diagnostic.statistics import Interval

    assert num(None) == "undefined"
    assert num(-0.0001) == "0.000"
    assert num(11.66, 1) == "11.7"
    assert num(-0.0004, signed=True) == "+0.000"
    assert num(0.25, signed=True) == "+0.250"
    assert with_interval(0.5, [None, None]) == "0.500 [undefined]"
    assert with_interval(0.5, [0.4, 0.61234]) == "0.500 [0.400, 0.612]"
    assert with_interval(0.5, Interval(0.4, 0.61234)) == "0.500 [0.400, 0.612]"


def test_report_formats_through_render():
    """The report has no formatting copies of its own: numbers and PNGs go through
    empirical.render (one missing-value word, one dpi, fixed metadata)."""
    for name in ("_num", "_ci", "_with_ci", "_pyplot", "_png_bytes", "UNDEFINED", "DPI"):
        assert not hasattr(_report, name), name


def test_capacity_interpretation_from_numbers(result):
    rows = []
    for row in result.k_sweep:
        if row.d == 1 and row.l == 2:
            row = dataclasses.replace(row, rho=0.6 if row.channels_per_degree == 1 else 0.8)
        if row.d == 1 and row.l == 3 and row.channels_per_degree == 2:
            row = dataclasses.replace(row, rho=0.3)
        rows.append(row)
    report = _report.render_report(_typed_variant(result, k_sweep=rows))
    assert ("d = 1: rho(2) changes by +0.200 between the two largest widths (k = 9 and 18): "
            "not saturated") in report
    assert "rho(3) leaves the blind threshold (|rho| <= 0.2) at k = 18." in report
    assert "| 2 (18) | 0.800 | 0.300 | not fitted | not fitted |" in report


# ------------------------------------------------------------------ typed records, round trip

def test_report_of_json_round_trip_is_identical(result):
    back = DiagnoseResult.from_dict(json.loads(result.to_json()))
    back.seconds = result.seconds
    names = _report.plot_names(result)
    assert _report.plot_names(back) == names
    assert _report.render_report(back, names) == _report.render_report(result, names)


def test_report_from_results_json_on_disk(result, written):
    """results.json read back from disk renders exactly the report.md written beside it."""
    out, paths = written
    back = DiagnoseResult.from_dict(json.loads((out / "results.json").read_text("utf-8")))
    back.seconds = result.seconds
    pngs = [p.name for p in paths if p.suffix == ".png"]
    assert _report.render_report(back, pngs) == (out / "report.md").read_text("utf-8")


def test_round_trip_plots_identical(result):
    back = DiagnoseResult.from_dict(json.loads(result.to_json()))
    assert _report.render_plots(back) == _report.render_plots(result)


class _NoDict(DiagnoseResult):
    """A result whose results.json dictionary may not be read."""

    def to_dict(self):
        raise AssertionError("the report read result.to_dict()")


def test_report_and_plots_read_only_the_records(result):
    typed = _NoDict(config=result.config, backbones=result.backbones,
                    predicted=result.predicted, probes=result.probes,
                    summaries=result.summaries, cells=result.cells, k_sweep=result.k_sweep,
                    paper=result.paper, warnings=result.warnings, seconds=result.seconds)
    assert _report.render_report(typed) == _report.render_report(result)
    assert sorted(_report.render_plots(typed)) == sorted(_report.plot_names(result))


def test_L_comes_from_the_backbone_records(result):
    """L is the backbones' feature degree, not re-derived as ceiling // d."""
    backbones = [dataclasses.replace(b, L=7) for b in result.backbones]
    report = _report.render_report(_typed_variant(result, backbones=backbones))
    assert "### d = 2 (L = 7, predicted ceiling dL = 4" in report
    assert "### d = 1 (L = 7, predicted ceiling dL = 2" in report


def test_thresholds_come_from_the_config(result):
    config = {**result.config, "thresholds": {"recoverable": 0.6, "blind": 0.1}}
    report = _report.render_report(_typed_variant(result, config=config))
    assert "recovered when its lower end >= 0.6" in report
    assert "blind |rho| <= 0.1" in report
    assert "blind threshold (|rho| <= 0.1)" in report


# ------------------------------------------------------------------ the cliff ratio line

def _with_cliff(result, ratio, ci):
    """``result`` with summary[2]'s cliff ratio and its set replaced (via results.json)."""
    p, rebuild = _edited(result)
    p["summary"]["2"].update(cliff_ratio=ratio, cliff_ratio_ci=ci)
    return _report.render_report(rebuild())


def _cliff_line(report):
    return _line(report, "- Cliff ratio rho(4) / rho(5) = ")


def _paper_cliff(report):
    return _line(report, "| cliff ratio rho(4)/rho(5) | 11.7 | ")


READ_WITH = ("Read it together with rho(5) and its interval, which is the figure to read: the "
             "ratio of a large number to one at the noise floor is unstable (its size and sign "
             "follow the noise).")


def test_cliff_ratio_bounded_set(result):
    ci = {"kind": "interval", "pieces": [[6.1, 40.2]], "abs_lower_bound": 6.1, "level": 0.95,
          "method": "Fieller (bootstrap covariance)"}
    report = _with_cliff(result, 11.3, ci)
    assert _cliff_line(report) == ("- Cliff ratio rho(4) / rho(5) = 11.3, 95 % confidence set "
                                   "[6.1, 40.2]. " + READ_WITH)
    assert _paper_cliff(report) == "| cliff ratio rho(4)/rho(5) | 11.7 | 11.3 [6.1, 40.2] |"
    assert "unbounded;" not in report.split("**d = 2")[1].split("**d =")[0]


def test_cliff_ratio_two_rays(result):
    ci = {"kind": "two_rays", "pieces": [[None, -583.0], [20.4, None]],
          "abs_lower_bound": 20.4, "level": 0.95, "method": "Fieller (bootstrap covariance)"}
    report = _with_cliff(result, 1207.0, ci)
    assert _cliff_line(report) == (
        "- Cliff ratio rho(4) / rho(5) = 1207.0 (95 % confidence set (-inf, -583] U "
        "[20.4, inf): unbounded; |ratio| >= 20.4 is supported). " + READ_WITH)
    assert _paper_cliff(report) == ("| cliff ratio rho(4)/rho(5) | 11.7 | 1207.0 (-inf, -583] U "
                                    "[20.4, inf) (unbounded) |")


def test_cliff_ratio_unbounded(result):
    ci = {"kind": "unbounded", "pieces": [[None, None]], "abs_lower_bound": 0.0, "level": 0.95,
          "method": "Fieller (bootstrap covariance)"}
    report = _with_cliff(result, -3.24, ci)
    assert _cliff_line(report) == (
        "- Cliff ratio rho(4) / rho(5) = -3.2 (95 % confidence set (-inf, inf): unbounded; "
        "no lower bound on |ratio| is supported). " + READ_WITH)
    assert _paper_cliff(report) == ("| cliff ratio rho(4)/rho(5) | 11.7 | -3.2 (-inf, inf) "
                                    "(unbounded) |")


def test_cliff_ratio_one_ray_and_older_files(result):
    ci = {"kind": "ray", "pieces": [[2.5, None]], "abs_lower_bound": 2.5, "level": 0.9,
          "method": "Fieller (bootstrap covariance)"}
    assert _cliff_line(_with_cliff(result, 8.0, ci)).startswith(
        "- Cliff ratio rho(4) / rho(5) = 8.0 (90 % confidence set [2.5, inf): unbounded; "
        "|ratio| >= 2.5 is supported). ")
    # schema 1: a percentile [low, high] list, labelled as such
    line = _cliff_line(_with_cliff(result, 11.66, [8.04, 15.2]))
    assert line.startswith("- Cliff ratio rho(4) / rho(5) = 11.7, 95 % percentile interval "
                           "[8.0, 15.2] (a schema 1 file")
    # undefined ratio
    assert _cliff_line(_with_cliff(result, None, None)).startswith(
        "- Cliff ratio rho(4) / rho(5) = undefined. ")


def test_cliff_ratio_of_the_run_is_a_fieller_set(result, written):
    """The run's own set, as written, with the note on how to read the ratio."""
    out, _ = written
    report = (out / "report.md").read_text(encoding="utf-8")
    s = result.summaries[2]
    text = str(_report.ratio_set(s.cliff_ratio_ci))
    assert f"= {s.cliff_ratio:.1f}" in _cliff_line(report) and text in _cliff_line(report)
    assert "Fieller-type confidence set from the bootstrap covariance" in report
    assert "read it with rho(5) and its interval" in report


def test_records_hold_intervals_and_json_holds_lists(result):
    """Between the typed records an interval is a statistics.Interval (None where the
    quantity has none); results.json still writes [low, high] lists, and reading it back
    gives the same records."""
    from empirical.diagnostic import CapacityPoint
    from empirical.diagnostic.statistics import Interval

    s = result.summaries[2]
    assert s.rho_ci[0] is None and isinstance(s.rho_ci[1], Interval)
    assert isinstance(s.gain_ci[1], Interval) and isinstance(s.delta_contrast_ci, Interval)
    assert all(c.rho_ci is None if c.l == 0 else isinstance(c.rho_ci, Interval)
               for c in result.cells)
    assert all(isinstance(p, CapacityPoint) for p in result.k_sweep)
    payload = json.loads(result.to_json())
    assert payload == result.to_dict()              # plain lists, no tuples, in the dict too
    assert isinstance(result.to_dict()["summary"]["2"]["rho_ci"]["1"], list)
    assert isinstance(result.to_dict()["cells"][1]["rho_ci"], list)
    back = DiagnoseResult.from_dict(payload)
    assert back.summaries == result.summaries and back.cells == result.cells
    assert back.to_dict() == payload
