"""empirical: the measured half (spectral-injection diagnostic).

``empirical.diagnose(...)`` runs the diagnostic (:func:`empirical.diagnostic.diagnose`,
imported on first use so that ``import empirical`` stays light); the subpackages are
``data``, ``backbone``, ``diagnostic``, ``calibration`` (C5), ``controls``, ``adapters``
and ``testing``; :mod:`empirical.reproduce` runs them all into one folder.
"""


def __getattr__(name):
    if name in ("diagnose", "DiagnoseResult"):
        from . import diagnostic
        return getattr(diagnostic, name)
    raise AttributeError(f"module 'empirical' has no attribute {name!r}")
