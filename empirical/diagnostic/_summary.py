"""Stage 4 of the diagnostic: pool the backbones, bootstrap, verdicts (docs/method.md §2.7,
§2.8).

Every cell's ``status`` and every degree's ``status`` are read from the 95 % intervals
(:func:`~empirical.diagnostic.cell_status`, :func:`~empirical.diagnostic.degree_status`);
``agreement`` is ``status == "agrees"`` (``None`` when untested). With one backbone the
interval is the bootstrap over its held-out samples; with several, the hierarchical one.

:func:`summarize` is ``[BackboneProbes] + plan -> ({d: DegreeSummary}, [Cell])``. Point
estimates follow the one rule of :meth:`ClusterBootstrap.point_estimate` (the mean over
backbones of each backbone's statistic on its held-out samples); intervals come from one
hierarchical cluster-bootstrap plan shared by every cell, so contrasts between cells are
paired. The cliff ratio gets a Fieller-type confidence set
(:func:`~empirical.diagnostic.statistics.ratio_confidence_set`), never a percentile
interval of per-resample ratios.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple


from ._cells import BackboneProbes, as_float
from ._result import Cell, DegreeSummary
from ._verdict import (UNDECIDED, UNDEFINED, agreement_of, cell_status, degree_status,
                       measured_ceiling, verdict)
from .statistics import (PEARSON, R2_INJECTED, RAW_GAIN, ClusterBootstrap, cliff_ratio,
                         ratio_confidence_set)

__all__ = ["summarize"]


def summarize(probes: Sequence[BackboneProbes], plan
              ) -> Tuple[Dict[int, DegreeSummary], List[Cell]]:
    """Pool the backbones' held-out predictions of every ``(d, l)`` cell (see the module
    docstring). Returns the per-degree summaries and the cells, in ``(d, l)`` order."""
    n_test = len(plan.test_idx)
    boot = ClusterBootstrap([n_test] * len(probes), n_boot=plan.n_boot,
                            seed=plan.bootstrap_seed)
    has_energy = all(p.eps is not None and p.fits[plan.degrees[0]].pred_r is not None
                     for p in probes)
    summaries: Dict[int, DegreeSummary] = {}
    cells: List[Cell] = []
    for d in plan.degrees:
        pred = plan.predicted[d]
        dl, above = pred.ceiling, pred.ceiling + 1
        fits = [p.fits[d] for p in probes]
        rho, rho_ci, r2, r2_ci, gain, gain_ci = {}, {}, {}, {}, {}, {}
        dist_rho, dist_gain = {}, {}
        for l in plan.ls:
            if l == 0:        # s_0 is constant: every statistic is undefined
                rho[l] = rho_ci[l] = r2[l] = r2_ci[l] = gain[l] = gain_ci[l] = None
                continue
            preds = [f.pred_s[:, l - 1] for f in fits]
            targets = [f.s_te[:, l] for f in fits]
            rho[l] = as_float(boot.point_estimate(PEARSON, preds, targets))
            dist_rho[l] = boot.mean_of_cluster_stat(PEARSON, preds, targets)
            rho_ci[l] = boot.interval(dist_rho[l])
            means = [{"train_mean": float(f.train_mean[l])} for f in fits]
            gain[l] = as_float(boot.point_estimate(RAW_GAIN, preds, targets,
                                                   cluster_kwargs=means))
            dist_gain[l] = boot.mean_of_cluster_stat(RAW_GAIN, preds, targets,
                                                     cluster_kwargs=means)
            gain_ci[l] = boot.interval(dist_gain[l])
            if has_energy:
                rp = [f.pred_r[:, l - 1] for f in fits]
                sig = [p.eps * f.s_te[:, l] for p, f in zip(probes, fits)]
                eps = [{"eps": p.eps} for p in probes]
                r2[l] = as_float(boot.point_estimate(R2_INJECTED, rp, sig, cluster_kwargs=eps))
                r2_ci[l] = boot.interval(boot.mean_of_cluster_stat(
                    R2_INJECTED, rp, sig, cluster_kwargs=eps))
            else:
                r2[l] = r2_ci[l] = None
        if 1 <= dl and above <= plan.lmax:
            delta = as_float(gain[dl] - gain[above])
            delta_ci = boot.interval(dist_gain[dl] - dist_gain[above])
            ratio = as_float(cliff_ratio(rho[dl], rho[above]))
            ratio_set = (None if rho[dl] is None or rho[above] is None else
                         ratio_confidence_set(rho[dl], rho[above], dist_rho[dl],
                                              dist_rho[above], level=boot.level).to_dict())
        else:
            delta = delta_ci = ratio = ratio_set = None
        statuses: Dict[int, str] = {}
        for l in plan.ls:
            label = pred.label(l)
            measured = verdict(rho[l])
            agrees = None if measured == UNDEFINED else measured == label
            if l >= 1:     # l = 0 (constant target) takes no part in the verdict
                statuses[l] = cell_status(l, dl, rho_ci[l])
            cells.append(Cell(d=d, l=l, predicted=label, rho=rho[l], rho_ci=rho_ci[l],
                              r2_inj=r2[l], measured=measured, agrees=agrees,
                              status=statuses.get(l, UNDECIDED)))
        status = degree_status(statuses, dl)
        summaries[d] = DegreeSummary(
            d=d, ceiling=dl, measured_ceiling=measured_ceiling(rho),
            rho=rho, rho_ci=rho_ci, r2_inj=r2, r2_inj_ci=r2_ci, gain=gain, gain_ci=gain_ci,
            rho_boundary=rho.get(dl), rho_above=rho.get(above), cliff_ratio=ratio,
            cliff_ratio_ci=ratio_set, delta_contrast=delta, delta_contrast_ci=delta_ci,
            agreement=agreement_of(status), status=status)
    return summaries, cells

