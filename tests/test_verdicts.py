"""The two-part verdict of empirical.diagnostic._verdict (docs/method.md §2.8): cell
statuses and degree statuses read from 95 % intervals, their records in results.json
(schema 3), and the acceptance test of issue 23 (a backbone that carries a degree above
its ceiling "violates", and its report names the failed equivariance check)."""

import dataclasses
import math

import numpy as np
import pytest

from empirical.diagnostic._result import SCHEMA_VERSION
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.data import Dataset
from empirical.diagnostic import (BLIND_BAND, DEGREE_STATUSES, THRESHOLDS, DegreeSummary,
                                  DiagnoseResult, agreement_of, cell_status, degree_status,
                                  diagnose)
from empirical.diagnostic import _report
from empirical.diagnostic.statistics import Interval

BAR = THRESHOLDS["recoverable"]

bounds = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@st.composite
def intervals(draw):
    """A 95 % interval of rho: two ordered bounds in [-1, 1], or an undefined one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, (None, None), (0.3, None)]))
    a, b = draw(bounds), draw(bounds)
    return (min(a, b), max(a, b))


@st.composite
def boundary_containing_half(draw):
    low = draw(st.floats(min_value=-1.0, max_value=BAR, allow_nan=False))
    high = draw(st.floats(min_value=BAR, max_value=1.0, allow_nan=False))
    return (low, high)


# ----------------------------------------------------------------------- cell statuses

@given(ci=intervals(), l=st.integers(1, 12), dl=st.integers(0, 12))
@settings(max_examples=300)
def test_cell_status_follows_the_interval(ci, l, dl):
    status = cell_status(l, dl, ci)
    defined = ci is not None and None not in ci
    if not defined:
        assert status == "undecided"
        return
    low, high = ci
    if l <= dl:
        assert status in ("recovered", "not_recovered", "undecided")
        assert (status == "recovered") == (low >= BAR)
        assert (status == "not_recovered") == (high < BAR)
    else:
        assert status in ("blind", "exceeds", "undecided")
        assert (status == "blind") == (-BLIND_BAND <= low and high <= BLIND_BAND)
        assert (status == "exceeds") == (low > BLIND_BAND or high < -BLIND_BAND)


def test_the_two_training_sweep_cells_of_the_issue_are_both_undecided():
    """Epoch 2, rho(6) = 0.512 [0.44, 0.58], and epoch 5, 0.489 [0.41, 0.56], were
    "agrees" and "disagrees" on point estimates; from intervals both are undecided."""
    assert cell_status(6, 6, (0.44, 0.58)) == cell_status(6, 6, (0.41, 0.56)) == "undecided"


@pytest.mark.parametrize("ci", [(float("nan"), 0.9), (0.6, float("inf")), Interval(None, 0.9)])
def test_an_undefined_interval_is_undecided(ci):
    assert cell_status(2, 2, ci) == cell_status(3, 2, ci) == "undecided"


# --------------------------------------------------------------------- degree statuses

@given(boundary=boundary_containing_half(), above=st.lists(intervals(), max_size=4),
       below=st.lists(intervals(), max_size=3), dl=st.integers(1, 6))
@settings(max_examples=300)
def test_no_degree_agrees_when_its_boundary_interval_contains_one_half(boundary, above,
                                                                       below, dl):
    statuses = {dl: cell_status(dl, dl, boundary)}
    statuses.update({l: cell_status(l, dl, ci) for l, ci in zip(range(dl + 1, 13), above)})
    statuses.update({l: cell_status(l, dl, ci) for l, ci in zip(range(1, dl), below)})
    if boundary[0] < BAR:                    # 0.5 inside, not at the lower end itself
        assert degree_status(statuses, dl) != "agrees"
    s = _summary(dl, {dl: boundary, **dict(zip(range(dl + 1, 13), above))})
    if boundary[0] < BAR:
        assert s.status != "agrees" and s.agreement is not True


def _summary(dl, cis):
    """A DegreeSummary with these intervals and no status (derived from them)."""
    ci = {l: (None if c is None else Interval(*c)) for l, c in cis.items()}
    rho = {l: None for l in ci}
    return DegreeSummary(d=1, ceiling=dl, measured_ceiling=None, rho=rho, rho_ci=ci,
                         r2_inj=rho, r2_inj_ci=ci, gain=rho, gain_ci=ci, rho_boundary=None,
                         rho_above=None, cliff_ratio=None, cliff_ratio_ci=None,
                         delta_contrast=None, delta_contrast_ci=None, agreement=None)


@given(statuses=st.dictionaries(st.integers(1, 10),
                                st.sampled_from(["recovered", "not_recovered", "undecided",
                                                 "blind", "exceeds"]), max_size=8),
       dl=st.integers(1, 8))
@settings(max_examples=300)
def test_degree_status_rules(statuses, dl):
    status = degree_status(statuses, dl)
    above = [s for l, s in statuses.items() if l > dl]
    assert status in DEGREE_STATUSES
    assert (status == "untested") == (not above)
    assert (status == "violates") == (bool(above) and "exceeds" in above)
    if status == "agrees":
        assert statuses[dl] == "recovered" and all(s == "blind" for s in above)
    if status == "boundary_not_reached":
        assert statuses[dl] == "not_recovered" and all(s == "blind" for s in above)


def test_the_widest_probe_decides_the_boundary():
    statuses = {2: "not_recovered", 3: "blind"}
    assert degree_status(statuses, 2) == "boundary_not_reached"
    assert degree_status(statuses, 2, widest_boundary="recovered") == "agrees"


def test_agreement_is_true_only_for_agrees():
    assert [agreement_of(s) for s in DEGREE_STATUSES] == [True, False, False, False, None]
    with pytest.raises(ValueError, match="'disagrees'"):
        agreement_of("disagrees")


def test_a_schema_2_summary_gets_its_status_from_its_intervals():
    """A results.json written before schema 3 has no status: it is derived on reading."""
    s = _summary(2, {1: (0.9, 0.95), 2: (0.6, 0.8), 3: (-0.1, 0.1)})
    back = DegreeSummary.from_dict(1, {k: v for k, v in s.to_dict().items() if k != "status"})
    assert s.status == back.status == "agrees"
    wide = _summary(2, {2: (0.45, 0.8), 3: (-0.1, 0.1)})
    assert wide.status == "undecided"


# ------------------------------------------------------------- the acceptance test double

class _LabFrameY5:
    """Declared 1x1o+11x0e: the marked bond direction (atoms 0, 1) as its one vector, and
    the bond's lab-frame Y_5 declared as eleven scalars, in every atom. Not equivariant
    (the "scalars" turn with the configuration) and carrying degree 5, above the ceiling
    dL = 1 of a d = 1 probe."""

    irreps_out = o3.Irreps("1x1o+11x0e")
    dtype = torch.float64

    def node_features(self, positions, numbers):
        u = positions[1] - positions[0]
        u = u / u.norm()
        y5 = o3.spherical_harmonics(5, u.double(), normalize=True, normalization="component")
        return torch.cat([u.double(), y5]).expand(positions.shape[0], -1).clone()


@pytest.fixture(scope="module")
def violating():
    rng = np.random.default_rng(3)
    n = 300
    data = Dataset(rng.normal(size=(n, 3, 3)), np.array([6, 8, 1]),
                   rng.normal(scale=0.05, size=n), rng.normal(size=(n, 3, 3)),
                   metadata={"source": "synthetic test set", "marked_bond": {"atoms": [0, 1]}})
    return diagnose([_LabFrameY5()], data, degrees=(1,), lmax=6, n_boot=50, k_sweep=(),
                    progress=False)


def test_a_lab_frame_degree_5_declared_as_scalars_violates(violating):
    s = violating.summaries[1]
    cells = {c.l: c for c in violating.cells_of(1)}
    assert s.ceiling == 1 and cells[1].status == "recovered"
    assert cells[5].status == "exceeds" and cells[5].rho_ci[0] > 0.4
    assert s.status == "violates" and s.agreement is False
    assert violating.backbones[0].equivariant is False
    payload = violating.to_dict()
    assert payload["schema_version"] == SCHEMA_VERSION
    assert payload["summary"]["1"]["status"] == "violates"
    assert {c["l"]: c["status"] for c in payload["cells"]}[5] == "exceeds"
    assert DiagnoseResult.from_dict(payload).summaries[1].status == "violates"


def test_the_report_of_a_violation_names_the_failed_equivariance_check(violating):
    report = _report.render_report(violating)
    assert "Status: **VIOLATES the upper bound** (`violates`)" in report
    line = next(ln for ln in report.splitlines() if ln.startswith("- d = 1:"))
    assert "**violates** the upper bound" in line and "rho(5) = " in line
    assert "The equivariance check failed for: _LabFrameY5_0 (max error" in report
    assert "declared irreps" in report and "target leakage" in report
    assert "disagree" not in report.lower()


def test_no_cell_reads_agrees_where_its_boundary_interval_contains_one_half(violating):
    """Over a real result: push the boundary interval across 0.5 and re-derive."""
    s = violating.summaries[1]
    for ci in [(0.3, 0.7), (0.49, 0.51), (-0.2, 0.5000001)]:
        moved = dataclasses.replace(s, rho_ci={**s.rho_ci, 1: Interval(*ci)}, status=None)
        assert moved.status != "agrees" and not math.isnan(ci[0])


# ------------------------------------------------- every committed reference result

def _agreeing_boundaries(payload):
    """``(where, boundary interval)`` of every record in a results.json dictionary that
    reads ``agrees``: a diagnose summary (its ``rho_ci`` at ``ceiling``), a survey or
    sweep row (``rho_boundary_ci``), a profile row (``rho_ci`` at ``predicted_ceiling``),
    nested runs included."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("status") == "agrees":
                if "rho_boundary_ci" in node:
                    found.append((where, node["rho_boundary_ci"]))
                elif "ceiling" in node and isinstance(node.get("rho_ci"), dict):
                    found.append((where, node["rho_ci"].get(str(node["ceiling"]))))
                elif "predicted_ceiling" in node and isinstance(node.get("rho_ci"), dict):
                    found.append((where, node["rho_ci"].get(str(node["predicted_ceiling"]))))
                else:
                    found.append((where, None))
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(payload, "")
    return found


