"""The rules that turn measured correlations into verdicts (docs/method.md §2.8).

Two parts, both read from 95 % intervals, never from point estimates alone:

* :func:`cell_status`: one ``(d, l)`` cell. For ``l <= dL`` (predicted recoverable):
  ``"recovered"`` when the interval's lower end is ``>= THRESHOLDS["recoverable"]``,
  ``"not_recovered"`` when its upper end is below it, else ``"undecided"``. For
  ``l > dL`` (predicted blind): ``"blind"`` when the whole interval lies inside
  ``[-BLIND_BAND, BLIND_BAND]``, ``"exceeds"`` when it lies wholly outside, else
  ``"undecided"``. An undefined interval is ``"undecided"``.
* :func:`degree_status`: one probe degree from its cells: ``"untested"`` (nothing above
  ``dL`` measured), ``"violates"`` (some ``l > dL`` exceeds: the theorem is contradicted),
  ``"agrees"`` (boundary recovered, every ``l > dL`` blind), ``"boundary_not_reached"``
  (every ``l > dL`` blind, the boundary not recovered at the widest probe tried: the upper
  bound holds, the features do not carry ``dL`` to this probe), else ``"undecided"``.

:func:`verdict` (the point-estimate label, kept beside the status as ``measured``),
:func:`agrees` and :func:`measured_ceiling` read point estimates; the C5 calibration's bar
and :func:`measured_ceiling` still use them. The thresholds are named once, in
:data:`THRESHOLDS` and :data:`BLIND_BAND`.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

__all__ = ["THRESHOLDS", "RECOVERABLE", "BLIND", "AMBIGUOUS", "UNDEFINED", "verdict",
           "agrees", "measured_ceiling", "BLIND_BAND", "CELL_STATUSES", "DEGREE_STATUSES",
           "RECOVERED", "NOT_RECOVERED", "UNDECIDED", "EXCEEDS", "AGREES", "VIOLATES",
           "BOUNDARY_NOT_REACHED", "UNTESTED", "cell_status", "degree_status",
           "agreement_of", "STATUS_WORDS", "overall_status"]

#: Thresholds on the held-out correlation: ``rho >= recoverable`` is recovered,
#: ``|rho| <= blind`` is blind, anything between is ambiguous.
THRESHOLDS = {"recoverable": 0.5, "blind": 0.2}

RECOVERABLE, BLIND, AMBIGUOUS, UNDEFINED = "recoverable", "blind", "ambiguous", "undefined"

#: Half-width of the band around 0 inside which a predicted-blind cell's whole 95 %
#: interval must lie to be called ``"blind"`` (and wholly outside which it ``"exceeds"``).
BLIND_BAND = 0.2

# cell statuses (``BLIND`` is shared with the point-estimate labels)
RECOVERED, NOT_RECOVERED, UNDECIDED, EXCEEDS = ("recovered", "not_recovered", "undecided",
                                                "exceeds")
CELL_STATUSES = (RECOVERED, NOT_RECOVERED, BLIND, EXCEEDS, UNDECIDED)
# degree statuses
AGREES, VIOLATES, BOUNDARY_NOT_REACHED, UNTESTED = ("agrees", "violates",
                                                    "boundary_not_reached", "untested")
DEGREE_STATUSES = (AGREES, VIOLATES, BOUNDARY_NOT_REACHED, UNDECIDED, UNTESTED)

#: A degree status in words, for reports and printed rows (never a bare "disagrees").
STATUS_WORDS = {AGREES: "agrees", VIOLATES: "VIOLATES the upper bound",
                BOUNDARY_NOT_REACHED: "boundary not reached", UNDECIDED: "undecided",
                UNTESTED: "untested"}


def _bounds(interval) -> Optional[tuple]:
    """``(low, high)`` of an interval (an ``Interval``, a pair or ``None``); ``None`` when
    it or either bound is missing or not finite."""
    if interval is None:
        return None
    try:
        low, high = interval
    except (TypeError, ValueError):
        return None
    if low is None or high is None:
        return None
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def cell_status(l: int, dl: int, interval,
                thresholds: Mapping[str, float] = THRESHOLDS,
                band: float = BLIND_BAND) -> str:
    """The status of cell ``l`` of a probe whose predicted ceiling is ``dl``, read from
    the 95 % ``interval`` ``(low, high)`` of its rho (see the module docstring).

    >>> [cell_status(4, 4, ci) for ci in ((0.55, 0.7), (0.3, 0.45), (0.44, 0.58), None)]
    ['recovered', 'not_recovered', 'undecided', 'undecided']
    >>> [cell_status(5, 4, ci) for ci in ((-0.1, 0.15), (0.25, 0.4), (0.1, 0.3))]
    ['blind', 'exceeds', 'undecided']
    """
    b = _bounds(interval)
    if b is None:
        return UNDECIDED
    low, high = b
    if l <= dl:
        bar = thresholds["recoverable"]
        return RECOVERED if low >= bar else NOT_RECOVERED if high < bar else UNDECIDED
    if -band <= low and high <= band:
        return BLIND
    if low > band or high < -band:
        return EXCEEDS
    return UNDECIDED


def degree_status(statuses: Mapping[int, str], dl: int,
                  widest_boundary: Optional[str] = None) -> str:
    """The status of one probe degree from its cells' statuses (``{l: status}``, the
    measured target degrees) and its predicted ceiling ``dl``. ``widest_boundary`` is the
    boundary cell's status at the widest probe tried (default: ``statuses[dl]``); it
    decides between ``"agrees"`` and ``"boundary_not_reached"``. A ceiling ``dl = 0``
    (``L = 0``) has the constant ``l = 0`` as its boundary, reached by every probe: it
    counts as recovered.

    >>> degree_status({3: "recovered", 4: "recovered", 5: "blind"}, 4)
    'agrees'
    >>> degree_status({4: "recovered", 5: "blind", 6: "exceeds"}, 4)
    'violates'
    >>> degree_status({4: "not_recovered", 5: "blind"}, 4)
    'boundary_not_reached'
    >>> degree_status({4: "undecided", 5: "blind"}, 4), degree_status({4: "recovered"}, 4)
    ('undecided', 'untested')
    """
    above = [s for l, s in statuses.items() if l > dl]
    if not above:
        return UNTESTED
    if EXCEEDS in above:
        return VIOLATES
    boundary = widest_boundary if widest_boundary is not None else statuses.get(dl)
    if dl < 1:      # the boundary is the constant l = 0, which every probe reaches
        boundary = RECOVERED
    if all(s == BLIND for s in above):
        if boundary == RECOVERED:
            return AGREES
        if boundary == NOT_RECOVERED:
            return BOUNDARY_NOT_REACHED
    return UNDECIDED


def agreement_of(status: str) -> Optional[bool]:
    """``summary[d].agreement`` for old readers: ``True`` for ``"agrees"``, ``None`` for
    ``"untested"``, ``False`` otherwise."""
    if status not in DEGREE_STATUSES:
        raise ValueError(f"not a degree status: {status!r} (one of {DEGREE_STATUSES})")
    return True if status == AGREES else None if status == UNTESTED else False


def overall_status(statuses: Sequence[str]) -> str:
    """One status for several degrees: ``"violates"`` if any violates, else
    ``"undecided"``/``"boundary_not_reached"`` if any is, else ``"agrees"`` if any agrees,
    else ``"untested"``."""
    for s in (VIOLATES, UNDECIDED, BOUNDARY_NOT_REACHED, AGREES):
        if s in statuses:
            return s
    return UNTESTED


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
