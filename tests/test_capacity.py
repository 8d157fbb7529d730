"""``capacity="auto"``: the probe is widened before a model is blamed, and every boundary
cell gets its refit spread (docs/method.md §2.6; empirical/diagnostic/_capacity.py).

The test doubles carry the marked direction's ``Y_1`` in one channel of degree 1 beside
louder channels of other directions: the irrep reduction keeps the loudest channels per
degree, so a probe of four channels per degree misses the signal and one of five finds it.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from e3nn import o3

from _helpers import toy_dataset
from empirical.diagnostic import (SATURATION_GAIN, diagnose, extract_features, make_plan,
                                  probe_backbone, summarize)
from empirical.diagnostic._plan import capacity_steps


class BuriedBackbone:
    """``1x0e + (n_loud + 1)x1o`` on every atom: ``n_loud`` channels of ``3 Y_1`` of
    independent atom pairs, then (``signal``) ``Y_1`` of the marked direction, else one more
    quiet channel of another pair."""

    dtype = torch.float64

    def __init__(self, n_loud=4, signal=True):
        self.n_loud, self.signal = n_loud, signal
        self.irreps_out = o3.Irreps(f"1x0e + {n_loud + 1}x1o")

    def node_features(self, positions, numbers):
        def y1(i, j):
            return o3.spherical_harmonics(1, positions[j] - positions[i], normalize=True,
                                          normalization="component")
        loud = [3.0 * y1(2 * c + 2, 2 * c + 3) for c in range(self.n_loud)]
        quiet = y1(0, 1) if self.signal else y1(10, 11)
        fp = (torch.cdist(positions, positions) ** 2).sum().reshape(1)
        row = torch.cat([fp, *loud, quiet])
        return row.repeat(len(positions), 1)

    def energy(self, positions, numbers):
        return torch.cdist(positions, positions).sum() / 2


KW = dict(degrees=(1,), lmax=2, n_boot=50, k_sweep=(), rotations_per_config=3,
          progress=False)


@pytest.fixture(scope="module")
def data():
    return toy_dataset(n=200, atoms=12, seed=3)


@pytest.fixture(scope="module")
def widened(data):
    return diagnose(backbones=[BuriedBackbone()], dataset=data, capacity="auto", **KW)


def test_a_wider_probe_recovers_what_the_default_width_misses(widened):
    s = widened.summaries[1]
    steps = s.capacity
    assert len(steps) >= 2, steps
    assert steps[0].status == "not_recovered" and steps[0].k == 14   # 2 scalars + 4 x 3
    assert steps[-1].status == "recovered" and steps[-1].k > steps[0].k
    assert all(st.solver == "ridge" for st in steps)
    # the summary (what the verdict reads) is the widest step's
    assert s.rho[1] == steps[-1].rho and s.status == "agrees"
    assert widened.cells_of(1)[1].status == "recovered"
    assert [r.rho for r in widened.probes if r.l == 1] == [steps[-1].rho]
    assert widened.config["k"] == {"1": steps[-1].k}
    # the curve is written and read back
    back = type(widened).from_dict(json.loads(widened.to_json()))
    assert back.summaries[1].capacity == steps


def test_capacity_fixed_keeps_the_stages_numbers(data, widened):
    """``capacity="fixed"`` is today's pipeline: plan, features, probes, summary."""
    fixed = diagnose(backbones=[BuriedBackbone()], dataset=data, capacity="fixed", **KW)
    plan = make_plan(data, [0, 1], **{k: v for k, v in KW.items() if k != "progress"})
    fs = extract_features(BuriedBackbone(), data, plan, 0)
    summaries, cells = summarize([probe_backbone("b", fs, plan, plan.energies(data))], plan)
    got = dataclasses.replace(fixed.summaries[1], capacity=[], refit_spread=None)
    assert got == summaries[1]
    assert fixed.cells == cells
    assert len(fixed.summaries[1].capacity) == 1          # the one width, recorded
    assert fixed.cells_of(1)[1].status == "not_recovered"
    assert fixed.config["capacity"]["mode"] == "fixed"
    assert widened.summaries[1].rho[1] != fixed.summaries[1].rho[1]
    # the refits are new splits and folds: their rho differ from the run's
    spread = fixed.summaries[1].refit_spread
    assert spread.spread > 0.01 and len(set(spread.rho)) == 4, spread


def test_saturation_stops_the_widening(data):
    """Nothing carries the marked direction: widening gains nothing, so the loop stops
    after one wider width, not at the widest the budget allows (the PCA reduction: no
    trained step)."""
    res = diagnose(backbones=[BuriedBackbone(n_loud=1, signal=False)], dataset=data,
                   capacity="auto", reduction="pca", **KW)
    steps = res.summaries[1].capacity
    assert len(capacity_steps(1, 4, 16, 160, 3)) > 1          # more widths were allowed
    assert len(steps) == 2 and all(st.solver == "ridge" for st in steps), steps
    assert steps[1].rho - steps[0].rho < SATURATION_GAIN
    assert steps[-1].status != "recovered"


