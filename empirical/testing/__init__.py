"""Helpers for a model developer's own test suite (the way e3nn ships ``assert_equivariant``).

* :func:`spectral_ceiling` measures a backbone's ceiling for one probe degree with a small,
  fast configuration of :func:`empirical.diagnose`;
* :func:`assert_spectral_ceiling` speaks the diagnostic's statuses (docs/method.md §2.8):
  it passes when the degree's status is ``"agrees"`` (boundary ``dL = d * L`` recovered,
  every ``l > dL`` blind, from the 95 % intervals), fails on ``"violates"`` naming the usual
  causes and the equivariance check, and on ``"boundary_not_reached"`` or ``"undecided"``
  with what was tried (frames, held-out configurations, rotations, the probe widths of the
  capacity curve) and what would decide it. Like the diagnostic, it widens the probe
  within its budget first (``capacity="auto"``);
* :func:`assert_equivariant_features` checks ``node_features`` under rotations and a
  reflection, measure-then-assert, with tolerances per dtype, judging every irrep copy of
  ``irreps_out`` on its own (one large scalar cannot hide a broken vector).

In a ``conftest.py``, one line gives the fixtures of :mod:`empirical.testing.plugin`::

    pytest_plugins = ["empirical.testing.plugin"]

The ``"fast"`` budget: 1000 frames of the dataset (800 probe-training, 200 held-out
configurations, one Haar rotation each), target degrees up to ``dL + 2``, 50 bootstrap
resamples, no capacity sweep (k sweep), the probe widened at the boundary when it falls
short (``capacity="auto"``: wider reductions, up to 4 rotations per configuration): a few
seconds per backbone on a CPU. Above ``dL`` the held-out correlation is zero in
expectation with standard deviation about ``1/sqrt(200) = 0.07``, so its 95 % interval
lies inside the blind band ``[-0.2, 0.2]`` unless the point estimate strays past about
0.06; a smaller dataset can leave it ``"undecided"`` (the message says so).
``"thorough"``: every frame, 500 resamples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from e3nn import o3

from ..checks import is_int
from ..runtime import default_dtype

__all__ = ["BUDGETS", "CeilingMeasurement", "spectral_ceiling", "assert_spectral_ceiling",
           "assert_equivariant_features", "EQUIVARIANCE_TOLERANCE", "MAX_ROTATIONS",
           "ROUNDING_FLOOR_ULPS"]

#: Most rotations :func:`assert_equivariant_features` takes (each costs two evaluations
#: of ``node_features``, a rotation and a roto-reflection): generous for a unit test (the
#: default is 3), and it keeps a typo such as ``10**9`` from trying to allocate the
#: rotation matrices (tens of GiB) and running for days.
MAX_ROTATIONS = 1000

#: Rounding floor of the per-irrep tolerance, in units of the features' machine epsilon
#: times their largest magnitude anywhere. Rounding in an equivariant computation is of
#: the order of ``eps`` times the magnitudes that enter it, so a small irrep block computed
#: beside (or through) a huge one may honestly carry about that much absolute error; 100
#: ulps leave room for the sums and products of a network. For float32 and float64 it is
#: below :data:`EQUIVARIANCE_TOLERANCE` (1.2e-5 < 1e-4, 2.2e-14 < 1e-9), so no block is
#: ever judged more loosely than the whole-feature rule of the diagnostic.
ROUNDING_FLOOR_ULPS = 100

BUDGETS = {"fast": {"frames": 1000, "n_boot": 50, "rotations": 4},
           "thorough": {"frames": None, "n_boot": 500, "rotations": 4}}
#: Absolute tolerance of :func:`assert_equivariant_features`, per features dtype, relative
#: to the largest feature magnitude (at least 1): the diagnostic's own table.
from ..backbone import EQUIVARIANCE_TOLERANCE, equivariance_tolerance  # noqa: E402


@dataclass
class CeilingMeasurement:
    """A measured ceiling and the diagnostic's verdict on it. ``ceiling``: the highest
    ``l`` whose point estimate is >= 0.5 (``None`` if none); ``status``: the degree's
    status from the 95 % intervals (:func:`empirical.diagnostic.degree_status`);
    ``cell_status``/``rho_ci`` per ``l``; ``capacity``: the probe widths tried at the
    boundary (``k``, rotations per configuration, solver, rho(dL), its interval, status)."""

    d: int
    ceiling: Optional[int]
    predicted: int
    rho: Dict[int, Optional[float]]
    seconds: float
    config: Dict = field(default_factory=dict)
    #: the diagnostic's record of the backbone: max abs errors and its verdict
    equivariance_error: Dict[str, float] = field(default_factory=dict)
    equivariant: Optional[bool] = None
    status: str = "untested"
    rho_ci: Dict[int, Optional[Tuple[Optional[float], Optional[float]]]] = field(
        default_factory=dict)
    cell_status: Dict[int, str] = field(default_factory=dict)
    capacity: List[Dict] = field(default_factory=list)

    def table(self) -> str:
        def row(l, r):
            ci = self.rho_ci.get(l)
            shown = "undefined" if r is None else f"{r:+.3f}"
            if ci is not None and None not in ci:
                shown += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
            if l in self.cell_status and l >= 1:
                shown += f"  {self.cell_status[l]}"
            return (f"  l = {l}: {shown}"
                    + ("   <- predicted ceiling dL" if l == self.predicted else ""))
        return "\n".join(row(l, r) for l, r in self.rho.items())

    def tried(self) -> str:
        """What the measurement tried: data, held-out samples and the probe widths."""
        c = self.config
        steps = "; ".join(f"k = {s['k']} x {s['rotations_per_config']} rotation(s), "
                          f"{s['solver']}: rho({self.predicted}) = "
                          + ("undefined" if s["rho"] is None else f"{s['rho']:.3f}")
                          + f" ({s['status']})" for s in self.capacity) or "none recorded"
        return (f"tried: budget {c.get('budget')!r}, {c.get('frames_used')} frames, "
                f"{c.get('n_test')} held-out samples ({c.get('rotations_per_config')} "
                f"rotation(s) per configuration); probe widths at the boundary: {steps}")


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
    if not isinstance(budget, str) or budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")


def _check_rotations(n_rotations) -> None:
    """``ValueError`` unless ``n_rotations`` is an integer in 1..:data:`MAX_ROTATIONS`."""
    if not is_int(n_rotations) or not 1 <= n_rotations <= MAX_ROTATIONS:
        raise ValueError(f"n_rotations must be an integer from 1 to {MAX_ROTATIONS} "
                         f"(MAX_ROTATIONS), got {n_rotations!r}")


def _check_seed(seed) -> None:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_atol(atol) -> None:
    if atol is None:
        return
    if (isinstance(atol, (bool, np.bool_)) or not isinstance(atol, (int, float, np.number))
            or not float(atol) >= 0):          # written so that NaN is refused
        raise ValueError(f"atol must be None or a number >= 0, got {atol!r}")


def _check_degree(d, expected=None) -> None:
    """``d`` an integer >= 1 and ``expected`` None or an integer >= 0 (the bound on ``d``
    from the target degrees needs ``L``: :func:`_check_degree_fits`)."""
    if not is_int(d) or d < 1:
        raise ValueError(f"probe degree d must be an integer >= 1, got {d!r}")
    if expected is not None and (not is_int(expected) or expected < 0):
        raise ValueError(f"expected must be None or an integer >= 0, got {expected!r}")


def _check_degree_fits(d: int, backbone) -> int:
    """``L`` of the backbone; ``ValueError`` naming ``d`` when the target degrees the
    measurement needs (up to ``d * L + 2``) pass the diagnostic's ``MAX_LMAX``."""
    from ..diagnostic import MAX_LMAX

    L = max(ir.l for _, ir in o3.Irreps(backbone.irreps_out))
    if d * L + 2 > MAX_LMAX:
        raise ValueError(f"probe degree d = {d} is too high for this backbone (L = {L}): "
                         f"the measurement needs target degrees up to d * L + 2 = "
                         f"{d * L + 2}, and they stop at {MAX_LMAX}")
    return L


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
    _check_degree(d)
    _check_seed(seed)
    start = time.perf_counter()
    backbone, dataset = _resolve(backbone, dataset)
    L = _check_degree_fits(d, backbone)
    b = BUDGETS[budget]
    frames = None if b["frames"] is None else min(b["frames"], dataset.n_frames)
    res = diagnose(backbones=[backbone], dataset=dataset, marked=marked, degrees=(d,),
                   lmax=d * L + 2, seed=seed, n_boot=b["n_boot"], frames=frames, k_sweep=(),
                   rotations_per_config=b["rotations"], progress=False, capacity="auto")
    s = res.summaries[d]
    rec = res.backbones[0]
    cfg = res.config
    return CeilingMeasurement(
        d=d, ceiling=s.measured_ceiling, predicted=s.ceiling, rho=dict(sorted(s.rho.items())),
        seconds=time.perf_counter() - start,
        config={"budget": budget, "frames": frames, "seed": seed,
                "frames_used": (cfg.get("dataset") or {}).get("frames_used"),
                "n_test": cfg.get("n_test"),
                "rotations_per_config": cfg.get("rotations_per_configuration")},
        equivariance_error=dict(rec.equivariance_error), equivariant=rec.equivariant,
        status=s.status,
        rho_ci={l: (None if ci is None else tuple(ci)) for l, ci in sorted(s.rho_ci.items())},
        cell_status={c.l: c.status for c in res.cells_of(d)},
        capacity=[c.to_dict() for c in s.capacity])


