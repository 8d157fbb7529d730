"""The synthetic C5 calibration (docs/method.md §3): structures with exact ground truth, probed
like aspirin (:func:`run_c5`, ``empirical c5``), and the controls of docs/method.md §4
(:func:`run_controls`, ``empirical controls``)."""

from ._c5 import CALIBRATION_BAR, C5Result, IdealFeatures, run_c5
from ._compare import compare, write_compare_outputs
from ._controls import CONTROL_BACKBONES, ControlsResult, run_controls
from ._reproduce import PRESETS, reproduce
from ._structures import c5_structures, reference_positions, synthetic_energy

__all__ = ["compare", "write_compare_outputs", "reproduce", "PRESETS", "run_controls", "ControlsResult", "CONTROL_BACKBONES", "run_c5", "C5Result", "IdealFeatures", "CALIBRATION_BAR", "c5_structures",
           "reference_positions", "synthetic_energy"]