def test_trained_spn_is_tried_where_the_widest_ridge_probe_falls_short():
    res = diagnose(backbones=[BuriedBackbone(n_loud=1, signal=False)],
                   dataset=toy_dataset(n=60, atoms=12, seed=3), capacity="auto",
                   **{**KW, "rotations_per_config": 1})
    steps = res.summaries[1].capacity
    assert [st.solver for st in steps] == ["ridge", "ridge", "trained"], steps
    assert steps[-1].k == steps[-2].k and steps[-1].rotations_per_config == 1


def test_refit_spread_is_present_and_finite(widened):
    spread = widened.summaries[1].refit_spread
    assert spread.seeds == 3 and len(spread.rho) == 4
    assert spread.rho[0] == widened.summaries[1].rho[1]
    assert all(np.isfinite(r) for r in spread.rho)
    assert np.isfinite(spread.spread) and np.isfinite(spread.sd) and spread.spread >= 0
    assert spread.spread == pytest.approx(max(spread.rho) - min(spread.rho))
    assert spread.k == widened.summaries[1].capacity[-1].k
    assert json.loads(widened.to_json())["summary"]["1"]["refit_spread"]["seeds"] == 3


def test_bad_capacity_is_refused_before_work(data):
    with pytest.raises(ValueError, match="capacity must be 'auto' or 'fixed', got 'wide'"):
        diagnose(backbones=[BuriedBackbone()], dataset=data, capacity="wide", **KW)


class BatchedBuried(BuriedBackbone):
    """:class:`BuriedBackbone` with the protocol's batch path, declared thread-safe."""

    thread_safe = True

    def features_batch(self, positions, numbers, with_energy=True):
        h = torch.stack([self.node_features(p, numbers) for p in positions])
        e = torch.stack([self.energy(p, numbers) for p in positions]) if with_energy else None
        return h, e


def test_widened_rotations_are_extracted_over_the_threads(monkeypatch):
    """The extra rotations of a widened probe are extracted with the batches split over
    torch's threads (one backbone at a time: OpenMP inside one small forward pass stalls
    on a shared core); the numbers are those of a one-thread extraction."""
    from empirical.diagnostic import _pipeline

    data = toy_dataset(n=20, atoms=12, seed=3)
    kw = {**KW, "rotations_per_config": 1}
    seen = []
    real = _pipeline.extract_features

    def spy(*args, **kwargs):
        seen.append((args[2].rotations_per_config, kwargs.get("threads", 1)))
        return real(*args, **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(_pipeline, "extract_features", spy)
        split = diagnose(backbones=[BatchedBuried(n_loud=1, signal=False)], dataset=data,
                         capacity="auto", **kw)
        widened = [t for r, t in seen if r > 1]
        assert widened and all(t == 2 for t in widened), seen

        def one_thread(*args, **kwargs):
            return real(*args, **{**kwargs, "threads": 1})

        monkeypatch.setattr(_pipeline, "extract_features", one_thread)
        single = diagnose(backbones=[BatchedBuried(n_loud=1, signal=False)], dataset=data,
                          capacity="auto", **kw)
    finally:
        torch.set_num_threads(threads)
    assert split.summaries == single.summaries and split.cells == single.cells


def test_the_reported_step_and_its_label_follow_the_summary_rule():
    """The survey's and sweep's "probe at dL" column: the trained SPN only where it is last
    and recovered the boundary, else the widest ridge step."""
    from empirical.diagnostic import CapacityStep, probe_label, reported_step

    def step(k, r, solver, status):
        return CapacityStep(k=k, rotations_per_config=r, solver=solver, rho=0.5,
                            rho_ci=(0.4, 0.6), status=status)

    one = [step(36, 1, "ridge", "recovered")]
    widened = [step(18, 1, "ridge", "not_recovered"), step(27, 3, "ridge", "recovered")]
    trained = [step(9, 1, "ridge", "not_recovered"), step(18, 2, "ridge", "not_recovered"),
               step(18, 2, "trained", "recovered")]
    failed = trained[:2] + [step(18, 2, "trained", "not_recovered")]
    assert reported_step([]) is None and probe_label([]) == "-"
    assert probe_label(one) == "36 x 1"
    assert probe_label(widened) == "27 x 3 (widened)"
    assert probe_label(trained) == "18 x 2, trained (widened)"
    assert reported_step(failed) is failed[1] and probe_label(failed) == "18 x 2 (widened)"
