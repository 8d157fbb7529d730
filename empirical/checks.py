"""Validation of user-given values, shared by every stage and command: one message style,
one notion of an integer (a bool is not one; a numpy integer is), one notion of a finite
number. Each check returns the value in its plain Python type or raises ``ValueError``
naming the option."""

from __future__ import annotations

import math
import numbers
from typing import Optional

__all__ = ["is_int", "check_int", "check_float"]


def is_int(x) -> bool:
    """Whether ``x`` is an integer: a Python or numpy integer, never a bool.

    >>> import numpy as np
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_int(name: str, value, low: Optional[int] = None, high: Optional[int] = None,
              why: str = "") -> int:
    """``value`` as an int within ``[low, high]`` (either bound optional); ``ValueError``
    naming ``name`` otherwise (``why`` is appended to the bounds, e.g. a reason).

    >>> check_int("frames", 10, 1)
    10
    >>> check_int("frames", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: frames must be an integer >= 1, got 0
    """
    if low is not None and high is not None:
        bounds = f"between {low} and {high}{why}"
    elif low is not None:
        bounds = f">= {low}{why}"
    elif high is not None:
        bounds = f"at most {high}{why}"
    else:
        bounds = ""
    if not is_int(value):
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {value}")
    return int(value)


def check_float(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
                positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` if ``positive``, within ``[low, high]``);
    ``ValueError`` naming ``name`` otherwise.

    >>> check_float("temperature", 500)
    500.0
    >>> check_float("eps", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: eps must be a finite number, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (["> 0"] if positive else []) + ([f">= {low}"] if low is not None else []) \
            + ([f"at most {high}"] if high is not None else [])
        raise ValueError(f"{name} must be {' and '.join(bounds)}, got {value}")
    return value
