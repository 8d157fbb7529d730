r"""A Fieller-type confidence set for a ratio of two means (private).

The cliff ratio :math:`\rho(d_L) / \rho(d_L + 1)` divides by a correlation that sits at
the noise floor. A percentile interval of per-resample ratios is then not a confidence
interval: where the bootstrap distribution of the denominator straddles 0 the ratios
scatter over both signs and any size, and the interval can even exclude its own point
estimate (the reference run reported a ratio of 1207 with a "95 % interval" of
[-583, 638]). Fieller's construction (``docs/method.md`` §2.7) inverts a test instead:
with point estimates ``num``, ``den`` and the covariance ``V`` of ``(num, den)``, the
ratio ``r`` is in the set when ``num - r den`` is not significantly different from 0,

.. math::

    (\mathrm{num} - r\,\mathrm{den})^2 \le z^2 (V_{nn} - 2 r V_{nd} + r^2 V_{dd}),
    \qquad z = \Phi^{-1}\bigl(\tfrac{1 + \mathrm{level}}{2}\bigr),

a quadratic inequality :math:`A r^2 - 2 B r + C \le 0` with
:math:`A = \mathrm{den}^2 - z^2 V_{dd}`, :math:`B = \mathrm{num}\,\mathrm{den} - z^2 V_{nd}`,
:math:`C = \mathrm{num}^2 - z^2 V_{nn}` and discriminant :math:`D = B^2 - A C`:

* ``A > 0`` (the denominator is significantly non-zero): a bounded interval;
* ``A < 0`` and ``D > 0``: two rays ``(-inf, r1] U [r2, inf)``;
* ``A < 0`` and ``D <= 0``: the whole real line (the data bound the ratio nowhere);
* ``A == 0`` exactly (the boundary between the first two): one ray.

Here ``V`` is the bootstrap covariance of the paired resampled numerator and denominator
(one resampling plan for both), so the set inherits the bootstrap's treatment of the
clusters. The set is exact for normal ``(num, den)`` with known ``V`` and asymptotically
valid otherwise; it always contains ``num / den`` (the left side vanishes there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy.stats import norm

from ._checks import _array_pair, _check_level, _finite_scalar

__all__ = ["RatioConfidenceSet", "ratio_confidence_set", "ratio_confidence_set_from_moments"]

#: The ``method`` entry of :meth:`RatioConfidenceSet.to_dict`.
METHOD = "Fieller (bootstrap covariance)"

_KINDS = ("interval", "two_rays", "ray", "unbounded")

Piece = Tuple[Optional[float], Optional[float]]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


@dataclass(frozen=True)
class RatioConfidenceSet:
    """A confidence set for a ratio: a union of closed pieces of the real line.

    Attributes
    ----------
    kind : str
        ``"interval"`` (one bounded piece), ``"two_rays"`` (``(-inf, r1] U [r2, inf)``,
        ``r1 < r2``), ``"unbounded"`` (the whole real line) or, only on the exact
        boundary ``den**2 == z**2 * var_den``, ``"ray"`` (one of ``(-inf, r]``,
        ``[r, inf)``).
    pieces : tuple of (low, high)
        The pieces in increasing order; ``None`` stands for ``-inf`` (low) or ``+inf``
        (high): ``((None, None),)`` for ``"unbounded"``.
    level : float
        Nominal coverage.
    abs_lower_bound : float
        The smallest ``|r|`` over the set, i.e. the lower bound on ``|ratio|`` that the
        data support at ``level``; 0 when the set contains 0.

    Examples
    --------
    >>> s = RatioConfidenceSet("two_rays", ((None, -3.2), (4.1, None)), 0.95, 3.2)
    >>> str(s), s.contains(10.0), s.contains(0.0)
    ('(-inf, -3.2] U [4.1, inf)', True, False)
    >>> s.to_dict()["pieces"]
    [[None, -3.2], [4.1, None]]
    """

    kind: str
    pieces: Tuple[Piece, ...]
    level: float
    abs_lower_bound: float

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "pieces", tuple(
            (None if lo is None else float(lo), None if hi is None else float(hi))
            for lo, hi in self.pieces))
        for lo, hi in self.pieces:
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"piece ({lo}, {hi}) has low > high")

    def contains(self, r: float) -> bool:
        """Whether the real number ``r`` lies in the set (closed pieces).

        Raises
        ------
        ValueError
            ``r`` not a finite real number.
        """
        x = _finite_scalar(r, "r")
        return any((lo is None or lo <= x) and (hi is None or x <= hi)
                   for lo, hi in self.pieces)

    def to_dict(self) -> dict:
        """JSON form: ``{"kind", "pieces": [[low, high], ...], "abs_lower_bound", "level",
        "method"}``, ``None`` for an infinite end."""
        return {"kind": self.kind, "pieces": [[lo, hi] for lo, hi in self.pieces],
                "abs_lower_bound": self.abs_lower_bound, "level": self.level,
                "method": METHOD}

    def __str__(self) -> str:
        if self.kind == "unbounded":
            return "unbounded"
        parts = []
        for lo, hi in self.pieces:
            left = "(-inf" if lo is None else f"[{_fmt(lo)}"
            right = "inf)" if hi is None else f"{_fmt(hi)}]"
            parts.append(f"{left}, {right}")
        return " U ".join(parts)


def _abs_lower_bound(pieces: Tuple[Piece, ...]) -> float:
    """Smallest ``|r|`` over the pieces (0 when one of them contains 0)."""
    best = math.inf
    for lo, hi in pieces:
        if (lo is None or lo <= 0.0) and (hi is None or hi >= 0.0):
            return 0.0
        best = min(best, lo if lo is not None and lo > 0 else -hi)
    return float(best)


def _roots(a: float, b: float, c: float, d: float) -> Tuple[float, float]:
    """Sorted roots of ``a r**2 - 2 b r + c`` (``a != 0``, discriminant ``d = b**2 - a c
    >= 0``), in the form that avoids cancellation."""
    q = b + math.copysign(math.sqrt(d), b)
    if q == 0.0:                 # b == 0 and d == 0, hence c == 0: a double root at 0
        return 0.0, 0.0
    r1, r2 = q / a, c / q
    return (r1, r2) if r1 <= r2 else (r2, r1)


def _fieller(num: float, den: float, vnn: float, vdd: float, vnd: float, level: float,
             z: float) -> RatioConfidenceSet:
    """The set for validated moments (see :func:`ratio_confidence_set_from_moments`)."""
    # The set is invariant under (num, den, V) -> (num, den, V) / (s, s, s**2): scale by a
    # power of 2 (exact) to magnitude about 1, so that no square under- or overflows.
    scale = max(abs(num), abs(den), math.sqrt(vnn), math.sqrt(vdd))
    if scale > 0:
        e = -math.frexp(scale)[1]
        num, den = math.ldexp(num, e), math.ldexp(den, e)
        vnn, vdd, vnd = math.ldexp(vnn, 2 * e), math.ldexp(vdd, 2 * e), math.ldexp(vnd, 2 * e)
    z2 = z * z
    a = den * den - z2 * vdd
    b = num * den - z2 * vnd
    c = num * num - z2 * vnn
    # D = B**2 - A C with its num**2 den**2 terms cancelled analytically (no cancellation
    # in floating point): z**2 (Var(den * N - num * D) - z**2 det V)
    d = z2 * ((num * num * vdd - 2.0 * num * den * vnd + den * den * vnn)
              - z2 * (vnn * vdd - vnd * vnd))
    point = num / den if den != 0 else None
    if a > 0:
        lo, hi = _roots(a, b, c, max(d, 0.0))
        if point is not None:    # num/den satisfies the inequality exactly; undo rounding
            lo, hi = min(lo, point), max(hi, point)
        kind, pieces = "interval", ((lo, hi),)
    elif a < 0:
        if d <= 0:
            kind, pieces = "unbounded", ((None, None),)
        else:
            r1, r2 = _roots(a, b, c, d)
            if point is not None and r1 < point < r2:   # rounding: widen the nearer end
                if point - r1 <= r2 - point:
                    r1 = point
                else:
                    r2 = point
            kind, pieces = "two_rays", ((None, r1), (r2, None))
    elif b != 0:                 # a == 0: -2 b r + c <= 0 is linear, one ray
        edge = c / (2.0 * b)
        if b > 0:
            edge = edge if point is None else min(edge, point)
            kind, pieces = "ray", ((edge, None),)
        else:
            edge = edge if point is None else max(edge, point)
            kind, pieces = "ray", ((None, edge),)
    else:                        # a == b == 0 (then c <= 0 up to rounding): every r
        kind, pieces = "unbounded", ((None, None),)
    return RatioConfidenceSet(kind=kind, pieces=pieces, level=level,
                              abs_lower_bound=_abs_lower_bound(pieces))


def _z(level: float) -> float:
    """Two-sided normal quantile ``Phi^{-1}((1 + level) / 2)``."""
    return float(norm.ppf((1.0 + level) / 2.0))


def ratio_confidence_set_from_moments(num: float, den: float, var_num: float,
                                      var_den: float, cov: float,
                                      level: float = 0.95) -> RatioConfidenceSet:
    """Fieller confidence set for ``num / den`` from given (co)variances.

    The set ``{r : (num - r den)**2 <= z**2 (var_num - 2 r cov + r**2 var_den)}`` with
    ``z = norm.ppf((1 + level) / 2)``; see :func:`ratio_confidence_set` for its kinds.

    Parameters
    ----------
    num, den : float
        Point estimates of the numerator and the denominator.
    var_num, var_den : float >= 0
        Variances of the two estimates.
    cov : float
        Their covariance; ``cov**2 <= var_num * var_den`` (up to rounding).
    level : float in (0, 1)

    Returns
    -------
    RatioConfidenceSet

    Raises
    ------
    ValueError
        A value that is not a finite real number, a negative variance, a covariance
        beyond ``sqrt(var_num * var_den)``, a level outside (0, 1), or ``den == 0`` with
        ``var_den == 0`` (the ratio is undefined and nothing bounds it).

    Examples
    --------
    With ``z = 1`` (level about 0.6827): ``(4 - 2 r)**2 <= 13 - 12 r + 3 r**2`` is
    ``r**2 - 4 r + 3 <= 0``, i.e. ``[1, 3]``.

    >>> lv = 2 * norm.cdf(1.0) - 1
    >>> s = ratio_confidence_set_from_moments(4.0, 2.0, 13.0, 3.0, 6.0, level=lv)
    >>> s.kind, [round(x, 12) for x in s.pieces[0]], s.abs_lower_bound == s.pieces[0][0]
    ('interval', [1.0, 3.0], True)
    """
    a = _finite_scalar(num, "num")
    b = _finite_scalar(den, "den")
    vnn = _finite_scalar(var_num, "var_num")
    vdd = _finite_scalar(var_den, "var_den")
    vnd = _finite_scalar(cov, "cov")
    lv = _check_level(level)
    if vnn < 0:
        raise ValueError(f"var_num must be >= 0, got {vnn}")
    if vdd < 0:
        raise ValueError(f"var_den must be >= 0, got {vdd}")
    bound = math.sqrt(vnn * vdd)
    if abs(vnd) > bound * (1 + 1e-9) + 1e-300:
        raise ValueError(f"cov = {vnd} exceeds sqrt(var_num * var_den) = {bound}: "
                         "not a covariance matrix")
    if b == 0 and vdd == 0:
        raise ValueError("den is 0 and var_den is 0: the ratio is undefined and the data "
                         "do not bound it")
    return _fieller(a, b, vnn, vdd, vnd, lv, _z(lv))


def ratio_confidence_set(num: float, den: float, num_boot: np.ndarray, den_boot: np.ndarray,
                         level: float = 0.95) -> RatioConfidenceSet:
    """Fieller confidence set for a ratio of two means, from their paired bootstrap.

    ``V`` is the bootstrap covariance (``numpy.cov``, ``ddof = 1``) of the resamples
    where both ``num_boot`` and ``den_boot`` are finite; the set is
    ``{r : (num - r den)**2 <= z**2 (V_nn - 2 r V_nd + r**2 V_dd)}`` with
    ``z = norm.ppf((1 + level) / 2)`` (``docs/method.md`` §2.7):

    * ``"interval"`` ``[r1, r2]`` when ``den**2 > z**2 V_dd`` (the denominator is
      significantly non-zero);
    * ``"two_rays"`` ``(-inf, r1] U [r2, inf)`` when not, but the quadratic has two real
      roots: the ratio is large in magnitude, of either sign;
    * ``"unbounded"`` (the whole real line) otherwise: the data do not bound the ratio;
    * ``"ray"`` only on the exact boundary ``den**2 == z**2 V_dd``.

    The set contains ``num / den`` whenever ``den != 0`` (the endpoints are widened by
    rounding amounts, if need be, to keep this true in floating point).
    ``abs_lower_bound`` is the supported lower bound on ``|num / den|``.

    Notes
    -----
    The inputs are scaled by a power of 2 (exactly) to magnitude about 1 before the
    quadratic is formed, and its discriminant is computed without the cancelling
    ``num**2 den**2`` terms. Where ``|den|`` and ``z sqrt(V_dd)`` are both below about
    ``1e-154`` times the largest of ``|num|``, ``sqrt(V_nn)`` (ratios beyond about
    ``1e150``), ``den**2`` underflows and the set degenerates to the ``"ray"`` of the
    boundary case; it still contains ``num / den``.

    Parameters
    ----------
    num, den : float
        Point estimates (e.g. ``rho(d_L)`` and ``rho(d_L + 1)`` from
        ``ClusterBootstrap.point_estimate``).
    num_boot, den_boot : (n_boot,) arrays
        Their bootstrap distributions from one resampling plan (entry ``b`` of both from
        resample ``b``, e.g. two outputs of one ``ClusterBootstrap``). NaN/inf entries
        are dropped pairwise.
    level : float in (0, 1)

    Returns
    -------
    RatioConfidenceSet
        :func:`ratio_confidence_set_from_moments` of ``num``, ``den`` and the bootstrap
        covariance of ``num_boot`` and ``den_boot``.

    Raises
    ------
    ValueError
        ``num``/``den`` not finite real numbers; ``num_boot``/``den_boot`` not 1-D of one
        shape or with fewer than 2 resamples finite in both; a level outside (0, 1);
        ``den == 0`` with no bootstrap spread in the denominator.

    Examples
    --------
    A denominator far from 0 gives an interval around the point estimate 2:

    >>> rng = np.random.default_rng(0)
    >>> nb, db = 4.0 + 0.1 * rng.normal(size=500), 2.0 + 0.1 * rng.normal(size=500)
    >>> s = ratio_confidence_set(4.0, 2.0, nb, db)
    >>> s.kind, s.contains(2.0), s.pieces[0][0] < 2.0 < s.pieces[0][1]
    ('interval', True, True)

    A denominator indistinguishable from 0 gives two rays (or the whole line):

    >>> s = ratio_confidence_set(4.0, 0.05, nb, 0.05 + 0.1 * rng.normal(size=500))
    >>> s.kind, s.contains(4.0 / 0.05), s.abs_lower_bound > 10
    ('two_rays', True, True)
    """
    a = _finite_scalar(num, "num")
    b = _finite_scalar(den, "den")
    lv = _check_level(level)
    x, y = _array_pair(num_boot, den_boot, ("num_boot", "den_boot"), 1, "(n_boot,)")
    ok = np.isfinite(x) & np.isfinite(y)
    n_ok = int(ok.sum())
    if n_ok < 2:
        raise ValueError(f"num_boot and den_boot are both finite on {n_ok} of {x.size} "
                         "resamples; the covariance needs at least 2")
    v = np.cov(x[ok], y[ok])
    vnn, vdd, vnd = float(v[0, 0]), float(v[1, 1]), float(v[0, 1])
    if b == 0 and vdd == 0:
        raise ValueError("den is 0 and den_boot has no spread: the ratio is undefined and "
                         "the data do not bound it")
    return _fieller(a, b, vnn, vdd, vnd, lv, _z(lv))