def assert_spectral_ceiling(backbone, d: int = 2, expected: Optional[int] = None,
                            **kwargs) -> CeilingMeasurement:
    """Pass when the backbone is equivariant and the diagnostic's status of degree ``d`` is
    ``"agrees"`` (docs/method.md §2.8: the boundary ``dL = d * L`` recovered and every
    ``l > dL`` blind, read from the 95 % intervals, after widening the probe within the
    budget). Otherwise ``AssertionError``:

    * with the equivariance error and its tolerance when the backbone is outside the
      theorem's premise (checked first, on the dataset's first frame, with the diagnostic's
      rule: rotations, and reflections unless the backbone says ``parity = False``; then
      again from the diagnostic's own record);
    * on ``"violates"``: the degrees above ``dL`` that exceed the blind band and the usual
      causes (not equivariant, declared irreps not the real content, target leakage);
    * on ``"boundary_not_reached"`` or ``"undecided"``: what was tried (frames, held-out
      samples, the probe widths) and what would decide it (``budget="thorough"``, more
      frames, more rotations per configuration), with the rho table.

    ``expected`` other than the theorem's ``d * L`` is the caller's own claim about the
    point-estimate ceiling (the highest ``l`` with rho >= 0.5) and is checked as such.
    ``kwargs`` go to :func:`spectral_ceiling`. Returns the measurement."""
    _check_budget(kwargs.get("budget", "fast"))
    _check_degree(d, expected)
    _check_seed(kwargs.get("seed", 0))
    name = _name(backbone)
    backbone, dataset = _resolve(backbone, kwargs.pop("dataset", "aspirin"))
    _check_degree_fits(d, backbone)
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
    if expected is not None and int(expected) != m.predicted:
        if m.ceiling != int(expected):
            raise AssertionError(
                f"spectral ceiling of {name} at d = {d}: measured {m.ceiling}, expected "
                f"{expected} (given; the theorem says {m.predicted}, status {m.status}); "
                f"held-out rho (recoverable >= 0.5):\n{m.table()}")
        return m
    if m.status != "agrees":
        raise AssertionError(_status_message(name, d, m))
    return m


