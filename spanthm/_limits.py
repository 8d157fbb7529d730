"""Work bounded before it starts: the cost of an instance, estimated per method and refused
above a documented limit.

An instance is a feature set ``S`` and a probe degree ``d``; ``D = d * max(S)`` is its top
degree, ``F = sum(2k + 1 for k in S)`` its number of feature components (``(L + 1)^2`` for
``S = {0..L}``). Each method has its own cost model, in *cost units* of about 0.75 us of one
core of the 2-core CPU these constants were measured on (``300^3`` units, about 20 s):

* ``exact``: ``D^3`` (rational zonal products and Legendre expansions of degree ``D``;
  ``D = 100`` 1.6 s, ``200`` 7.3 s, ``300`` 22 s), plus, for ``d = 1``, one expansion per
  feature: ``sum(k^3 for k in S) / 128`` (``S = {0..300}``, ``d = 1``: 33 s).
* ``weights``: the weight-counting dynamic programme, ``F * d * (2D + 1) / 18`` (20 ns a
  step). Every other method adds it: the theorem's verdict needs the symmetric-power
  multiplicities (the exact method's fit, measured through ``spectrum()``, holds it).
* ``rules``: Gaunt sets, ``d * (D + 1) * |S| * (max(S) + 1) / 15`` (negligible in practice).
* ``numeric``: ``N`` quadrature nodes, ``N = (Dq // 2 + 1) (Dq + 1)``, ``Dq = 2D + 2``;
  ``scipy.special.sph_harm_y`` costs about ``(50 + 8.5 l)`` ns per value, evaluated for every
  ``l <= D + 2`` and every feature, and the random samples cost ``K * sum(sizes) * F * N``
  multiply-adds (``K = 2D + 9``). Units: ``N * (sum_{l <= D+2} (2l+1)(l+6) + F (max(S)+6)) / 88
  + K * sum(sizes) * F * N / 300`` (``S = {0..10}``, ``d = 5``: 3.9 s). Memory: ``8 N (2F + K
  + 8 (2D + 5))`` bytes, also bounded (``MAX_BYTES``). ``S = {0..20}``, ``d = 5`` (D = 100)
  would take about 150 s and is refused; ``D`` of about 60 is the most it admits.
* ``brute``: ``P`` products of at most ``d`` components (``sum_n C(F + n - 1, n)``), each
  projected onto every basis function of every ``H_l``, ``l <= D + 2``, through its up to
  ``(D + 1)(D + 2) / 2`` monomials, plus the cached moments:
  ``(D + 3)^2 * (D + 1)(D + 2) / 2 * (P + (D + 3)^2 / 4)`` (about 0.7 us each; ``S = {3}``,
  ``d = 3``: 0.8 s). The method also keeps its own limit of 20000 products.
* ``all``: ``exact + rules + weights + numeric``.
* a certificate: the exact method twice plus both multiplicity tables.

Limits (environment variables raise them, for a user who means it):

* ``MAX_COST = 300**3`` cost units per request (a table or a batch adds its instances up):
  about 20 s here, whatever the method. ``SPANTHM_MAX_COST``.
* ``MAX_BYTES = 4 GiB`` estimated memory of one instance (the numeric method's arrays; the
  exact methods stay far below). ``SPANTHM_MAX_BYTES``.
* ``MAX_D = 256`` probe degree: products are built factor by factor, one level of
  recursion each. ``SPANTHM_MAX_D``.
* ``MAX_FEATURES = 512`` distinct feature degrees (checked before a ``range`` is
  materialized). ``SPANTHM_MAX_FEATURES``.

A request above a limit raises :class:`CostLimitExceeded` (a ``ValueError``; exit 2 on the
command line) naming the method, the limit and the variable, before any work.
"""

from __future__ import annotations

import os
from math import comb
from typing import Tuple

from ._validate import short as _short

__all__ = ["CostLimitExceeded", "MAX_COST", "MAX_BYTES", "MAX_D", "MAX_FEATURES", "COSTED",
           "SECONDS_PER_UNIT", "instance_cost", "instance_bytes", "check_instance",
           "check_total", "check_feature_count"]


def _env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={_short(raw)} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


