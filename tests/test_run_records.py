"""The survey's, the profile's and the sweep's results as typed records (docs/method.md §5):
one degree headline shared by their rows, JSON only at the file boundary (the committed
reference runs read back and written again byte for byte), every report through
:mod:`empirical.render` (a missing value is "undefined", a PNG the same bytes on a rerun)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import empirical.survey._report as survey_report
import empirical.sweep._report as sweep_report
from empirical.diagnostic import DegreeHeadline, DegreeSummary
from empirical.diagnostic.statistics import Interval
from empirical.render import MISSING
from empirical.survey import (LayerProfile, ProfileResult, SurveyResult, SurveyRow,
                              render_profile_report, render_survey_report)
from empirical.sweep import SweepResult, SweepRunRow

DOCS = Path(__file__).resolve().parent.parent / "docs"
REFERENCE = {SurveyResult: DOCS / "survey", ProfileResult: DOCS / "profiles",
             SweepResult: DOCS / "sweeps" / "training"}


def _read(cls):
    return cls.from_dict(json.loads((REFERENCE[cls] / "results.json").read_text("utf-8")))


@pytest.mark.parametrize("cls", list(REFERENCE), ids=lambda c: c.__name__)
def test_a_reference_run_reads_back_and_writes_the_same_file(cls):
    text = (REFERENCE[cls] / "results.json").read_text("utf-8")
    result = cls.from_dict(json.loads(text))
    assert result.to_json() == text
    assert "seconds" not in json.loads(result.to_json())


@pytest.mark.parametrize("cls", list(REFERENCE), ids=lambda c: c.__name__)
def test_a_file_of_another_kind_is_refused(cls):
    with pytest.raises(ValueError, match="not the results of"):
        cls.from_dict({"schema": "something-else/1"})


def test_the_three_row_classes_share_one_degree_headline():
    for row in (SurveyRow, LayerProfile, SweepRunRow):
        fields = {f.name: f.type for f in dataclasses.fields(row)}
        assert fields["headline"] in (DegreeHeadline, "DegreeHeadline"), row
        assert not {"d", "L", "predicted_ceiling", "measured_ceiling", "agreement"} & set(fields)
    survey, sweep = _read(SurveyResult), _read(SweepResult)
    for row in (survey.rows[0], sweep.rows[0]):
        assert isinstance(row.headline.rho_boundary_ci, Interval)
        assert row.headline.rho_boundary_ci.low <= row.headline.rho_boundary
    assert isinstance(_read(ProfileResult).rows[0].rho_ci[1], Interval)


def test_the_headline_is_the_summary_projected():
    ci = {2: [0.8, 0.9], 3: [-0.1, 0.1]}
    s = DegreeSummary(d=1, ceiling=2, measured_ceiling=2, rho={2: 0.85, 3: 0.0}, rho_ci=ci,
                      r2_inj={}, r2_inj_ci={}, gain={}, gain_ci={}, rho_boundary=0.85,
                      rho_above=0.0, cliff_ratio=None, cliff_ratio_ci=None,
                      delta_contrast=None, delta_contrast_ci=None, agreement=True)
    h = DegreeHeadline.from_summary(s)
    assert (h.d, h.L, h.predicted_ceiling, h.measured_ceiling, h.agreement) == (1, 2, 2, 2, True)
    assert h.rho_boundary_ci == Interval(0.8, 0.9) and h.rho_above_ci == Interval(-0.1, 0.1)
    unmeasured = DegreeHeadline.from_summary(dataclasses.replace(s, rho_ci={2: [0.8, 0.9]}))
    assert unmeasured.rho_above_ci is None and unmeasured.to_dict()["rho_above_ci"] is None
    assert DegreeHeadline.from_dict(h.to_dict()) == h


@pytest.mark.parametrize("figure, cls", [(survey_report.survey_figure, SurveyResult),
                                         (survey_report.profile_figure, ProfileResult),
                                         (sweep_report.sweep_figure, SweepResult)],
                         ids=["survey", "profile", "sweep"])
def test_a_figure_is_the_same_bytes_on_a_rerun(figure, cls):
    from empirical.render import png_bytes

    result = _read(cls)
    first = png_bytes(figure(result))
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and png_bytes(figure(result)) == first


def test_reports_render_through_the_one_module():
    for module in (survey_report, sweep_report):
        for local in ("_num", "_ci", "_png", "_pyplot"):
            assert not hasattr(module, local), f"{module.__name__}.{local}"


def _undefined(headline: DegreeHeadline) -> DegreeHeadline:
    return dataclasses.replace(headline, measured_ceiling=None, rho_above=None,
                               rho_above_ci=None)


def test_a_missing_value_is_undefined_in_every_report():
    survey = _read(SurveyResult)
    row = dataclasses.replace(survey.rows[0], layers=None, parameters=None, layer=None,
                              eps_eV=None, headline=_undefined(survey.rows[0].headline))
    text = render_survey_report(dataclasses.replace(survey, rows=[row]))
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row.model} | "))
    assert line.count(MISSING) >= 4 and " - " not in line
    models = [ln for ln in text.splitlines() if ln.startswith(f"| {row.model} | ")][1]
    assert models.count(MISSING) == 2

    profile = _read(ProfileResult)
    text = render_profile_report(profile)
    layer = next(ln for ln in text.splitlines() if ln.startswith("| blocks.0 |"))
    assert f"| {MISSING} |" in layer and " - " not in layer          # rho at l = 0

    sweep = _read(SweepResult)
    row = dataclasses.replace(sweep.rows[0], epoch=None,
                              headline=_undefined(sweep.rows[0].headline))
    text = sweep_report.render_sweep_report(dataclasses.replace(sweep, rows=[row]))
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row.group} | "))
    assert line.count(MISSING) >= 4 and " - " not in line