def _status_message(name: str, d: int, m: CeilingMeasurement) -> str:
    """The failure message of a status other than ``"agrees"``."""
    from ..diagnostic import BLIND_BAND

    dl = m.predicted
    head = f"spectral ceiling of {name} at d = {d} (predicted dL = {dl}): status {m.status!r}"
    table = f"held-out rho [95 % interval]  status:\n{m.table()}"
    if m.status == "violates":
        out = [l for l, s in m.cell_status.items() if s == "exceeds"]
        return (f"{head}: rho at l = {out} lies wholly outside the blind band "
                f"[-{BLIND_BAND}, {BLIND_BAND}] above dL, which contradicts the theorem. "
                f"Usual causes: a model that is not equivariant (the equivariance check "
                f"passed here: errors {m.equivariance_error}; run "
                f"assert_equivariant_features to check every irrep copy), declared "
                f"irreps_out that are not the real content (a degree above the declared L), "
                f"or target leakage.\n{table}")
    widths = "; ".join(f"l = {l}: width {ci[1] - ci[0]:.3f}" for l, ci in m.rho_ci.items()
                       if l >= 1 and m.cell_status.get(l) == "undecided"
                       and ci is not None and None not in ci)
    if m.status == "boundary_not_reached":
        what = (f"every l > {dl} is blind (the upper bound holds) but rho({dl}) is not "
                f"recovered even at the widest probe tried: the features do not carry "
                f"degree {dl} to this probe. What would decide it: a wider probe with more "
                f"samples (budget='thorough', more frames, more rotations per configuration)")
    else:
        what = (f"the intervals are too wide to decide ({widths or 'undefined intervals'}). "
                f"What would decide it: more frames (budget='thorough' uses every frame) or "
                f"more rotations per configuration; the widths shrink about as one over the "
                f"square root of the held-out samples")
    return f"{head}: {what}. {m.tried()}.\n{table}"


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


