r"""Stage 4b of the diagnostic: widen the probe before blaming the model, and the spread
of the probe fit (docs/method.md §2.6).

:func:`widen_and_refit` is ``plan + probes + features + summaries + cells -> the same,
with every degree's capacity curve and refit spread``. For every probe degree ``d`` whose
boundary ``l = dL`` is measured:

* **capacity** (``plan.capacity == "auto"``): when the boundary cell is not
  ``"recovered"`` (:func:`~empirical.diagnostic.cell_status`) at the run's width, the probe
  is refitted at the wider widths of :func:`~._plan.capacity_steps` (``m`` channels per
  feature degree, up to :data:`~._plan.MAX_CAPACITY_CHANNELS`, each with the fewest
  rotations per configuration, up to :data:`~._plan.MAX_AUTO_ROTATIONS`, that keep
  :data:`~empirical.runtime.SAMPLES_PER_COEFFICIENT` training samples per monomial; the
  features of extra rotations come from the features stage). It stops when rho(dL) is
  recovered, or has saturated (it gained less than :data:`SATURATION_GAIN` over the last
  width), or at the widest width the budget allows. Where the ridge probe still falls
  short at the widest step, the trained SPN is fitted there too (``reduction="irrep"``;
  rho only: its R2_inj is not measured).
  The degree's summary, cells and per-backbone numbers become those of the widest step
  tried (the trained SPN's when it recovers the boundary and the ridge one does not).
  When the boundary is recovered at the run's width nothing is refitted.
* **refit spread**: rho(dL) refitted (ridge) at the summary's width under :data:`REFIT_SEEDS`
  further splits of the configurations and cross-validation folds (stream
  ``[seed, STREAMS["refit"], j]``), the features reused: what the bootstrap interval (over
  held-out samples, given one fit) does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..runtime import STREAMS, stream
from ._cells import BackboneProbes, as_float, probe_backbone
from ._features import FeatureSet, signals
from ._plan import (MAX_AUTO_ROTATIONS, MAX_CAPACITY_CHANNELS, DiagnosePlan, capacity_steps,
                    widened_plan)
from ._probe import LAMBDA_GRID, SpectralProbe
from ._result import CapacityStep, Cell, DegreeSummary, RefitSpread
from ._summary import summarize
from ._verdict import RECOVERED, cell_status
from .statistics import pearson

__all__ = ["widen_and_refit", "capacity_config", "refit_spread", "SATURATION_GAIN",
           "REFIT_SEEDS"]

#: The widening stops when rho(dL) gained less than this over the last width.
SATURATION_GAIN = 0.02
#: Further seeds of split and cross-validation folds for the refit spread.
REFIT_SEEDS = 3

#: ``extract(i, plan) -> FeatureSet``: backbone ``i``'s features on a widened plan.
Extract = Callable[[int, DiagnosePlan], FeatureSet]


def capacity_config(mode: str) -> Dict:
    """``config.capacity`` of ``results.json``: the widening rule."""
    return {"mode": mode, "max_rotations_per_config": MAX_AUTO_ROTATIONS,
            "max_channels_per_degree": MAX_CAPACITY_CHANNELS,
            "saturation_gain": SATURATION_GAIN, "refit_seeds": REFIT_SEEDS}


@dataclass(frozen=True, eq=False)
class _Fit:
    """One probe width of one degree: its plan, every backbone's probes and features, the
    pooled summary and cells."""

    plan: DiagnosePlan
    probes: List[BackboneProbes]
    features: List[FeatureSet]
    summary: DegreeSummary
    cells: List[Cell]
    widened: bool = False

    def step(self) -> CapacityStep:
        dl = self.summary.ceiling
        ci = self.summary.rho_ci.get(dl)
        return CapacityStep(k=int(self.probes[0].fits[self.summary.d].k),
                            rotations_per_config=int(self.plan.rotations_per_config),
                            solver=self.plan.spn, rho=self.summary.rho.get(dl), rho_ci=ci,
                            status=cell_status(dl, dl, ci),
                            features=([_brief(fs) for fs in self.features]
                                      if self.widened else None))


def _brief(fs: FeatureSet) -> Optional[Dict]:
    """How a widened step's features were obtained (docs/method.md §2.13): method, model
    runs, derived samples, the per-run check, any fallback."""
    rec = getattr(fs, "rotations", None)
    if rec is None:
        return None
    return {k: rec[k] for k in ("method", "model_runs", "derived", "check", "fallback")
            if k in rec}


def widen_and_refit(plan: DiagnosePlan, probes: Sequence[BackboneProbes],
                    features: Sequence[FeatureSet], summaries: Dict[int, DegreeSummary],
                    cells: Sequence[Cell], extract: Optional[Extract] = None,
                    reference: Optional[Callable[[DiagnosePlan], Optional[np.ndarray]]] = None,
                    progress: Optional[Callable[[str], None]] = None
                    ) -> Tuple[List[BackboneProbes], Dict[int, DegreeSummary], List[Cell]]:
    """The capacity curve and refit spread of every degree (see the module docstring).

    ``extract(i, plan)`` gives backbone ``i``'s features on a plan with more rotations per
    configuration (``None``: widths that need them are not tried); ``reference(plan)`` the
    dataset's energies of its samples (for R2_inj; ``None``: none). Returns the probes,
    summaries and cells with each widened degree's numbers replaced by its widest step's."""
    probes, summaries, cells = list(probes), dict(summaries), list(cells)
    cache = {plan.rotations_per_config: list(features)}
    for d in plan.degrees:
        dl = plan.predicted[d].ceiling
        if not 1 <= dl <= plan.lmax:
            continue
        if progress:
            progress(f"capacity d={d}")
        fit = _Fit(plan, probes, list(features), summaries[d], [c for c in cells if c.d == d])
        steps = [fit.step()]
        if plan.capacity == "auto" and steps[0].status != RECOVERED:
            fit, steps = _widen(fit, d, steps, cache, extract, reference)
        summaries[d] = replace(fit.summary, capacity=steps,
                               refit_spread=refit_spread(fit.plan, fit.features, d,
                                                         fit.summary.rho.get(dl)))
        if fit.plan is not plan:
            cells = [c for c in cells if c.d != d] + fit.cells
            probes = [_with_degree(p, q, d, plan) for p, q in zip(probes, fit.probes)]
    order = {dd: i for i, dd in enumerate(plan.degrees)}
    cells.sort(key=lambda c: (order[c.d], c.l))
    return probes, summaries, cells


def _widen(base: _Fit, d: int, steps: List[CapacityStep], cache, extract, reference
           ) -> Tuple[_Fit, List[CapacityStep]]:
    """Refit at wider widths until recovered, saturated or out of budget; then the trained
    SPN at the widest width if the ridge probe still falls short."""
    plan = base.plan
    fit = base
    train_configurations = int((~plan.test_configurations).sum())
    for k, rotations in capacity_steps(d, plan.width, plan.k[d], train_configurations,
                                       plan.rotations_per_config):
        if rotations not in cache and extract is None:
            break
        fit = _fit_at(plan, d, k, rotations, plan.spn, cache, extract, reference, base)
        steps.append(fit.step())
        if steps[-1].status == RECOVERED:
            return fit, steps
        if steps[-1].rho is None or steps[-2].rho is None or \
                steps[-1].rho - steps[-2].rho < SATURATION_GAIN:
            break
    if plan.spn == "ridge" and plan.reduction == "irrep":
        trained = _fit_at(plan, d, fit.plan.k[d], fit.plan.rotations_per_config, "trained",
                          cache, extract, reference, base)
        steps.append(trained.step())
        if steps[-1].status == RECOVERED:
            return trained, steps
    return fit, steps


def _fit_at(plan: DiagnosePlan, d: int, k: int, rotations: int, solver: str, cache,
            extract, reference, base: _Fit) -> _Fit:
    """The probes of degree ``d`` at width ``k`` with ``rotations`` per configuration."""
    step = widened_plan(plan, rotations, k, d, spn=solver)
    if rotations not in cache:
        cache[rotations] = [extract(i, step) for i in range(len(base.probes))]
    fsets = cache[rotations]
    # the trained SPN learns a second network for the injected residuals: its step reads
    # rho only (R2_inj not measured there)
    energies = reference(step) if reference is not None and solver == "ridge" else None
    probes = [probe_backbone(p.name, fs, step, energies) for p, fs in zip(base.probes, fsets)]
    summary, cells = summarize(probes, step)
    return _Fit(step, probes, fsets, summary[d], cells, widened=True)


def _with_degree(p: BackboneProbes, q: BackboneProbes, d: int, plan) -> BackboneProbes:
    """Backbone probes ``p`` with degree ``d``'s fit and records taken from ``q``."""
    order = {dd: i for i, dd in enumerate(plan.degrees)}
    records = sorted([r for r in p.records if r.d != d] + list(q.records),
                     key=lambda r: order[r.d])
    return replace(p, fits={**p.fits, d: q.fits[d]}, records=records,
                   warnings=list(p.warnings) + [w for w in q.warnings if w not in p.warnings])


