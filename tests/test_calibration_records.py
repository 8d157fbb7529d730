"""Typed records of the C5 calibration and the controls: JSON only at the file boundary,
the committed reference outputs rebuilt byte for byte from their ``results.json``."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from empirical.calibration import C5Cell, C5Config, C5Result, compare
from empirical.calibration._report import c5_heatmap_png, render_c5_report
from empirical.controls import (ControlRow, ControlsConfig, ControlsResult, PlannedControl,
                                render_controls_report)
from empirical.controls._controls import _plan
from empirical.render import MISSING

DOCS = Path(__file__).resolve().parent.parent / "docs"
C5_FILE = DOCS / "c5" / "results.json"
CONTROLS_FILE = DOCS / "controls" / "results.json"


def _seconds(report: Path) -> float:
    return float(re.search(r"Run time: (\d+) s", report.read_text()).group(1))


@pytest.mark.parametrize("cls,file", [(C5Result, C5_FILE), (ControlsResult, CONTROLS_FILE)])
def test_reference_results_round_trip_byte_for_byte(cls, file):
    """``from_dict`` then ``to_json`` gives the committed file back, key for key."""
    text = file.read_text()
    result = cls.from_dict(json.loads(text))
    assert result.to_json() == text
    assert result.to_dict() == json.loads(text)


def test_records_are_typed_dataclasses():
    c5 = C5Result.from_dict(json.loads(C5_FILE.read_text()))
    assert dataclasses.is_dataclass(c5) and isinstance(c5.config, C5Config)
    assert all(isinstance(c, C5Cell) for c in c5.cells)
    assert set(c5.config.coefficients) == set(range(c5.config.lmax + 1))
    assert c5.summary["random"].meet_bar == 71 and c5.agreement is True
    controls = ControlsResult.from_dict(json.loads(CONTROLS_FILE.read_text()))
    assert dataclasses.is_dataclass(controls) and isinstance(controls.config, ControlsConfig)
    assert all(isinstance(c, ControlRow) for c in controls.controls)
    assert controls.controls[0].rho[4] == controls.controls[0].rho_boundary
    assert controls.complete is True and controls.agreement is True
    plan = _plan(available={"aspirin_L2_seed0"}, frames=1000)
    assert all(isinstance(p, PlannedControl) for p in plan)
    # a control probed at d = 3 gets the d = 3 parameters control's rotations
    d3 = next(p for p in plan if p.kind == "parameters" and p.degrees == (3,))
    assert {p.rotations for p in plan if 3 in p.degrees} == {d3.rotations}


def test_reference_reports_and_heat_map_are_rebuilt_from_their_results():
    c5 = C5Result.from_dict(json.loads(C5_FILE.read_text()),
                            seconds=_seconds(DOCS / "c5" / "report.md"))
    assert render_c5_report(c5) == (DOCS / "c5" / "report.md").read_text()
    assert c5_heatmap_png(c5) == (DOCS / "c5" / "c5_heatmap.png").read_bytes()
    controls = ControlsResult.from_dict(json.loads(CONTROLS_FILE.read_text()),
                                        seconds=_seconds(DOCS / "controls" / "report.md"))
    assert render_controls_report(controls) == (DOCS / "controls" / "report.md").read_text()


def test_a_missing_control_keeps_its_short_row_and_prints_undefined():
    payload = json.loads(CONTROLS_FILE.read_text())
    plan = PlannedControl("L = 3", "architecture", "aspirin_L3_seed0", (1, 2), available=False)
    row = ControlRow.missing(plan, 2)
    assert list(row.to_dict()) == ["name", "kind", "backbone", "L", "d", "measured_ceiling",
                                   "predicted_ceiling", "agrees", "status"]
    assert ControlRow.from_dict(row.to_dict()) == row
    payload["controls"].append(row.to_dict())
    payload["complete"] = False
    result = ControlsResult.from_dict(payload)
    assert result.to_dict() == payload and result.complete is False
    # a measured control with no rho above the ceiling prints the one missing word
    result.controls[0] = dataclasses.replace(result.controls[0], rho_above=None)
    report = render_controls_report(result)
    assert f"| 0.980 | {MISSING} | 4 | 4 | yes |" in report
    assert "missing backbone" in report and "aspirin_L3_seed0" in report.splitlines()[-5]


@pytest.mark.parametrize("cls,file,tamper,needle", [
    (C5Result, C5_FILE, lambda p: p["cells"][1].update(rho="0.99"), "cells[1].rho"),
    (C5Result, C5_FILE, lambda p: p["config"].pop("k_rule"), "config: missing k_rule"),
    (ControlsResult, CONTROLS_FILE, lambda p: p["controls"][0].pop("rho"), "no rho"),
    (ControlsResult, CONTROLS_FILE, lambda p: p.update(complete=False), "complete: False"),
], ids=["c5-cell", "c5-config", "controls-row", "controls-complete"])
def test_from_dict_refuses_a_file_that_is_not_a_run(cls, file, tamper, needle):
    payload = json.loads(file.read_text())
    tamper(payload)
    with pytest.raises(ValueError, match=re.escape(needle)):
        cls.from_dict(payload)


def test_compare_reads_records_or_their_files_alike():
    """compare takes the C5 run as a record or as its results.json dictionary."""
    c5 = json.loads(C5_FILE.read_text())
    aspirin = json.loads((DOCS / "diagnose_aspirin" / "results.json").read_text())
    assert compare(C5Result.from_dict(c5), aspirin) == compare(c5, aspirin)
