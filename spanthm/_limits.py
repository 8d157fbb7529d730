"""Work bounded before it starts: the cost of an instance, estimated and refused above a
documented limit.

An instance is a feature set ``S`` and a probe degree ``d``. Every method works up to the
top degree ``D = d * max(S)``: the exact method builds zonal products of degree ``D`` in
rational arithmetic and projects them onto ``D + 1`` Legendre polynomials, the weight
counting multiplies characters of span ``D``. Measured on a 2-core CPU (exact method):
``D = 100`` 1.6 s, ``D = 200`` 7.3 s, ``D = 300`` 22 s, so the cost grows like ``D^3``.

Limits (environment variables raise them, for a user who means it):

* ``MAX_COST = 300**3`` cost units per request, ``D^3`` per instance (a table adds its
  instances up): about 20 s here. ``SPANTHM_MAX_COST``.
* ``MAX_D = 256`` probe degree: products are built factor by factor, one level of
  recursion each. ``SPANTHM_MAX_D``.
* ``MAX_FEATURES = 512`` distinct feature degrees (checked before a ``range`` is
  materialized). ``SPANTHM_MAX_FEATURES``.

A request above a limit raises :class:`CostLimitExceeded` (a ``ValueError``; exit 2 on the
command line) naming the limit and the variable, before any work.
"""

from __future__ import annotations

import os

__all__ = ["CostLimitExceeded", "MAX_COST", "MAX_D", "MAX_FEATURES", "instance_cost",
           "check_instance", "check_total", "check_feature_count"]


def _env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


MAX_COST = 300 ** 3
MAX_D = 256
MAX_FEATURES = 512


class CostLimitExceeded(ValueError):
    """A request whose estimated cost is above a limit (see the module docstring)."""


def _limits():
    return (_env("SPANTHM_MAX_COST", MAX_COST), _env("SPANTHM_MAX_D", MAX_D),
            _env("SPANTHM_MAX_FEATURES", MAX_FEATURES))


def instance_cost(top_feature: int, d: int) -> int:
    """Cost units of one instance: ``D^3`` with ``D = d * max(S)`` (at least 1).

    >>> instance_cost(2, 2), instance_cost(0, 100)
    (64, 1)
    """
    return max(int(top_feature) * int(d), 1) ** 3


def check_feature_count(n: int, top: int) -> None:
    """Refuse a feature set of more than ``MAX_FEATURES`` degrees, before it is built."""
    _, _, max_features = _limits()
    if n > max_features:
        raise CostLimitExceeded(
            f"{n} feature degrees (up to {top}) exceed the limit of {max_features}; raise it "
            "with SPANTHM_MAX_FEATURES if you mean it")


def check_instance(top_feature: int, d: int) -> int:
    """Refuse an instance above a limit; returns its cost units."""
    max_cost, max_d, _ = _limits()
    if d > max_d:
        raise CostLimitExceeded(
            f"probe degree d = {d} exceeds the limit of {max_d} (products are built one "
            "factor at a time); raise it with SPANTHM_MAX_D if you mean it")
    cost = instance_cost(top_feature, d)
    if cost > max_cost:
        D = int(top_feature) * int(d)
        raise CostLimitExceeded(
            f"top degree d * max(S) = {D} costs about {cost:.3g} units (D^3), above the limit "
            f"of {max_cost:.3g} (D = {round(max_cost ** (1 / 3))}, about 20 s on a 2-core "
            "CPU); raise it with SPANTHM_MAX_COST if you mean it")
    return cost


def check_total(costs, what: str = "the table") -> None:
    """Refuse a batch whose instances add up above ``MAX_COST``."""
    max_cost, _, _ = _limits()
    total = sum(costs)
    if total > max_cost:
        raise CostLimitExceeded(
            f"{what} costs about {total:.3g} units in all (sum of D^3), above the limit of "
            f"{max_cost:.3g}; ask for fewer instances or raise SPANTHM_MAX_COST")
