"""The one rule that turns a measured correlation into a verdict (docs/method.md §2.8).

:func:`verdict` is used by :func:`empirical.diagnose`, the C5 calibration, the controls,
the calibration-versus-aspirin comparison and :mod:`empirical.testing`; its thresholds are
named once, in :data:`THRESHOLDS`.
"""

from __future__ import annotations

from typing import Mapping, Optional

__all__ = ["THRESHOLDS", "RECOVERABLE", "BLIND", "AMBIGUOUS", "UNDEFINED", "verdict",
           "agrees", "measured_ceiling"]

#: Thresholds on the held-out correlation: ``rho >= recoverable`` is recovered,
#: ``|rho| <= blind`` is blind, anything between is ambiguous.
THRESHOLDS = {"recoverable": 0.5, "blind": 0.2}

RECOVERABLE, BLIND, AMBIGUOUS, UNDEFINED = "recoverable", "blind", "ambiguous", "undefined"


def verdict(rho: Optional[float], thresholds: Mapping[str, float] = THRESHOLDS) -> str:
    """``"recoverable"``, ``"blind"``, ``"ambiguous"`` or ``"undefined"`` (``rho`` None).

    Examples
    --------
    >>> [verdict(r) for r in (0.93, 0.5, 0.35, -0.2, 0.01, None)]
    ['recoverable', 'recoverable', 'ambiguous', 'blind', 'blind', 'undefined']
    """
    if rho is None:
        return UNDEFINED
    if rho >= thresholds["recoverable"]:
        return RECOVERABLE
    if abs(rho) <= thresholds["blind"]:
        return BLIND
    return AMBIGUOUS


def agrees(rho: Optional[float], predicted: str,
           thresholds: Mapping[str, float] = THRESHOLDS) -> Optional[bool]:
    """Whether the measured verdict equals ``predicted`` (``None`` where ``rho`` is
    undefined).

    >>> agrees(0.9, "recoverable"), agrees(0.3, "blind"), agrees(None, "blind")
    (True, False, None)
    """
    if predicted not in (RECOVERABLE, BLIND):
        raise ValueError(f"predicted must be 'recoverable' or 'blind', got {predicted!r}")
    v = verdict(rho, thresholds)
    return None if v == UNDEFINED else v == predicted


def measured_ceiling(rho_by_l: Mapping[int, Optional[float]],
                     thresholds: Mapping[str, float] = THRESHOLDS) -> Optional[int]:
    """The highest ``l`` whose verdict is recoverable (``None`` when none is).

    >>> measured_ceiling({0: None, 1: 0.9, 2: 0.8, 3: 0.05, 4: 0.6})
    4
    """
    found = [int(l) for l, r in rho_by_l.items() if verdict(r, thresholds) == RECOVERABLE]
    return max(found, default=None)
