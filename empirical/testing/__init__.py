"""Helpers for a model developer's own test suite (the way e3nn ships ``assert_equivariant``).

* :func:`spectral_ceiling` measures a backbone's ceiling for one probe degree with a small,
  fast configuration of :func:`empirical.diagnose`;
* :func:`assert_spectral_ceiling` passes when it equals the expected (default: the theorem's
  ``d * L`` for the backbone's ``irreps_out``) and otherwise fails with the rho table;
* :func:`assert_equivariant_features` checks ``node_features`` under rotations and a
  reflection, measure-then-assert, with tolerances per dtype.

In a ``conftest.py``, one line gives the fixtures of :mod:`empirical.testing.plugin`::

    pytest_plugins = ["empirical.testing.plugin"]

The ``"fast"`` budget: 1000 frames of the dataset (800 probe-training, 200 held-out
configurations, one Haar rotation each), target degrees up to ``dL + 2``, 50 bootstrap
resamples, no capacity sweep: a few seconds per backbone on a CPU. It is reliable for the
ceiling because the ceiling is read from a gap, not a fine number: above ``dL`` the held-out
correlation is zero in expectation with standard deviation about ``1/sqrt(200) = 0.07``,
so a blind degree reaching the recoverable threshold 0.5 is a seven-sigma event, while at
``dL`` the shipped backbones give rho well above 0.5 already at this width (the capacity
sweep of the full run shows how rho(dL) grows with k). ``"thorough"``: every frame, 500
resamples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from e3nn import o3

__all__ = ["BUDGETS", "CeilingMeasurement", "spectral_ceiling", "assert_spectral_ceiling",
           "assert_equivariant_features", "EQUIVARIANCE_TOLERANCE"]

BUDGETS = {"fast": {"frames": 1000, "n_boot": 50},
           "thorough": {"frames": None, "n_boot": 500}}
#: Absolute tolerance of :func:`assert_equivariant_features`, per features dtype, relative
#: to the largest feature magnitude (at least 1): the diagnostic's own table.
from ..backbone import EQUIVARIANCE_TOLERANCE, equivariance_tolerance  # noqa: E402


@dataclass
class CeilingMeasurement:
    """A measured ceiling: the highest ``l`` with held-out rho >= 0.5 (``None`` if none)."""

    d: int
    ceiling: Optional[int]
    predicted: int
    rho: Dict[int, Optional[float]]
    seconds: float
    config: Dict = field(default_factory=dict)

    def table(self) -> str:
        rows = [f"  l = {l}: {'undefined' if r is None else f'{r:+.3f}'}"
                + ("   <- predicted ceiling dL" if l == self.predicted else "")
                for l, r in self.rho.items()]
        return "\n".join(rows)


def spectral_ceiling(backbone, *, d: int = 2, dataset="aspirin",
                     marked: Optional[Sequence[int]] = None, seed: int = 0,
                     budget: str = "fast") -> CeilingMeasurement:
    """Measure the ceiling of one backbone (protocol object, checkpoint path or shipped
    name) for probe degree ``d`` (see the module docstring for the budgets). The verdict
    rule is :func:`empirical.diagnostic.verdict`'s."""
    from ..diagnostic import diagnose

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    from ..backbone import load
    from ..data import Dataset
    from ..data import load as load_data

    start = time.perf_counter()
    if not hasattr(backbone, "irreps_out"):
        backbone = load(backbone)
    L = max(ir.l for _, ir in o3.Irreps(backbone.irreps_out))
    if not isinstance(dataset, Dataset):
        dataset = load_data(dataset)
    b = BUDGETS[budget]
    frames = None if b["frames"] is None else min(b["frames"], dataset.n_frames)
    res = diagnose(backbones=[backbone], dataset=dataset, marked=marked, degrees=(d,),
                   lmax=d * L + 2, seed=seed, n_boot=b["n_boot"], frames=frames, k_sweep=(),
                   progress=False)
    s = res.summaries[d]
    return CeilingMeasurement(d=d, ceiling=s.measured_ceiling, predicted=s.ceiling,
                              rho=dict(sorted(s.rho.items())),
                              seconds=time.perf_counter() - start,
                              config={"budget": budget, "frames": frames, "seed": seed})


def assert_spectral_ceiling(backbone, d: int = 2, expected: Optional[int] = None,
                            **kwargs) -> CeilingMeasurement:
    """Pass when the measured ceiling equals ``expected`` (default: the theorem's ``d * L``
    for the backbone's ``irreps_out``); otherwise ``AssertionError`` with the rho table.
    ``kwargs`` go to :func:`spectral_ceiling`. Returns the measurement."""
    m = spectral_ceiling(backbone, d=d, **kwargs)
    want = m.predicted if expected is None else int(expected)
    if m.ceiling != want:
        name = type(backbone).__name__ if hasattr(backbone, "irreps_out") else str(backbone)
        raise AssertionError(
            f"spectral ceiling of {name} at d = {d}: measured {m.ceiling}, expected {want} "
            f"({'theorem: d * L' if expected is None else 'given'}); held-out rho "
            f"(recoverable >= 0.5):\n{m.table()}")
    return m


def assert_equivariant_features(backbone, positions=None, numbers=None, n_rotations: int = 3,
                                seed: int = 0, atol: Optional[float] = None) -> Dict[str, float]:
    """``node_features(R x) == D(R) node_features(x)`` for ``n_rotations`` seeded random
    rotations and as many roto-reflections (``-R``), with ``D`` from
    ``irreps_out.D_from_matrix``. Measures every error, then asserts the largest is within
    the tolerance (``atol``, or :data:`EQUIVARIANCE_TOLERANCE` for the features' dtype times
    ``max(1, max |features|)``). ``positions``/``numbers`` default to the first shipped
    aspirin frame. Returns the measured errors."""
    from ..backbone import check_protocol, equivariance_error
    from ..diagnostic import haar_rotations, model_dtype

    try:
        check_protocol(backbone)
    except TypeError as exc:
        raise AssertionError(str(exc)) from None
    if positions is None:
        from ..data import load as load_data
        data = load_data("aspirin")
        positions, numbers = data.positions[0], data.numbers
    dtype = model_dtype(backbone)   # positions reach the model in its own dtype
    pos = torch.tensor(np.asarray(positions), dtype=dtype)
    num = torch.tensor(np.asarray(numbers), dtype=torch.long)
    with torch.no_grad():
        f = torch.as_tensor(backbone.node_features(pos, num))
    errors = {}
    for i, R in enumerate(haar_rotations(n_rotations, seed)):
        R = torch.as_tensor(R, dtype=dtype)
        errors[f"rotation {i}"] = equivariance_error(backbone, pos, num, R)
        errors[f"reflection {i}"] = equivariance_error(backbone, pos, num, -R)
    scale = max(1.0, float(f.abs().max()))
    tol = atol if atol is not None else equivariance_tolerance(f.dtype, scale)
    worst = max(errors, key=errors.get)
    if errors[worst] > tol:
        raise AssertionError(f"{type(backbone).__name__}.node_features is not equivariant: "
                             f"max abs error {errors[worst]:.3e} ({worst}) > tolerance "
                             f"{tol:.1e} ({f.dtype}); all errors: "
                             + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return errors
