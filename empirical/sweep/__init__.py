"""Sweeps (docs/method.md §2.11): many backbone groups x datasets x marked pairs x seeds x
probe degrees on Dask distributed, resumable from a content-keyed task store.

The data flow, one module per step::

    _config   TOML file                 -> SweepConfig   (checked, globs expanded)
    _sweep    SweepConfig               -> SweepPlan     (plans, chunks, content keys)
              SweepPlan + Dask client   -> tasks         (_tasks: features, probes, bootstrap)
    _store    task results              -> disk          (content keys; resumable)
    _report   runs                      -> SweepResult   (results.json, report.md, sweep.png)

``empirical sweep CONFIG`` is :func:`load_config` then :func:`sweep`.
"""

from ._config import Group, SweepConfig, epoch_of, load_config, parse_config
from ._report import SWEEP_SCHEMA, SweepResult, SweepRunRow
from ..cache import TaskStore, content_key
from ._sweep import SweepPlan, default_store, plan_sweep, sweep

__all__ = ["sweep", "plan_sweep", "load_config", "parse_config", "SweepConfig", "Group",
           "SweepPlan", "SweepResult", "SweepRunRow", "SWEEP_SCHEMA", "TaskStore",
           "content_key", "default_store", "epoch_of"]
