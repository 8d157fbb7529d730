"""The spectral-injection diagnostic (DESIGN §2.3-§2.8, §5); ``empirical.diagnose`` is
:func:`diagnose`.

* :func:`diagnose` runs it: marked direction, Haar-random orientations, injected targets
  :math:`s_l`, SPN probes of the frozen backbone features, metrics with hierarchical
  cluster-bootstrap intervals, and spanthm's prediction cell by cell;
  :meth:`DiagnoseResult.save` writes ``results.json``, ``report.md`` and the plots.
* :func:`inject` gives a dataset with the injected energies and forces.
"""

from ._injection import (haar_rotations, inject, marked_atoms, marked_direction, signal,
                         signal_coefficients, signal_gradient)
from ._run import PAPER, SCHEMA_VERSION, THRESHOLDS, DiagnoseResult, diagnose

__all__ = ["diagnose", "DiagnoseResult", "inject", "marked_atoms", "marked_direction",
           "haar_rotations", "signal", "signal_coefficients", "signal_gradient",
           "SCHEMA_VERSION", "THRESHOLDS", "PAPER"]