def _copies(irreps: o3.Irreps):
    """``(label, slice, mul, dim)`` per entry of ``irreps``: the entry's columns hold
    ``mul`` copies of one irrep, ``dim = 2l + 1`` columns each."""
    return [(f"{mul}x{ir}", sl, mul, ir.dim) for (mul, ir), sl in zip(irreps, irreps.slices())
            if mul > 0]


def _per_copy_max(x: torch.Tensor, blocks) -> torch.Tensor:
    """Largest ``|x|`` over atoms and components of every irrep copy, in the order of
    :func:`_copies` (one value per copy)."""
    parts = [x[:, sl].abs().reshape(x.shape[0], mul, dim).amax(dim=(0, 2))
             for _, sl, mul, dim in blocks]
    return torch.cat(parts) if parts else x.new_zeros(0)


def _copy_names(blocks):
    """``"1o copy 2 of 3x1o, features[:, 5:8]"`` per copy, in the order of :func:`_copies`."""
    names = []
    for label, sl, mul, dim in blocks:
        ir = label.split("x", 1)[1]
        for c in range(mul):
            lo = sl.start + c * dim
            names.append((f"{ir} copy {c} of {label}" if mul > 1 else label)
                         + f", features[:, {lo}:{lo + dim}]")
    return names


def _copy_tolerances(features: torch.Tensor, irreps: o3.Irreps,
                    atol: Optional[float] = None) -> torch.Tensor:
    """The tolerance of every irrep copy of ``features`` (order of ``irreps``' entries and
    copies): ``atol`` for all when given, else the larger of the dtype's relative tolerance
    (:func:`~empirical.backbone.equivariance_tolerance` of the copy's own largest
    magnitude) and the rounding floor ``ROUNDING_FLOOR_ULPS * eps * max |features|``."""
    blocks = _copies(irreps)
    n = sum(mul for _, _, mul, _ in blocks)
    if atol is not None:
        return torch.full((n,), float(atol), dtype=torch.float64)
    scale = _per_copy_max(features.double(), blocks)
    floor = ROUNDING_FLOOR_ULPS * torch.finfo(features.dtype).eps * float(features.abs().max())
    rel = torch.tensor([equivariance_tolerance(features.dtype, float(v)) for v in scale],
                       dtype=torch.float64)
    return torch.clamp(rel, min=floor)


