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
from typing import Dict, Optional, Sequence, Tuple

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
    #: the diagnostic's record of the backbone: max abs errors and its verdict
    equivariance_error: Dict[str, float] = field(default_factory=dict)
    equivariant: Optional[bool] = None

    def table(self) -> str:
        rows = [f"  l = {l}: {'undefined' if r is None else f'{r:+.3f}'}"
                + ("   <- predicted ceiling dL" if l == self.predicted else "")
                for l, r in self.rho.items()]
        return "\n".join(rows)


def _resolve(backbone, dataset):
    """The protocol object (loaded from a spec) and the :class:`~empirical.data.Dataset`
    (loaded from a name or path)."""
    from ..backbone import load
    from ..data import Dataset
    from ..data import load as load_data

    if not hasattr(backbone, "irreps_out"):
        backbone = load(backbone)
    if not isinstance(dataset, Dataset):
        dataset = load_data(dataset)
    return backbone, dataset


def _check_budget(budget) -> None:
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")


def _name(backbone) -> str:
    return type(backbone).__name__ if hasattr(backbone, "irreps_out") else str(backbone)


def spectral_ceiling(backbone, *, d: int = 2, dataset="aspirin",
                     marked: Optional[Sequence[int]] = None, seed: int = 0,
                     budget: str = "fast") -> CeilingMeasurement:
    """Measure the ceiling of one backbone (protocol object, checkpoint path or shipped
    name) for probe degree ``d`` (see the module docstring for the budgets). The verdict
    rule is :func:`empirical.diagnostic.verdict`'s; the diagnostic's equivariance record of
    the backbone is kept (``equivariance_error``, ``equivariant``)."""
    from ..diagnostic import diagnose

    _check_budget(budget)
    start = time.perf_counter()
    backbone, dataset = _resolve(backbone, dataset)
    L = max(ir.l for _, ir in o3.Irreps(backbone.irreps_out))
    b = BUDGETS[budget]
    frames = None if b["frames"] is None else min(b["frames"], dataset.n_frames)
    res = diagnose(backbones=[backbone], dataset=dataset, marked=marked, degrees=(d,),
                   lmax=d * L + 2, seed=seed, n_boot=b["n_boot"], frames=frames, k_sweep=(),
                   progress=False)
    s = res.summaries[d]
    rec = res.backbones[0]
    return CeilingMeasurement(d=d, ceiling=s.measured_ceiling, predicted=s.ceiling,
                              rho=dict(sorted(s.rho.items())),
                              seconds=time.perf_counter() - start,
                              config={"budget": budget, "frames": frames, "seed": seed},
                              equivariance_error=dict(rec.equivariance_error),
                              equivariant=rec.equivariant)


def assert_spectral_ceiling(backbone, d: int = 2, expected: Optional[int] = None,
                            **kwargs) -> CeilingMeasurement:
    """Pass when the backbone is equivariant and the measured ceiling equals ``expected``
    (default: the theorem's ``d * L`` for the backbone's ``irreps_out``); otherwise
    ``AssertionError``: with the equivariance error and its tolerance when the backbone is
    outside the theorem's premise (checked first, on the dataset's first frame, with the
    diagnostic's rule: rotations, and reflections unless the backbone says
    ``parity = False``; then again from the diagnostic's own record), with the rho table
    when the ceiling differs. ``kwargs`` go to :func:`spectral_ceiling`. Returns the
    measurement."""
    _check_budget(kwargs.get("budget", "fast"))
    name = _name(backbone)
    backbone, dataset = _resolve(backbone, kwargs.pop("dataset", "aspirin"))
    parity = getattr(backbone, "parity", None) is not False
    _check_equivariant(backbone, dataset.positions[0], dataset.numbers, n_rotations=1,
                       seed=kwargs.get("seed", 0), atol=None, reflections=parity, name=name)
    m = spectral_ceiling(backbone, d=d, dataset=dataset, **kwargs)
    if m.equivariant is False:
        raise AssertionError(
            f"{name} is not equivariant in the diagnostic's run: max abs error "
            f"{max(m.equivariance_error.values()):.3e} ("
            + ", ".join(f"{k} {v:.2e}" for k, v in m.equivariance_error.items())
            + ") above the tolerance of its dtype (EQUIVARIANCE_TOLERANCE x max(1, largest "
            "feature)): its ceiling says nothing about the theorem")
    want = m.predicted if expected is None else int(expected)
    if m.ceiling != want:
        raise AssertionError(
            f"spectral ceiling of {name} at d = {d}: measured {m.ceiling}, expected {want} "
            f"({'theorem: d * L' if expected is None else 'given'}); held-out rho "
            f"(recoverable >= 0.5):\n{m.table()}")
    return m


