"""Many diagnoses at once (docs/method.md §2.9, §2.10).

* :func:`profile` (``empirical profile``): every interaction layer of a backbone at one
  probe degree ``d``, each beside its own predicted ceiling ``d * L_layer``.
* :func:`survey` (``empirical survey``): every model this environment can load (the
  shipped backbones, the adapters' pretrained models, and specs given) at ``d = 1, 2, 3``.
* :func:`model_seed`: each model's own plan seed, from the run seed and its name (the
  independent draws of survey, profile and sweep; ``paired`` shares the run seed).
"""

from ._draws import DRAWS, check_paired, draws_of, draws_sentence, model_seed, name_key
from ._profile import PROFILE_SCHEMA, LayerProfile, ProfileResult, backbone_layers, profile
from ._report import (render_profile_report, render_survey_report, survey_table,
                      write_profile_outputs, write_survey_outputs)
from ._survey import SURVEY_SCHEMA, SurveyResult, SurveyRow, survey, survey_models

__all__ = ["profile", "ProfileResult", "LayerProfile", "backbone_layers", "PROFILE_SCHEMA",
           "survey", "SurveyResult", "SurveyRow", "survey_models", "SURVEY_SCHEMA",
           "render_profile_report", "render_survey_report", "survey_table",
           "write_profile_outputs", "write_survey_outputs",
           "model_seed", "name_key", "DRAWS", "check_paired", "draws_of", "draws_sentence"]
