"""The controls of docs/method.md §4: each varies one thing (capacity, probe parameters,
activation, architecture, training) and must leave the ceiling where the theorem puts it
(:func:`run_controls`, ``empirical controls``)."""

from ._controls import (CONTROL_BACKBONES, KINDS, ControlRow, ControlRun, ControlsConfig,
                        ControlsResult, PlannedControl, run_controls)
from ._report import render_controls_report, write_controls_outputs

__all__ = ["run_controls", "ControlsResult", "ControlsConfig", "ControlRow", "ControlRun",
           "PlannedControl", "CONTROL_BACKBONES", "KINDS",
           "render_controls_report", "write_controls_outputs"]
