"""Validation of user input shared by the library API and the CLI.

Every public function of :mod:`spanthm` validates its arguments here and raises
:class:`ValueError` (bad value) or :class:`TypeError` (bad type) with a message that names
the offending value and what was expected. The CLI turns these into one line on stderr and
exit code 2.
"""

from __future__ import annotations

import numbers
from typing import Iterable

__all__ = ["feature_set", "probe_degree", "degree_L", "parse_feature_list", "power", "method",
           "short"]

POWERS = ("sym", "tensor")
METHODS = ("exact", "rules", "weights", "numeric", "brute", "all")


#: Longest quote of a user value in a message (the rest is elided, its length given).
MAX_QUOTE = 60


def short(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` (``str`` for an int) cut to ``limit`` characters, for messages.

    >>> short("abc"), short(10 ** 70)[-18:]
    ("'abc'", '... (71 characters)')
    """
    if isinstance(value, int) and not isinstance(value, bool):
        text = _int_text(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _int_text(value: int) -> str:
    """Decimal text of an int, or ``about 10^n`` for one too long to print (Python refuses
    ints of more than ``sys.get_int_max_str_digits()`` digits)."""
    if value.bit_length() > 10000:
        digits = int(value.bit_length() * 0.30103)
        return f"{'-' if value < 0 else ''}an integer of about {digits} digits"
    return str(value)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integer(value: object, name: str, low: int, wanted: str) -> int:
    """``value`` as an int ``>= low``: ``TypeError`` when it is not an integer,
    ``ValueError`` ("``name`` must be ``wanted``") when it is below ``low``."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {short(value)}")
    if value < low:
        raise ValueError(f"{name} must be {wanted}, got {short(value)}")
    return int(value)


def degree_L(L: object) -> int:
    """Validate a maximal feature degree ``L`` (an integer >= 0)."""
    return _integer(L, "L", 0, "a non-negative integer")


def probe_degree(d: object) -> int:
    """Validate a probe degree ``d`` (an integer >= 1)."""
    return _integer(d, "probe degree d", 1, ">= 1")


def feature_set(features: Iterable[object]) -> tuple[int, ...]:
    """Validate a feature set: a non-empty collection of distinct non-negative integers.

    Returns the degrees sorted ascending as a tuple.
    """
    if isinstance(features, (str, bytes)) or not isinstance(features, Iterable):
        raise TypeError(
            f"features must be a collection of non-negative integers, got {short(features)}"
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
            raise TypeError(f"feature degree must be an integer, got {short(k)}")
        if k < 0:
            raise ValueError(f"feature degrees must be non-negative integers, got {short(k)}")
    seen: set[int] = set()
    for k in degrees:
        if int(k) in seen:
            raise ValueError(f"feature degrees must be distinct: {short(k)} appears more than once")
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
            raise ValueError(f"malformed feature list {short(text)}: empty entry")
        try:
            value = int(item, 10)
        except ValueError:
            raise ValueError(
                f"malformed feature list {short(text)}: degrees must be non-negative "
                f"integers, got {short(item)}"
            ) from None
        if value < 0:
            raise ValueError(f"malformed feature list {short(text)}: degrees must be "
                             f"non-negative integers, got {short(value)}")
        degrees.append(value)
    return feature_set(degrees)


def power(value: object) -> str:
    """Validate the representation power: ``"sym"`` or ``"tensor"``."""
    if value not in POWERS:
        raise ValueError(f"power must be one of {', '.join(POWERS)}; got {short(value)}")
    return str(value)


def method(value: object) -> str:
    """Validate a spectrum method name."""
    if value not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {short(value)}")
    return str(value)