def test_no_committed_reference_result_agrees_with_a_boundary_interval_containing_one_half():
    """Every results.json under docs/ (diagnose, survey, profile, sweep, nested runs):
    where a record reads ``agrees`` its boundary interval's lower end is >= 0.5."""
    import json
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "docs").rglob("results.json"))
    assert len(files) >= 4
    checked = 0
    for path in files:
        payload = json.loads(path.read_text())
        for where, ci in _agreeing_boundaries(payload):
            assert ci is not None and ci[0] is not None and ci[0] >= BAR, (path, where, ci)
            checked += 1
        if {"schema_version", "summary", "backbones", "predicted"} <= set(payload):
            # a diagnose file of an older schema: its statuses as the reader derives them
            for d, s in DiagnoseResult.from_dict(payload).summaries.items():
                if s.status == "agrees":
                    ci = s.rho_ci.get(s.ceiling)
                    assert ci is not None and ci[0] >= BAR, (path, d, ci)
                    checked += 1
    assert checked > 0


def test_the_reference_scan_catches_an_agreeing_record_whose_interval_contains_one_half():
    bad = {"summary": {"3": {"status": "agrees", "ceiling": 6, "rho_ci": {"6": [0.4, 0.8]}}},
           "rows": [{"status": "agrees", "rho_boundary_ci": [0.6, 0.9]}]}
    found = dict(_agreeing_boundaries(bad))
    assert found["/summary/3"] == [0.4, 0.8] and found["/rows/0"] == [0.6, 0.9]
