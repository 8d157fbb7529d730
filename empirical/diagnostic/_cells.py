r"""Stage 3 of the diagnostic: the probe cells of one backbone (docs/method.md §2.5-§2.7).

:func:`probe_backbone` is ``FeatureSet + plan + reference energies -> BackboneProbes``:
for every probe degree ``d`` one :class:`~empirical.diagnostic.SpectralProbe` per target
kind (all ``s_l`` at once; all injected residuals at once) fitted on the probe-training
samples, its held-out predictions, and the per-backbone numbers of every ``(d, l)`` cell;
then the capacity sweep (ridge point estimates at the boundary ``dL`` and ``dL + 1`` for
several widths). A sweep width equal to the main fit's width reuses the main fit's
predictions (the same probe on the same data: the fit is column by column).

Injected residual (needs ``energy``): :math:`r = (E_{ref} - E_{bb}) + \varepsilon s_l`,
centred with its probe-training mean. :math:`\varepsilon` is the plan's ``eps`` or, per
backbone, the standard deviation of :math:`E_{ref} - E_{bb}` on the probe-training
configurations (:data:`EPS_DEFINITION`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..runtime import SAMPLES_PER_COEFFICIENT
from ._features import FeatureSet, signals
from ._probe import SpectralProbe, make_reduction, n_monomials
from ._result import CapacityPoint, ProbeRecord
from .statistics import pearson, r2_injected, raw_gain

__all__ = ["DegreeFit", "BackboneProbes", "probe_backbone", "merge_probes", "EPS_DEFINITION",
           "as_float"]

EPS_DEFINITION = ("per backbone, the standard deviation of the energy error E_ref - "
                  "E_backbone over the probe-training configurations (signal-to-noise 1 "
                  "for the centred residual the probe is trained on; held-out "
                  "configurations are never used to set the target)")


def as_float(x) -> Optional[float]:
    """``float(x)``, or ``None`` for ``None`` and non-finite values (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass(frozen=True, eq=False)
class DegreeFit:
    """Held-out predictions of one backbone's probes of degree ``d``.

    ``pred_s[:, l - 1]`` predicts ``s_te[:, l]`` (``l >= 1``); ``pred_r[:, l - 1]`` predicts
    the injected residual of ``s_l`` (``None`` without energies); ``train_mean[l]`` is the
    probe-training mean of ``s_l`` (the baseline of the raw gain)."""

    d: int
    k: int
    pred_s: np.ndarray
    pred_r: Optional[np.ndarray]
    s_te: np.ndarray
    train_mean: np.ndarray


@dataclass(frozen=True, eq=False)
class BackboneProbes:
    """Everything the summary stage needs of one backbone."""

    name: str
    eps: Optional[float]
    energy_error_rmse_meV: Optional[float]
    fits: Dict[int, DegreeFit]
    records: List[ProbeRecord]
    sweep: List[CapacityPoint]
    warnings: List[str] = field(default_factory=list)


def _probe(plan, irreps, d: int, k: int, solver: Optional[str] = None) -> SpectralProbe:
    """The run's probe of degree ``d`` and width ``k`` (the plan's reduction, folds, seed)."""
    return SpectralProbe(d=d, k=k, irreps=irreps, reduction=plan.reduction,
                         solver=solver or plan.spn, folds=plan.folds, seed=plan.cv_seed)


def probe_backbone(name: str, features: FeatureSet, plan,
                   reference_energies: Optional[np.ndarray] = None,
                   progress=None, degrees: Optional[Sequence[int]] = None) -> BackboneProbes:
    """Fit and evaluate every probe of one backbone (see the module docstring).

    Parameters
    ----------
    name : backbone name (for the records)
    features : the backbone's :class:`FeatureSet` on the plan's samples
    plan : :class:`~empirical.diagnostic.DiagnosePlan`
    reference_energies : (samples,) eV, the dataset's energies of the plan's samples
        (``plan.energies(dataset)``); needed, with the backbone's energies, for R2_inj
    progress : called with 1 after every fit
    degrees : the plan's probe degrees to fit (default all). Every degree's fits and
        capacity-sweep rows depend on nothing but that degree, so the parts of separate
        calls joined by :func:`merge_probes` equal one call with every degree (tested; the
        sweep's tasks are one backbone and one ``d`` each).
    """
    tick = progress or (lambda _: None)
    train, test, groups = plan.train_idx, plan.test_idx, plan.groups
    lmax = plan.lmax
    S = signals(features.directions, plan.coefficients)
    x = features.features
    x_tr, x_te = x[train], x[test]
    if features.energies is not None and reference_energies is not None:
        err = np.asarray(reference_energies, dtype=float) - features.energies
        eps = plan.eps if plan.eps is not None else float(np.std(err[train]))
        if not eps > 0:
            raise ValueError(f"backbone {name!r}: its energy error has zero spread; "
                             "give eps explicitly")
        rmse = float(np.sqrt(np.mean(err[train] ** 2)) * 1e3)
    else:
        err, eps, rmse = None, None, None
    warnings: List[str] = []
    fits: Dict[int, DegreeFit] = {}
    records: List[ProbeRecord] = []
    targets_tr = S[train][:, 1:]
    s_te = S[test]
    train_mean = S[train].mean(axis=0)
    chosen = tuple(plan.degrees) if degrees is None else tuple(degrees)
    unknown = [d for d in chosen if d not in plan.degrees]
    if unknown:
        raise ValueError(f"probe degrees {unknown} are not in the plan's {list(plan.degrees)}")
    for d in chosen:
        # ridge: every target (s_l and residuals) from one eigendecomposition per fold
        y = (np.concatenate([targets_tr, _residual(err, eps, S, train)], axis=1)
             if err is not None and plan.spn == "ridge" else targets_tr)
        probe_s = _probe(plan, features.irreps, d, plan.k[d]).fit(x_tr, y, groups[train])
        k_eff = int(probe_s.k_)
        M = n_monomials(k_eff, d)
        if len(train) < SAMPLES_PER_COEFFICIENT * M:
            warnings.append(f"{name}, d={d}: {len(train)} training samples for {M} monomials "
                            f"(k={k_eff}): fewer than twice the monomials; the probe may be "
                            "capacity- or sample-limited")
        pred = probe_s.predict(x_te)
        if plan.spn == "ridge":
            pred_s = pred[:, :lmax]
            pred_r = None if err is None else pred[:, lmax:]
        else:   # the trained SPN learns one reduction per target kind
            pred_s = pred
            pred_r = None if err is None else _probe(plan, features.irreps, d, plan.k[d]).fit(
                x_tr, _residual(err, eps, S, train), groups[train]).predict(x_te)
        tick(1)
        fits[d] = DegreeFit(d=d, k=k_eff, pred_s=pred_s, pred_r=pred_r, s_te=s_te,
                            train_mean=train_mean)
        for l in plan.ls:
            if l == 0:
                rho = gain = r2 = None
            else:
                rho = pearson(pred_s[:, l - 1], s_te[:, l])
                gain = raw_gain(pred_s[:, l - 1], s_te[:, l], float(train_mean[l]))
                r2 = (None if pred_r is None else
                      r2_injected(pred_r[:, l - 1], eps * s_te[:, l], eps))
            records.append(ProbeRecord(backbone=name, d=d, l=l, rho=as_float(rho),
                                       r2_inj=as_float(r2), gain=as_float(gain)))
    sweep = _capacity_sweep(name, features.irreps, x_tr, x_te, S, plan, fits, tick, chosen)
    return BackboneProbes(name=name, eps=eps, energy_error_rmse_meV=rmse, fits=fits,
                          records=records, sweep=sweep, warnings=warnings)


def merge_probes(parts: Sequence[BackboneProbes], plan) -> BackboneProbes:
    """One backbone's probes from parts fitted on disjoint probe degrees (each a
    :func:`probe_backbone` call with ``degrees``), in the order one call with every
    degree gives: records by ``d``, sweep rows by width then ``d``, warnings by ``d``.
    ``ValueError`` when the parts are of different backbones or miss or repeat a degree."""
    if not parts:
        raise ValueError("no probe parts to merge")
    names = {p.name for p in parts}
    if len(names) != 1:
        raise ValueError(f"probe parts of different backbones: {sorted(names)}")
    by_d = {}
    for p in parts:
        for d in p.fits:
            if d in by_d:
                raise ValueError(f"probe degree d={d} is in two parts")
            by_d[d] = p
    if sorted(by_d) != sorted(plan.degrees):
        raise ValueError(f"the parts fit degrees {sorted(by_d)}, the plan has "
                         f"{list(plan.degrees)}")
    first = parts[0]
    order = {d: i for i, d in enumerate(plan.degrees)}
    widths = {m: i for i, m in enumerate(plan.k_sweep)}
    sweep = sorted((r for p in parts for r in p.sweep),
                   key=lambda r: (widths[r.channels_per_degree], order[r.d]))
    warnings: List[str] = []
    for d in plan.degrees:
        warnings += [w for w in by_d[d].warnings if f", d={d}:" in w and w not in warnings]
    for p in parts:   # anything not tied to a degree, once
        warnings += [w for w in p.warnings if w not in warnings]
    return BackboneProbes(
        name=first.name, eps=first.eps, energy_error_rmse_meV=first.energy_error_rmse_meV,
        fits={d: by_d[d].fits[d] for d in plan.degrees},
        records=[r for d in plan.degrees for r in by_d[d].records if r.d == d],
        sweep=sweep, warnings=warnings)


def _residual(err: np.ndarray, eps: float, S: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Probe-training injected residuals of ``s_1..s_lmax``, centred (the constant offset
    of the backbone's energy would otherwise ride on the intercept into R2_inj)."""
    resid = err[:, None] + eps * S[:, 1:]
    return resid[train] - resid[train].mean(axis=0)


def _capacity_sweep(name, irreps, x_tr, x_te, S, plan, fits, tick,
                    degrees) -> List[CapacityPoint]:
    """Point estimates of rho(dL), rho(dL + 1) for ``m`` channels per degree (ridge)."""
    rows: List[CapacityPoint] = []
    train, test = plan.train_idx, plan.test_idx
    for m in plan.k_sweep:
        width = m * plan.width
        for d in degrees:
            tick(1)
            dl = plan.predicted[d].ceiling
            cols = [l for l in (dl, dl + 1) if 1 <= l <= plan.lmax]
            if not cols:
                continue
            if plan.spn == "ridge" and width == plan.k[d]:   # the main fit itself
                k_eff = fits[d].k
                pred = fits[d].pred_s[:, [l - 1 for l in cols]]
            else:
                # the width is known before the (possibly large) fit: skip it when too wide
                k_eff = int(make_reduction(plan.reduction, irreps, width).fit(x_tr).k_)
                if SAMPLES_PER_COEFFICIENT * n_monomials(k_eff, d) > len(train):
                    continue
                pred = _probe(plan, irreps, d, width, solver="ridge").fit(
                    x_tr, S[train][:, cols], plan.groups[train]).predict(x_te)
            M = n_monomials(k_eff, d)
            if SAMPLES_PER_COEFFICIENT * M > len(train):
                continue
            for j, l in enumerate(cols):
                rows.append(CapacityPoint(backbone=name, channels_per_degree=int(m),
                                          k=int(k_eff), monomials=int(M), d=d, l=l,
                                          rho=as_float(pearson(pred[:, j], S[test][:, l]))))
    return rows
