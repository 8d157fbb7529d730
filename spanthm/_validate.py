"""Validation of user input shared by the library API and the CLI.

Every public function of :mod:`spanthm` validates its arguments here and raises
:class:`ValueError` (bad value) or :class:`TypeError` (bad type) with a message that names
the offending value and what was expected. The CLI turns these into one line on stderr and
exit code 2.
"""

from __future__ import annotations

import numbers
from typing import Iterable

__all__ = ["feature_set", "probe_degree", "degree_L", "parse_feature_list", "power", "method"]

POWERS = ("sym", "tensor")
METHODS = ("exact", "rules", "weights", "numeric", "brute", "all")


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def degree_L(L: object) -> int:
    """Validate a maximal feature degree ``L`` (an integer >= 0)."""
    if not _is_integer(L):
        raise TypeError(f"L must be an integer, got {L!r}")
    if L < 0:
        raise ValueError(f"L must be a non-negative integer, got {L}")
    return int(L)


def probe_degree(d: object) -> int:
    """Validate a probe degree ``d`` (an integer >= 1)."""
    if not _is_integer(d):
        raise TypeError(f"probe degree d must be an integer, got {d!r}")
    if d < 1:
        raise ValueError(f"probe degree d must be >= 1, got {d}")
    return int(d)


def feature_set(features: Iterable[object]) -> tuple[int, ...]:
    """Validate a feature set: a non-empty collection of distinct non-negative integers.

    Returns the degrees sorted ascending as a tuple.
    """
    if isinstance(features, (str, bytes)) or not isinstance(features, Iterable):
        raise TypeError(
            f"features must be a collection of non-negative integers, got {features!r}"
        )
    if isinstance(features, range):      # refuse a huge range before building it
        from ._limits import check_feature_count
        n = max(0, -(-(features.stop - features.start) // features.step))   # len(), unbounded
        check_feature_count(n, features.start + (n - 1) * features.step if n else 0)
    degrees = list(features)
    if len(degrees) > 1:
        from ._limits import check_feature_count
        check_feature_count(len(degrees), max((k for k in degrees if _is_integer(k)),
                                              default=0))
    if not degrees:
        raise ValueError("feature set is empty: give at least one degree, e.g. {0, 1, 2}")
    for k in degrees:
        if not _is_integer(k):
            raise TypeError(f"feature degree must be an integer, got {k!r}")
        if k < 0:
            raise ValueError(f"feature degree must be non-negative, got {k}")
    seen: set[int] = set()
    for k in degrees:
        if int(k) in seen:
            raise ValueError(f"feature degrees must be distinct: {k} appears more than once")
        seen.add(int(k))
    return tuple(sorted(seen))


def parse_feature_list(text: str) -> tuple[int, ...]:
    """Parse a comma-separated feature list such as ``"0,1,2"`` (CLI form)."""
    if text is None or not text.strip():
        raise ValueError("feature list is empty: expected comma-separated degrees such as 0,1,2")
    items = [item.strip() for item in text.split(",")]
    degrees = []
    for item in items:
        if item == "":
            raise ValueError(f"malformed feature list {text!r}: empty entry")
        try:
            value = int(item, 10)
        except ValueError:
            raise ValueError(
                f"malformed feature list {text!r}: {item!r} is not a non-negative integer"
            ) from None
        degrees.append(value)
    return feature_set(degrees)


def power(value: object) -> str:
    """Validate the representation power: ``"sym"`` or ``"tensor"``."""
    if value not in POWERS:
        raise ValueError(f"power must be one of {', '.join(POWERS)}; got {value!r}")
    return str(value)


def method(value: object) -> str:
    """Validate a spectrum method name."""
    if value not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {value!r}")
    return str(value)
