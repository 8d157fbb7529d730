r"""Statistics of the spectral-injection diagnostic, their hierarchical cluster bootstrap,
and the Fieller confidence set of the cliff ratio (``docs/method.md`` §2.7).

Point statistics (one probe, held-out samples)
----------------------------------------------
* :func:`pearson`: Pearson correlation :math:`\rho` of prediction and target; ``None``
  ("undefined", never a number) when either is constant, as the ``l = 0`` target is.
* :func:`raw_gain`: :math:`G = \mathrm{mean}(e_0 - e_1)`, the mean squared error of the
  training-mean predictor minus that of the probe.
* :func:`r2_injected`: :math:`R^2_\mathrm{inj} = 1 - \mathrm{mean}((p - \epsilon s_l)^2)
  / \epsilon^2`, against the injected part, whose power :math:`\epsilon^2` is known exactly.
* :func:`cliff_ratio`: :math:`\rho(d_L) / \rho(d_L + 1)`.

Each has a row-wise twin (:func:`pearson_rows`, :func:`raw_gain_rows`,
:func:`r2_injected_rows`) evaluated on 2-D arrays ``(rows, n)``, one resample a row; a
row-wise statistic returns NaN where it is undefined. :func:`ratio_rows` divides two such
arrays elementwise (NaN where the denominator is 0).

A :class:`Statistic` bundles a row-wise form with its optional count-based ("weighted")
form, which evaluates all resamples of a cluster from the sample counts in one matrix
product. :data:`PEARSON`, :data:`RAW_GAIN` and :data:`R2_INJECTED` carry theirs; pass
the object to the bootstrap to use the fast path, a plain row-wise callable to gather
the resampled values instead (equal up to rounding, about 1e-12).

Hierarchical cluster bootstrap
------------------------------
Clusters are backbones; cluster ``c`` has ``sizes[c]`` held-out samples. One resample
draws ``C = len(sizes)`` clusters with replacement and then, independently for every
drawn copy, ``sizes[c]`` samples of that cluster with replacement. A statistic of a
resample is the mean, over the ``C`` drawn copies (with their multiplicity), of the
per-cluster statistic of each copy's samples.

Point estimates follow one rule, for every statistic
(:meth:`ClusterBootstrap.point_estimate`): the mean over clusters of the per-cluster
statistic of the original samples, clusters where it is undefined left out, ``None``
where it is undefined on every cluster.

:func:`cluster_bootstrap_indices` returns the whole resampling plan
(:class:`BootstrapPlan`) from one integer seed; :class:`ClusterBootstrap` holds one plan
and evaluates any per-cluster statistic on every resample at once
(:meth:`ClusterBootstrap.mean_of_cluster_stat`, shape ``(n_boot,)``). Every statistic of
one run must go through the same plan: then resample ``b`` of every (d, l) cell is made
of the same backbones and the same samples, and a contrast between cells, computed
elementwise from their ``(n_boot,)`` arrays (e.g. ``G_b - G_a``), has a correct
percentile interval (:meth:`ClusterBootstrap.interval`).

With few clusters (the four backbones of a run) the between-cluster spread is estimated
from very few values, and a percentile interval is then narrower than a 95 % interval
should be; the level is nominal.

The cliff ratio: a Fieller confidence set
-----------------------------------------
A ratio whose denominator is near 0 (the correlation just above the ceiling) has no
useful percentile interval: the per-resample ratios (:func:`ratio_rows`) scatter over
both signs wherever the denominator's distribution straddles 0, and their percentile
interval can exclude the point estimate itself. :func:`ratio_confidence_set` inverts a
test instead (Fieller): from the point estimates of numerator and denominator and the
bootstrap covariance of their aligned distributions it returns a
:class:`RatioConfidenceSet`, a bounded interval when the denominator is significantly
non-zero, two rays ``(-inf, r1] U [r2, inf)`` or the whole line when it is not, and
always containing the point estimate; its ``abs_lower_bound`` is the lower bound on
``|ratio|`` that the data support. :func:`ratio_confidence_set_from_moments` takes the
(co)variances directly.
"""

from ._bootstrap import (BootstrapPlan, ClusterBootstrap, Interval, cluster_bootstrap_indices,
                         percentile_interval)
from ._metrics import (CONSTANT_ULPS, PEARSON, R2_INJECTED, RAW_GAIN, Statistic, cliff_ratio,
                       pearson, pearson_rows, r2_injected, r2_injected_rows, ratio_rows,
                       raw_gain, raw_gain_rows)
from ._ratio import RatioConfidenceSet, ratio_confidence_set, ratio_confidence_set_from_moments

__all__ = [
    # point statistics and their row-wise forms
    "pearson", "raw_gain", "r2_injected", "cliff_ratio",
    "pearson_rows", "raw_gain_rows", "r2_injected_rows", "ratio_rows", "CONSTANT_ULPS",
    # statistics as objects (row-wise form + optional count-based fast path)
    "Statistic", "PEARSON", "RAW_GAIN", "R2_INJECTED",
    # the hierarchical cluster bootstrap and its intervals
    "BootstrapPlan", "cluster_bootstrap_indices", "ClusterBootstrap",
    "Interval", "percentile_interval",
    # the Fieller confidence set of a ratio
    "RatioConfidenceSet", "ratio_confidence_set", "ratio_confidence_set_from_moments",
]
