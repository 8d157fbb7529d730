"""The spectral-injection diagnostic (docs/method.md §2, §5); ``empirical.diagnose`` is
:func:`diagnose`.

The data flow, one module per stage::

    _plan       options + dataset          -> DiagnosePlan
    _features   backbone + dataset + plan  -> FeatureSet
    _cells      FeatureSet + plan          -> BackboneProbes   (SpectralProbe of _probe)
    _summary    [BackboneProbes] + plan    -> DegreeSummary, Cell (statistics, _verdict)
    _result     typed records              -> results.json     (DiagnoseResult.to_dict)
    _report     DiagnoseResult             -> report.md, PNG plots

:func:`diagnose` (``_pipeline``) runs the stages in order; each is usable on its own
(make a plan, keep a :class:`FeatureSet`, fit a :class:`SpectralProbe`). :func:`inject`
gives a dataset with the injected energies and forces.
"""

from ._capacity import REFIT_SEEDS, SATURATION_GAIN, capacity_config, widen_and_refit
from ._cells import BackboneProbes, DegreeFit, as_float, merge_probes, probe_backbone
from ._equivariance import check_sample, rotate_features, wigner
from ._features import (ROTATE_MODES, FeatureSet, atom_features, batch_size, check_cutoff,
                        equivariance_at, equivariance_of, extract_features,
                        feature_equivariance, marked_features, model_dtype, rotate,
                        rotation_record)
from ._injection import (haar_rotations, inject, marked_atoms, marked_direction, signal,
                         signal_coefficients, signal_gradient)
from ._pipeline import (PAPER, FeatureFacts, assemble_result, backbone_facts, common_degrees,
                        diagnose, feature_facts, features_and_probes)
from ._plan import MAX_LMAX, MIN_N_BOOT, DiagnosePlan, auto_k, make_plan, validate_options
from ._probe import IrrepReduction, PCAReduction, SpectralProbe, make_reduction, n_monomials
from ._result import (SCHEMA_VERSION, BackboneRecord, CapacityPoint, CapacityStep, Cell,
                      DegreeHeadline, RefitSpread, probe_label, reported_step,
                      DegreeSummary, DiagnoseResult, Prediction, ProbeRecord)
from ._summary import summarize
from ._verdict import (AGREES, AMBIGUOUS, BLIND, BLIND_BAND, BOUNDARY_NOT_REACHED,
                       CELL_STATUSES, DEGREE_STATUSES, EXCEEDS, NOT_RECOVERED, RECOVERABLE,
                       RECOVERED, STATUS_WORDS, THRESHOLDS, UNDECIDED, UNDEFINED, UNTESTED,
                       VIOLATES, agreement_of, agrees, cell_status, degree_status,
                       measured_ceiling, overall_status, verdict)

__all__ = ["reported_step", "probe_label", "widen_and_refit", "capacity_config", "SATURATION_GAIN", "REFIT_SEEDS",
           "CapacityStep", "RefitSpread", "diagnose", "DiagnoseResult", "MIN_N_BOOT", "inject", "marked_atoms", "marked_direction",
           "haar_rotations", "signal", "signal_coefficients", "signal_gradient",
           "SCHEMA_VERSION", "THRESHOLDS", "PAPER", "verdict", "measured_ceiling",
           "DiagnosePlan", "make_plan", "auto_k", "FeatureSet", "extract_features",
           "model_dtype", "BackboneProbes", "DegreeFit", "probe_backbone", "summarize",
           "SpectralProbe", "IrrepReduction", "PCAReduction", "make_reduction",
           "BackboneRecord", "Cell", "DegreeHeadline", "DegreeSummary", "Prediction",
           "ProbeRecord",
           "CapacityPoint", "as_float", "merge_probes", "atom_features",
           "batch_size", "check_cutoff", "equivariance_at", "marked_features", "rotate",
           "ROTATE_MODES", "equivariance_of", "rotation_record", "feature_equivariance", "check_sample",
           "rotate_features", "wigner",
           "FeatureFacts", "assemble_result", "backbone_facts", "common_degrees",
           "feature_facts", "features_and_probes", "MAX_LMAX", "validate_options",
           "n_monomials", "AMBIGUOUS", "BLIND", "RECOVERABLE", "UNDEFINED", "agrees",
           "AGREES", "BLIND_BAND", "BOUNDARY_NOT_REACHED", "CELL_STATUSES", "DEGREE_STATUSES",
           "EXCEEDS", "NOT_RECOVERED", "RECOVERED", "STATUS_WORDS", "UNDECIDED", "UNTESTED",
           "VIOLATES", "agreement_of", "cell_status", "degree_status", "overall_status"]
