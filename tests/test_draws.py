"""Issue 23, item 4: each surveyed model (profiled backbone, sweep group) has its own random
draws, derived from the run seed and its name; ``paired`` keeps the shared draws
(docs/method.md §2.9-§2.11). The runs are tiny: 100 frames, d = 1, lmax = 3."""

from __future__ import annotations

import json

import pytest

from empirical.backbone import load as load_backbone
from empirical.cli import main
from empirical.runtime import STREAMS, stream
from empirical.survey import (check_paired, draws_sentence, model_seed, name_key, profile,
                              render_profile_report, survey)

TINY = dict(degrees=[1], frames=100, n_boot=20, progress=False)


def _twins():
    """Two backbones with identical weights (one checkpoint loaded twice): the survey
    names them ``Backbone_0`` and ``Backbone_1``."""
    return [load_backbone("aspirin_L2_seed0").eval() for _ in range(2)]


def _rho(res, model):
    return res.runs[model].summaries[1].rho


# -- the seeds -------------------------------------------------------------------------------

def test_model_seed_is_the_names_stream_and_stable():
    """The seed is ``[seed, STREAMS["model"], name_key(name)]``; the key is SHA-256 of the
    name (pinned: a change of derivation changes every recorded survey, and must show)."""
    assert STREAMS["model"] == 31
    assert name_key("a") == int("ca978112ca1bbdca", 16)      # sha256("a")[:8]
    assert model_seed(0, "a") == stream(0, 31, int("ca978112ca1bbdca", 16))
    assert model_seed(0, "a") != model_seed(0, "b") != model_seed(1, "b")
    assert model_seed(7, "a", paired=True) == 7


@pytest.mark.parametrize("bad", ["false", 1, None])
def test_paired_must_be_a_bool(bad, aspirin):
    with pytest.raises(ValueError, match=f"paired must be true or false, got {bad!r}"):
        check_paired(bad)
    with pytest.raises(ValueError, match="paired must be true or false"):
        survey(models=["aspirin_L2_seed0"], dataset=aspirin, paired=bad, **TINY)


def test_the_report_sentence_names_the_design():
    assert "independent" in draws_sentence({"draws": "independent"})
    assert "`--paired`" in draws_sentence({"draws": "paired"})
    assert "before per-model draws" in draws_sentence({})       # results of earlier versions


# -- the survey ------------------------------------------------------------------------------

def test_identical_weights_under_two_names_get_their_own_draws(aspirin):
    """Two entries with the same weights: independent draws give different seeds and
    different rho; ``paired`` gives both the run seed, and identical rho."""
    own = survey(models=_twins(), dataset=aspirin, **TINY)
    seeds = own.config["model_seeds"]
    assert own.config["draws"] == "independent"
    assert seeds == {n: model_seed(0, n) for n in ("Backbone_0", "Backbone_1")}
    assert [own.runs[n].config["seed"] for n in seeds] == list(seeds.values())
    assert _rho(own, "Backbone_0") != _rho(own, "Backbone_1")
    shared = survey(models=_twins(), dataset=aspirin, paired=True, **TINY)
    assert shared.config["draws"] == "paired"
    assert shared.config["model_seeds"] == {"Backbone_0": 0, "Backbone_1": 0}
    assert _rho(shared, "Backbone_0") == _rho(shared, "Backbone_1")


def test_adding_a_model_changes_no_other_row(aspirin):
    """A model's row depends on its name, not on its place in the list: surveyed alone,
    then after another model, ``aspirin_L2_seed1``'s row and run are the same."""
    alone = survey(models=["aspirin_L2_seed1"], dataset=aspirin, **TINY)
    both = survey(models=["aspirin_L2_seed3", "aspirin_L2_seed1"], dataset=aspirin, **TINY)
    assert [r.model for r in both.rows] == ["aspirin_L2_seed3", "aspirin_L2_seed1"]
    assert both.rows[1].to_dict() == alone.rows[0].to_dict()
    assert both.runs["aspirin_L2_seed1"].to_dict() == alone.runs["aspirin_L2_seed1"].to_dict()
    assert (both.config["model_seeds"]["aspirin_L2_seed1"]
            == alone.config["model_seeds"]["aspirin_L2_seed1"])


def test_cli_survey_paired_is_recorded_and_reported(tmp_path):
    out = tmp_path / "s"
    assert main(["survey", "--models", "aspirin_L2_seed0", "--degrees", "1", "--frames",
                 "100", "--n-boot", "20", "--paired", "--no-plots", "--no-progress",
                 "--out", str(out)]) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["draws"] == "paired" and config["model_seeds"] == {"aspirin_L2_seed0": 0}
    assert "Draws: paired" in (out / "report.md").read_text()


# -- the profile -----------------------------------------------------------------------------

def test_profile_backbones_get_their_own_draws_and_layers_share_them(aspirin):
    """Two backbones of identical weights: their rows differ (independent) or agree
    (paired); the layers of one backbone share its plan seed."""
    kw = dict(dataset=aspirin, d=1, lmax=3, frames=100, n_boot=20, progress=False)
    own = profile(_twins(), **kw)
    by = {(r.backbone, r.layer): r.rho for r in own.rows}
    assert by[("Backbone_0", "blocks.1")] != by[("Backbone_1", "blocks.1")]
    assert own.config["draws"] == "independent"
    assert own.config["model_seeds"]["Backbone_1"] == model_seed(0, "Backbone_1")
    shared = profile(_twins(), paired=True, **kw)
    by = {(r.backbone, r.layer): r.rho for r in shared.rows}
    assert by[("Backbone_0", "blocks.1")] == by[("Backbone_1", "blocks.1")]
    assert by[("Backbone_0", "blocks.0")] == by[("Backbone_1", "blocks.0")]
    assert "Draws: independent" in render_profile_report(own)
    assert "Draws: paired" in render_profile_report(shared)
