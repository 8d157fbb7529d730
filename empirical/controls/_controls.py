r"""Controls (docs/method.md §4): each must leave the ceiling where the theorem puts it.

Every control is one :func:`empirical.diagnose` measurement (same protocol on a seeded
subset of :data:`DEFAULT_FRAMES` = 2500 of the 5000 aspirin frames by default, so that all
of them, the 128-channel backbone's features included, run in under 10 minutes on a 2-core
CPU; the :class:`~empirical.diagnostic.FeatureSet` of a backbone is extracted once per
sample layout and handed to every control that probes it) and reports its
measured ceiling (the highest ``l`` with mean held-out rho at or above the recoverable
threshold, 0.5) beside the predicted one (``spanthm.ceiling``):

* ``capacity``: backbone channels x1, x2, x4 (``aspirin_L2_seed0``, ``aspirin_L2_c64_seed0``,
  ``aspirin_L2_c128_seed0``) at ``d = 2``; SPN width ``k = 16, 32, 64`` (per-irrep
  reduction filling ``k`` from the top degree down) at ``d = 2``, with enough rotations per
  configuration for two training samples per monomial.
* ``parameters``: a ``d = 3`` SPN of width 18 (1330 coefficients) against the widest
  ``d = 2`` SPN (width 63, 2080 coefficients): fewer parameters, higher ceiling.
* ``activation``: gate nonlinearity SiLU (``aspirin_L2_seed0``), tanh
  (``aspirin_L2_tanh_seed0``), GELU (``aspirin_L2_gelu_seed0``) at ``d = 2``.
* ``architecture``: ``aspirin_L1_seed0`` (d = 1, 2, 3: ceilings 1, 2, 3) and
  ``aspirin_L3_seed0`` (d = 1, 2: ceilings 3, 6), and a second family, e3nn's gate-points
  network (:class:`empirical.backbone.GatePointsBackbone`, random-initialized: it has no
  training loop here yet) at d = 1, 2.
* ``untrained``: a random-initialized L = 2 backbone of the aspirin class (d = 1, 2, 3).

Every control that probes d = 3 (L = 1, untrained) uses the rotations per configuration of
the d = 3 parameters control, so its automatic d = 3 SPN width is that control's (k = 18 at
L = 2) rather than the narrower one the frames alone allow (k = 9 on 2500 frames, where the
untrained backbone measured rho(6) = 0.22 and a ceiling of 5).

A control whose backbone is not shipped (``empirical backbones``) is listed with
``status: "missing"`` and null measurements, and the run's ``complete`` flag is false; the
README says how each is trained.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

from e3nn import o3

from ..runtime import Progress
from .._result import RunResult
from ..backbone import (Backbone, BackboneConfig, GatePointsBackbone, dataset_statistics,
                        shipped)
from ..backbone import load as load_backbone
from ..data import load as load_dataset
from ..diagnostic import diagnose, extract_features, make_plan
from ..runtime import versions
from ..diagnostic import n_monomials
from ..diagnostic import THRESHOLDS

__all__ = ["run_controls", "ControlsResult", "CONTROL_BACKBONES"]

SCHEMA_VERSION = 1
#: Frames the controls use by default (a seeded subset; None in :func:`run_controls`: all).
DEFAULT_FRAMES = 2500
#: Shipped checkpoints the trained controls read (name -> what it varies).
CONTROL_BACKBONES = {
    "aspirin_L2_c64_seed0": "L = 2, 64 channels (x2)",
    "aspirin_L2_c128_seed0": "L = 2, 128 channels (x4)",
    "aspirin_L2_tanh_seed0": "L = 2, tanh gates",
    "aspirin_L2_gelu_seed0": "L = 2, GELU gates",
    "aspirin_L1_seed0": "L = 1",
    "aspirin_L3_seed0": "L = 3",
}
BASE = "aspirin_L2_seed0"


class ControlsResult(RunResult):
    """What :func:`run_controls` measured; :meth:`to_dict` is exactly ``results.json``."""

    def save(self, out_dir: Union[str, Path], overwrite: bool = False) -> List[Path]:
        """Write the outputs into ``out_dir`` as one set (it must not hold files unless
        ``overwrite``)."""
        from ._report import write_controls_outputs
        return write_controls_outputs(self, Path(out_dir), overwrite=overwrite)


def _plan(available: set, frames: int, spn_widths=(16, 32, 64),
          parameter_widths=(18, 63)) -> List[Dict]:
    """The controls: name, kind, backbone (name or "random"), d, k, rotations."""
    plan = []
    for name, mult in ((BASE, 1), ("aspirin_L2_c64_seed0", 2), ("aspirin_L2_c128_seed0", 4)):
        plan.append({"name": f"channels x{mult}", "kind": "capacity", "backbone": name,
                     "degrees": [2]})
    n_train = int(round(0.8 * frames))

    def rotations(k: int, d: int) -> int:
        """Rotations per configuration for two training samples per monomial."""
        return max(1, math.ceil(2 * n_monomials(k, d) / n_train))

    for k in spn_widths:
        plan.append({"name": f"SPN width k={k}", "kind": "capacity", "backbone": BASE,
                     "degrees": [2], "k": k, "rotations": rotations(k, 2)})
    k3, k2 = parameter_widths
    plan.append({"name": f"d=3 SPN, width {k3}", "kind": "parameters", "backbone": BASE,
                 "degrees": [3], "k": k3, "rotations": rotations(k3, 3)})
    plan.append({"name": f"d=2 SPN, width {k2}", "kind": "parameters", "backbone": BASE,
                 "degrees": [2], "k": k2, "rotations": rotations(k2, 2)})
    for name, act in ((BASE, "silu"), ("aspirin_L2_tanh_seed0", "tanh"),
                      ("aspirin_L2_gelu_seed0", "gelu")):
        plan.append({"name": f"activation {act}", "kind": "activation", "backbone": name,
                     "degrees": [2]})
    plan.append({"name": "L = 1", "kind": "architecture", "backbone": "aspirin_L1_seed0",
                 "degrees": [1, 2, 3]})
    plan.append({"name": "L = 3", "kind": "architecture", "backbone": "aspirin_L3_seed0",
                 "degrees": [1, 2]})
    plan.append({"name": "e3nn gate-points L = 2 (random init)", "kind": "architecture",
                 "backbone": "gate-points", "degrees": [1, 2]})
    plan.append({"name": "random init L = 2", "kind": "untrained", "backbone": "random",
                 "degrees": [1, 2, 3]})
    # a control probed at d = 3 gets the d = 3 parameters control's sample budget, so that
    # its d = 3 SPN is as wide as the trained one's (k = 18 for L = 2): the untrained
    # control's weaker recovery is then the backbone's, not a narrower probe's
    for p in plan:
        p["available"] = p["backbone"] in ("random", "gate-points") or p["backbone"] in available
        if 3 in p["degrees"] and "rotations" not in p:
            p["rotations"] = rotations(k3, 3)
    return plan


def _control_record(p: Dict, res, d: int, lmax: int) -> Dict:
    """One measured control at probe degree ``d``, from its diagnose result."""
    s = res.summaries[d]
    k_d = int(res.config["k"][str(d)])
    return {"name": p["name"], "kind": p["kind"], "backbone": p["backbone"], "L": res.L,
            "d": d, "k": k_d, "spn_coefficients": n_monomials(k_d, d),
            "measured_ceiling": s.measured_ceiling, "predicted_ceiling": s.ceiling,
            "agrees": bool(s.measured_ceiling == s.ceiling),
            "all_cells_agree": s.agreement,
            "rho": {str(l): r for l, r in sorted(s.rho.items())},
            "rho_boundary": s.rho_boundary,
            "rho_above": s.rho_above if s.ceiling + 1 <= lmax else None,
            "status": "measured"}


KINDS = ("capacity", "parameters", "activation", "architecture", "untrained")


def run_controls(dataset="aspirin", frames: Optional[int] = DEFAULT_FRAMES, n_boot: int = 500,
                 seed: int = 0,
                 lmax: int = 7, kinds=KINDS, spn_widths=(16, 32, 64), parameter_widths=(18, 63),
                 backbone_paths: Optional[Dict[str, str]] = None,
                 progress=None) -> ControlsResult:
    """Run the controls of ``kinds`` (see the module docstring) on ``frames`` frames (a
    seeded subset; None: every frame). ``parameter_widths``:
    (width of the d = 3 SPN, width of the widest d = 2 SPN); the d = 3 one must have fewer
    coefficients. ``backbone_paths`` maps control backbone names (``aspirin_L2_seed0``,
    :data:`CONTROL_BACKBONES`) to checkpoint files that replace the shipped ones (the
    ``full`` reproduction retrains them). Raises ``ValueError`` for bad options before any
    work."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"control kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if frames is not None and frames < 20:
        raise ValueError(f"controls need at least 20 frames, got {frames}")
    k3, k2 = parameter_widths
    if n_monomials(k3, 3) >= n_monomials(k2, 2):
        raise ValueError(f"the d = 3 SPN (width {k3}, {n_monomials(k3, 3)} coefficients) must "
                         f"have fewer coefficients than the d = 2 one (width {k2}, "
                         f"{n_monomials(k2, 2)})")
    start = time.perf_counter()
    data = load_dataset(dataset) if not hasattr(dataset, "positions") else dataset
    if frames is None:
        frames = data.n_frames
    elif frames > data.n_frames:
        # never cut silently: the request names a count the data do not have
        raise ValueError(f"frames = {frames} is more than the {data.n_frames} frames of "
                         f"{dataset if isinstance(dataset, (str, Path)) else 'the dataset'}; "
                         f"give at most {data.n_frames}")
    paths = {b["name"]: b["path"] for b in shipped()}
    paths.update(backbone_paths or {})
    available = set(paths)
    plan = [p for p in _plan(available, frames, spn_widths, parameter_widths)
            if p["kind"] in kinds]
    objects: Dict[str, object] = {}
    bar = Progress(sum(len(p["degrees"]) for p in plan), enabled=progress)
    controls: List[Dict] = []
    runs: List[Dict] = []
    features: Dict[tuple, object] = {}
    for p in plan:
        bar.set_label(p["name"])
        if not p["available"]:
            for d in p["degrees"]:
                controls.append({"name": p["name"], "kind": p["kind"], "backbone": p["backbone"],
                                 "L": None, "d": d, "measured_ceiling": None,
                                 "predicted_ceiling": None, "agrees": None,
                                 "status": "missing"})
                bar.advance(1)
            continue
        if p["backbone"] not in objects:
            if p["backbone"] == "gate-points":
                objects["gate-points"] = GatePointsBackbone(
                    L=2, species=sorted(set(int(z) for z in data.numbers)), seed=seed)
            elif p["backbone"] == "random":
                stats = dataset_statistics(data, range(min(1000, data.n_frames)), 5.0)
                config = BackboneConfig(L=2, channels=32, layers=3,
                                        species=sorted(set(int(z) for z in data.numbers)),
                                        **stats)
                objects["random"] = Backbone(config, seed=seed).eval()
            else:
                objects[p["backbone"]] = load_backbone(paths[p["backbone"]]).eval()
        obj = objects[p["backbone"]]
        rotations = p.get("rotations", 1)
        key = (p["backbone"], rotations)
        if key not in features:   # one FeatureSet per backbone and sample layout
            layout = make_plan(data, sorted({ir.l for _, ir in o3.Irreps(obj.irreps_out)}),
                               degrees=p["degrees"], lmax=lmax, seed=seed, frames=frames,
                               n_boot=n_boot, k_sweep=(), rotations_per_config=rotations)
            features[key] = extract_features(obj, data, layout, 0)
        res = diagnose(backbones=[obj], names=[p["backbone"]], dataset=data,
                       degrees=p["degrees"], lmax=lmax, seed=seed, k=p.get("k"),
                       n_boot=n_boot, frames=frames, k_sweep=(),
                       rotations_per_config=rotations, features=[features[key]],
                       progress=False)
        for d in p["degrees"]:
            controls.append(_control_record(p, res, d, lmax))
            bar.advance(1)
        runs.append({"control": p["name"], "config": res.config, "warnings": res.warnings})
    bar.close()
    measured = [c for c in controls if c["status"] == "measured"]
    payload = {"schema_version": SCHEMA_VERSION,
               "config": {"dataset": data.metadata.get("source"), "frames": frames,
                          "n_boot": n_boot, "seed": seed, "lmax": lmax,
                          "thresholds": dict(THRESHOLDS), "versions": versions(),
                          "control_backbones": CONTROL_BACKBONES},
               "controls": controls,
               "complete": all(c["status"] == "measured" for c in controls),
               "agreement": all(c["agrees"] for c in measured),
               "runs": runs}
    return ControlsResult(payload=payload, seconds=time.perf_counter() - start)