def _input_arrays(positions, numbers, dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """``positions`` (n, 3) finite and ``numbers`` (n,) as tensors; ``ValueError`` naming
    the problem (a bad input of the test, not a failure of the model)."""
    pos = np.asarray(positions, dtype=float)
    num = np.asarray(numbers)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
        raise ValueError(f"positions must have shape (atoms, 3) with at least one atom, got "
                         f"{pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError("positions hold NaN or inf")
    if num.shape != (pos.shape[0],) or not np.issubdtype(num.dtype, np.integer):
        raise ValueError(f"numbers must be {pos.shape[0]} integers (one per atom), got shape "
                         f"{num.shape} of {num.dtype}")
    return torch.tensor(pos, dtype=dtype), torch.tensor(num, dtype=torch.long)


def _checked_features(backbone, pos: torch.Tensor, num: torch.Tensor, dim: int,
                      what: str) -> torch.Tensor:
    """``node_features(pos, num)``, or ``AssertionError`` saying what is wrong with it: not
    a real floating array, not (atoms, irreps_out.dim), NaN or inf."""
    name = type(backbone).__name__
    with torch.no_grad():
        f = backbone.node_features(pos, num)
    if not isinstance(f, (torch.Tensor, np.ndarray)):
        raise AssertionError(f"{name}.node_features returned a {type(f).__name__} ({what}), "
                             f"not a tensor")
    f = torch.as_tensor(f)
    if not (f.is_floating_point()):
        raise AssertionError(f"{name}.node_features returned {f.dtype} values ({what}), not "
                             f"real floating point")
    want = (pos.shape[0], dim)
    if tuple(f.shape) != want:
        raise AssertionError(f"{name}.node_features returned shape {tuple(f.shape)} ({what}); "
                             f"expected (atoms, irreps_out.dim) = {want}")
    bad = ~torch.isfinite(f)
    if bool(bad.any()):
        rows = sorted({int(i) for i in bad.nonzero()[:, 0]})
        raise AssertionError(f"{name}.node_features returned {int(bad.sum())} NaN or inf "
                             f"values ({what}; atoms {rows[:10]}"
                             + (" ..." if len(rows) > 10 else "") + ")")
    return f


def _check_equivariant(backbone, positions, numbers, n_rotations: int, seed: int,
                       atol: Optional[float], reflections: bool = True,
                       name: Optional[str] = None) -> Dict[str, float]:
    """Measure ``node_features(R x) - D(R) node_features(x)`` for seeded rotations (and
    roto-reflections ``-R`` if ``reflections``), every output checked for shape and
    finiteness, then assert the largest error is within the tolerance (a NaN error fails)."""
    from ..backbone import check_protocol
    from ..diagnostic import haar_rotations, model_dtype

    try:
        check_protocol(backbone)
    except TypeError as exc:
        raise AssertionError(str(exc)) from None
    name = name or type(backbone).__name__
    irreps = o3.Irreps(backbone.irreps_out)
    dtype = model_dtype(backbone)   # positions reach the model in its own dtype
    pos, num = _input_arrays(positions, numbers, dtype)
    f = _checked_features(backbone, pos, num, irreps.dim, "the unrotated configuration")
    errors: Dict[str, float] = {}
    previous = torch.get_default_dtype()
    for i, R in enumerate(haar_rotations(n_rotations, seed)):
        R = torch.as_tensor(R, dtype=torch.float64)
        for label, Q in [("rotation", R), ("reflection", -R)][:2 if reflections else 1]:
            torch.set_default_dtype(torch.float64)   # e3nn builds its generators in it
            try:
                D = irreps.D_from_matrix(Q)
            finally:
                torch.set_default_dtype(previous)
            f_rot = _checked_features(backbone, pos @ Q.to(dtype).T, num, irreps.dim,
                                      f"{label} {i}")
            diff = f_rot.to(f.device).double() - f.double() @ D.to(f.device).T
            errors[f"{label} {i}"] = float(diff.abs().max())
    scale = float(f.abs().max())
    tol = atol if atol is not None else equivariance_tolerance(f.dtype, scale)
    worst = max(errors, key=lambda k: errors[k])
    if not (errors[worst] <= tol):   # written so that a NaN error fails
        raise AssertionError(f"{name}.node_features is not equivariant: "
                             f"max abs error {errors[worst]:.3e} ({worst}) > tolerance "
                             f"{tol:.1e} ({f.dtype}); all errors: "
                             + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return errors


def assert_equivariant_features(backbone, positions=None, numbers=None, n_rotations: int = 3,
                                seed: int = 0, atol: Optional[float] = None) -> Dict[str, float]:
    """``node_features(R x) == D(R) node_features(x)`` for ``n_rotations`` seeded random
    rotations and as many roto-reflections (``-R``), with ``D`` from
    ``irreps_out.D_from_matrix``. Every output must be a real floating array of shape
    ``(atoms, irreps_out.dim)`` without NaN or inf (else ``AssertionError`` saying which).
    Measures every error, then asserts the largest is within the tolerance (``atol``, or
    :data:`EQUIVARIANCE_TOLERANCE` for the features' dtype times ``max(1, max
    |features|)``); a NaN error fails. ``positions``/``numbers`` default to the first
    shipped aspirin frame (``ValueError`` when they are not ``(atoms, 3)`` finite and
    ``(atoms,)`` integers). Returns the measured errors."""
    if positions is None:
        from ..data import load as load_data
        data = load_data("aspirin")
        positions, numbers = data.positions[0], data.numbers
    return _check_equivariant(backbone, positions, numbers, n_rotations, seed, atol)