def refit_split(plan: DiagnosePlan, j: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` sample indices of refit ``j``: the plan's numbers of
    configurations on each side, drawn from ``[seed, STREAMS["refit"], j]``."""
    n = len(plan.frames)
    n_test = int(plan.test_configurations.sum())
    perm = np.random.default_rng(stream(plan.seed, STREAMS["refit"], j)).permutation(n)
    test_cfg = np.zeros(n, dtype=bool)
    test_cfg[perm[:n_test]] = True
    test = test_cfg[plan.groups]
    return np.flatnonzero(~test), np.flatnonzero(test)


def refit_spread(plan: DiagnosePlan, features: Sequence[FeatureSet], d: int,
                 rho_run: Optional[float], seeds: int = REFIT_SEEDS) -> RefitSpread:
    """rho(dL) of degree ``d`` (mean over backbones of each one's held-out rho, as the
    point estimate) under ``seeds`` further splits and folds, beside ``rho_run``. The
    refits are ridge probes whatever the plan's solver (a trained SPN per refit costs
    minutes on a full dataset), their penalty chosen on their own folds by a downhill walk
    on the run's grid (:func:`~._probe.fit_ridge` ``start``; the first refit of a backbone
    starts mid-grid, the next ones from the penalty the previous one chose)."""
    dl = plan.predicted[d].ceiling
    values: List[Optional[float]] = [as_float(rho_run)]
    k_eff = int(plan.k[d])
    starts = [len(LAMBDA_GRID) // 2] * len(features)
    targets = [signals(fs.directions, {l: plan.coefficients[l] for l in range(dl + 1)})[:, dl]
               for fs in features]
    for j in range(1, int(seeds) + 1):
        train, test = refit_split(plan, j)
        cv_seed = stream(plan.seed, STREAMS["refit"], j, STREAMS["cv"])
        rhos = []
        for i, (fs, s) in enumerate(zip(features, targets)):
            probe = SpectralProbe(d=d, k=plan.k[d], irreps=fs.irreps, reduction=plan.reduction,
                                  solver="ridge", folds=plan.folds, seed=cv_seed,
                                  lambda_start=starts[i])
            pred = probe.fit(fs.features[train], s[train],
                             plan.groups[train]).predict(fs.features[test])
            starts[i] = LAMBDA_GRID.index(float(probe.lambdas_[0]))
            rhos.append(pearson(np.asarray(pred), s[test]))
        values.append(as_float(np.mean(rhos)) if all(np.isfinite(rhos)) else None)
        k_eff = int(probe.k_)
    defined = [v for v in values if v is not None]
    spread = as_float(max(defined) - min(defined)) if len(defined) >= 2 else None
    sd = as_float(np.std(defined, ddof=1)) if len(defined) >= 2 else None
    return RefitSpread(k=k_eff, rotations_per_config=int(plan.rotations_per_config),
                       seeds=int(seeds), rho=values, spread=spread, sd=sd)