def _check_equivariant(backbone, positions, numbers, n_rotations: int, seed: int,
                       atol: Optional[float], reflections: bool = True,
                       name: Optional[str] = None) -> Dict[str, float]:
    """Measure ``node_features(R x) - D(R) node_features(x)`` for seeded rotations (and
    roto-reflections ``-R`` if ``reflections``), every output checked for shape and
    finiteness, then assert that every irrep copy's largest error is within its own
    tolerance (:func:`_copy_tolerances`; a NaN error fails). Returns the largest error
    over all features per rotation."""
    from ..backbone import check_protocol
    from ..diagnostic import haar_rotations, model_dtype

    _check_rotations(n_rotations)
    _check_seed(seed)
    _check_atol(atol)
    try:
        check_protocol(backbone)
    except TypeError as exc:
        raise AssertionError(str(exc)) from None
    name = name or type(backbone).__name__
    irreps = o3.Irreps(backbone.irreps_out)
    blocks = _copies(irreps)
    dtype = model_dtype(backbone)   # positions reach the model in its own dtype
    pos, num = _input_arrays(positions, numbers, dtype)
    f = _checked_features(backbone, pos, num, irreps.dim, "the unrotated configuration")
    errors: Dict[str, float] = {}
    per_copy = []                   # one row per rotation: the largest error of each copy
    for i, R in enumerate(haar_rotations(n_rotations, seed)):
        R = torch.as_tensor(R, dtype=torch.float64)
        for label, Q in [("rotation", R), ("reflection", -R)][:2 if reflections else 1]:
            with default_dtype(torch.float64):   # e3nn builds its generators in it
                D = irreps.D_from_matrix(Q)
            f_rot = _checked_features(backbone, pos @ Q.to(dtype).T, num, irreps.dim,
                                      f"{label} {i}")
            diff = f_rot.to(f.device).double() - f.double() @ D.to(f.device).T
            errors[f"{label} {i}"] = float(diff.abs().max())
            per_copy.append(_per_copy_max(diff.cpu(), blocks))
    labels = list(errors)
    err = torch.stack(per_copy)                      # (rotations, copies)
    worst_err, worst_at = err.max(dim=0)
    tol = _copy_tolerances(f.detach().cpu(), irreps, atol)
    bad = [c for c in range(len(tol)) if not (worst_err[c] <= tol[c])]   # NaN fails
    if bad:
        names = _copy_names(blocks)
        bad.sort(key=lambda c: -float(worst_err[c] / max(float(tol[c]), 1e-300)))
        shown = bad[:5]
        rule = ("atol" if atol is not None else
                f"EQUIVARIANCE_TOLERANCE x max(1, the copy's largest feature), at least "
                f"{ROUNDING_FLOOR_ULPS} eps x the largest feature {float(f.abs().max()):.3e}")
        raise AssertionError(
            f"{name}.node_features is not equivariant ({f.dtype}): "
            + "; ".join(f"{names[c]}: max abs error {float(worst_err[c]):.3e} "
                        f"({labels[int(worst_at[c])]}) > tolerance {float(tol[c]):.1e}"
                        for c in shown)
            + (f"; and {len(bad) - len(shown)} more irrep copies" if len(bad) > len(shown)
               else "")
            + f" (tolerance per irrep copy: {rule}); largest errors per rotation: "
            + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return errors


def assert_equivariant_features(backbone, positions=None, numbers=None, n_rotations: int = 3,
                                seed: int = 0, atol: Optional[float] = None) -> Dict[str, float]:
    """``node_features(R x) == D(R) node_features(x)`` for ``n_rotations`` seeded random
    rotations and as many roto-reflections (``-R``), with ``D`` from
    ``irreps_out.D_from_matrix``. Every output must be a real floating array of shape
    ``(atoms, irreps_out.dim)`` without NaN or inf (else ``AssertionError`` saying which).
    Measures every error, then judges every irrep copy of ``irreps_out`` (each ``2l + 1``
    columns of each ``mul x ir`` entry) on its own, so that one large scalar cannot hide a
    broken vector: its largest error over all rotations must be within ``atol`` if given,
    else within :data:`EQUIVARIANCE_TOLERANCE` of the features' dtype times ``max(1, the
    copy's largest magnitude)``, but never below the rounding floor
    :data:`ROUNDING_FLOOR_ULPS` ``x eps x max |features|``; a NaN error fails, and the
    message names each failing copy (irrep and columns), its error and its tolerance.
    ``positions``/``numbers`` default to the first shipped aspirin frame (``ValueError``
    when they are not ``(atoms, 3)`` finite and ``(atoms,)`` integers). ``n_rotations``
    must be an integer from 1 to :data:`MAX_ROTATIONS`, ``seed`` a non-negative integer,
    ``atol`` None or a number >= 0 (else ``ValueError``, before anything runs). Returns
    the largest error over all features per rotation (``"rotation i"``,
    ``"reflection i"``)."""
    _check_rotations(n_rotations)
    _check_seed(seed)
    _check_atol(atol)
    if positions is None:
        from ..data import load as load_data
        data = load_data("aspirin")
        positions, numbers = data.positions[0], data.numbers
    return _check_equivariant(backbone, positions, numbers, n_rotations, seed, atol)
