"""Adapters: force fields from other packages as backbones of the diagnostic.

Each adapter wraps a model of another framework in an object that follows the backbone
protocol (:mod:`empirical.backbone`: ``irreps_out``, ``node_features(positions, numbers)``,
``energy(positions, numbers)``), records where it came from (``origin``) and its feature
degree ``L``. The other framework is an optional dependency, imported only when an adapter
is used, so importing this package (or an adapter module) never needs it.

* :mod:`empirical.adapters.nequip`: nequip 0.19 checkpoints and packaged models
  (``pip install 'spectral-ceilings[nequip]'``).
"""

__all__ = ["nequip"]
