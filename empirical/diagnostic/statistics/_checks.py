"""Input validation shared by the statistics modules (private).

Every check raises :class:`ValueError` with a message that names the bad value.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__: list = []


def _vector(x, name: str, min_size: int = 1) -> np.ndarray:
    """``x`` as a finite float64 1-D array of at least ``min_size`` entries."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _pair(pred, target, names: Tuple[str, str], min_size: int = 1):
    """Two finite 1-D arrays of one length (see :func:`_vector`)."""
    p = _vector(pred, names[0], min_size)
    t = _vector(target, names[1], min_size)
    if p.shape != t.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {p.size} != {t.size}")
    return p, t


def _array_pair(a, b, names: Tuple[str, str], ndim: int, shape: str):
    """Two ``ndim``-D float arrays of one shape (``shape``: its text for messages, e.g.
    ``"(rows, n)"``); no finiteness check."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != ndim:
        raise ValueError(f"{names[0]} must be a {ndim}-D array {shape}, got shape {x.shape}")
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {x.shape} != {y.shape}")
    return x, y


def _rows_pair(a, b, names: Tuple[str, str]):
    """Two 2-D float arrays ``(rows, n)`` of one shape, ``n >= 1`` (no finiteness check)."""
    x, y = _array_pair(a, b, names, 2, "(rows, n)")
    if x.shape[1] < 1:
        raise ValueError(f"{names[0]} has rows of length 0")
    return x, y


def _finite_scalar(v, name: str) -> float:
    """``v`` as a finite float; bools, strings, arrays and NaN/inf are refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {v!r}")
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return float(v)


def _positive_eps(eps) -> float:
    """The injection amplitude ``eps`` as a finite float > 0."""
    e = _finite_scalar(eps, "eps")
    if e <= 0:
        raise ValueError(f"eps (injection amplitude) must be > 0, got {e}")
    return e


def _check_level(level) -> float:
    """A confidence level strictly between 0 and 1."""
    lv = _finite_scalar(level, "level")
    if not 0 < lv < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {lv}")
    return lv
