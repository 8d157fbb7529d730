"""The synthetic C5 calibration (docs/method.md §3): structures with exact ground truth,
probed like aspirin (:func:`run_c5`, ``empirical c5``), and its comparison with an aspirin
diagnostic (:func:`compare`, ``empirical compare``). The controls live in
:mod:`empirical.controls`, the one-folder reproduction in :mod:`empirical.reproduce`."""

from ._c5 import (CALIBRATION_BAR, MAX_STRUCTURES, MAX_TRAIN_EPOCHS, C5Cell, C5Config, C5Result, IdealFeatures, SourceSummary,
                  TrainingRecord, run_c5)
from ._compare import (compare, validate_c5_results, validate_diagnose_results,
                       write_compare_outputs)
from ._structures import c5_structures, reference_positions, synthetic_energy

__all__ = ["compare", "write_compare_outputs", "run_c5", "C5Result", "C5Config", "C5Cell",
           "SourceSummary", "TrainingRecord", "IdealFeatures",
           "CALIBRATION_BAR", "c5_structures", "reference_positions", "synthetic_energy",
           "validate_c5_results", "validate_diagnose_results", "MAX_STRUCTURES",
           "MAX_TRAIN_EPOCHS"]