#: Cost units per request, every method (about 20 s on the 2-core CPU of the docstring).
MAX_COST = 300 ** 3
#: Estimated bytes of one instance (the numeric method's arrays).
MAX_BYTES = 4 * 1024 ** 3
#: Largest probe degree d.
MAX_D = 256
#: Largest number of distinct feature degrees.
MAX_FEATURES = 512
#: Seconds of one cost unit on the machine the constants were measured on (20 s / 300^3).
SECONDS_PER_UNIT = 20 / 300 ** 3
#: What :func:`instance_cost` prices: the ``method=`` values and ``"certificate"``.
COSTED = ("exact", "rules", "weights", "numeric", "brute", "all", "certificate")


class CostLimitExceeded(ValueError):
    """A request whose estimated cost is above a limit (see the module docstring)."""


def _limits():
    return (_env("SPANTHM_MAX_COST", MAX_COST), _env("SPANTHM_MAX_D", MAX_D),
            _env("SPANTHM_MAX_FEATURES", MAX_FEATURES))


def _shape(features) -> Tuple[int, int, int, int]:
    """``(max(S), |S|, F, sum k^3)`` of a feature set, or of ``{0..top}`` for an int ``top``
    (closed forms: nothing is built)."""
    if isinstance(features, int):
        top = max(int(features), 0)
        return top, top + 1, (top + 1) ** 2, (top * (top + 1) // 2) ** 2
    degrees = [int(k) for k in features]
    return (max(degrees), len(degrees), sum(2 * k + 1 for k in degrees),
            sum(k ** 3 for k in degrees))


def _numeric_nodes(D: int) -> int:
    q = 2 * D + 2                       # the quadrature's degree: products times H_l
    return (q // 2 + 1) * (q + 1)


def _sizes_sum(d: int, exactly: bool) -> int:
    return d if exactly else d * (d + 1) // 2


def _method_cost(method: str, features, d: int, exactly: bool) -> int:
    top, n, F, cubes = _shape(features)
    D = top * d
    # the abstract space adjoins the constant V_0 when S lacks it (at-most-d products)
    adjoined = 0 if exactly or isinstance(features, int) or 0 in features else 1
    weights = (F + adjoined) * d * (2 * D + 1) // 18
    if method == "weights":
        return weights
    if method == "exact":
        # measured through spectrum(): the verdict's multiplicities are inside the fit
        return max(D, 1) ** 3 + (cubes // 128 if d == 1 else 0)
    if method == "rules":
        return d * (D + 1) * n * (top + 1) // 15 + weights
    if method == "numeric":
        t = D + 2
        N = _numeric_nodes(D)
        harmonics = sum((2 * l + 1) * (l + 6) for l in range(t + 1)) + F * (top + 6)
        samples = (2 * t + 5) * _sizes_sum(d, exactly) * F
        return N * harmonics // 88 + N * samples // 300 + weights
    if method == "brute":
        t = D + 2
        sizes = [d] if exactly else range(d + 1)
        products = sum(comb(F + k - 1, k) for k in sizes)
        monomials = (D + 1) * (D + 2) // 2
        return (t + 1) ** 2 * monomials * (products + (t + 1) ** 2 // 4) + weights
    if method == "all":
        return sum(_method_cost(m, features, d, exactly) for m in ("exact", "rules", "numeric"))
    if method == "certificate":
        return 2 * _method_cost("exact", features, d, exactly) + 2 * weights
    raise ValueError(f"unknown method {_short(method)}")   # pragma: no cover (validated)


def instance_cost(top_feature, d: int, method: str = "exact", exactly: bool = False) -> int:
    """Cost units of one instance under ``method`` (see the module docstring; at least 1).

    ``top_feature`` is either ``max(S)`` (the instance ``S = {0..max(S)}``, the largest set
    of that top degree) or the feature set itself.

    >>> instance_cost(2, 2), instance_cost(0, 100)
    (64, 1)
    """
    return max(_method_cost(method, top_feature, int(d), exactly), 1)


def instance_bytes(top_feature, d: int, method: str = "exact", exactly: bool = False) -> int:
    """Estimated peak bytes of one instance's arrays (numeric method; the others are
    rational arithmetic on ``O(D^2)`` numbers, far below ``MAX_BYTES``)."""
    if method not in ("numeric", "all"):
        return 0
    top, _, F, _ = _shape(top_feature)
    D = top * int(d)
    # the features twice (the list and its concatenation), the samples, the complex
    # temporaries of one H_l basis: measured 0.5 GB for S = {0..60}, d = 1
    return 8 * _numeric_nodes(D) * (2 * F + (2 * D + 9) + 8 * (2 * D + 5))


def check_feature_count(n: int, top: int) -> None:
    """Refuse a feature set of more than ``MAX_FEATURES`` degrees, before it is built."""
    _, _, max_features = _limits()
    if n > max_features:
        raise CostLimitExceeded(
            f"{n} feature degrees (up to {_short(top)}) exceed the limit of {max_features}; "
            "raise it with SPANTHM_MAX_FEATURES if you mean it")


#: The numeric method (float singular values, threshold relative to the largest) resolves
#: the top degree only up to this d: the top degree's weight in a product of d factors
#: falls like a power of d, and from d = 12 (L = 5), 13 (L = 3, 4), 14 (L = 1, 2) its
#: singular values sank below the threshold, so the method said "fails" where the exact
#: ones say "holds" (measured for L = 1..20 within the cost limit; every d <= 11 agreed).
NUMERIC_MAX_D = 11


def check_instance(top_feature, d: int, method: str = "exact", exactly: bool = False) -> int:
    """Refuse an instance above a limit; returns its cost units.

    ``top_feature``: ``max(S)`` (for ``S = {0..max(S)}``) or the feature set itself.
    """
    max_cost, max_d, _ = _limits()
    if method in ("numeric", "all") and isinstance(d, int) and d > NUMERIC_MAX_D:
        raise ValueError(
            f"method {method}: d = {_short(d)} is above {NUMERIC_MAX_D}, where the numeric "
            "method's floating-point singular values no longer separate the top degree from "
            "rounding (it would report a false 'fails'); use the exact, rules or weights "
            "method")
    if d > max_d:
        raise CostLimitExceeded(
            f"probe degree d = {_short(d)} exceeds the limit of {max_d} (products are built "
            "one factor at a time); raise it with SPANTHM_MAX_D if you mean it")
    top = _shape(top_feature)[0]
    D = top * int(d)
    if D > 10 * max(max_d, 1) * 1024:     # no method can take it: refuse before pricing
        raise CostLimitExceeded(
            f"method {method}: top degree d * max(S) = {_short(D)} is far above the limit of "
            f"{max_cost:.3g} cost units; raise it with SPANTHM_MAX_COST if you mean it")
    cost = instance_cost(top_feature, d, method, exactly)
    if cost > max_cost:
        hint = "" if method in ("exact", "certificate") else "use the exact method, or "
        raise CostLimitExceeded(
            f"method {method}: top degree d * max(S) = {D} costs about {cost:.3g} units "
            f"(~{cost * SECONDS_PER_UNIT:.3g} s on a 2-core CPU), above the limit of "
            f"{max_cost:.3g} (about {max_cost * SECONDS_PER_UNIT:.3g} s); {hint}raise it with "
            "SPANTHM_MAX_COST if you mean it")
    max_bytes = _env("SPANTHM_MAX_BYTES", MAX_BYTES)
    need = instance_bytes(top_feature, d, method, exactly)
    if need > max_bytes:
        raise CostLimitExceeded(
            f"method {method}: top degree d * max(S) = {D} needs about {need / 2 ** 30:.3g} GiB "
            f"of arrays, above the limit of {max_bytes / 2 ** 30:.3g} GiB; raise it with "
            "SPANTHM_MAX_BYTES if you mean it")
    return cost


def check_total(costs, what: str = "the table") -> None:
    """Refuse a batch whose instances add up above ``MAX_COST``."""
    max_cost, _, _ = _limits()
    total = sum(costs)
    if total > max_cost:
        raise CostLimitExceeded(
            f"{what} costs about {total:.3g} units in all (~{total * SECONDS_PER_UNIT:.3g} s), "
            f"above the limit of {max_cost:.3g}; ask for fewer instances or raise "
            "SPANTHM_MAX_COST")
