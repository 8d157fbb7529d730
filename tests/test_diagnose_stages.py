"""The diagnostic's stages one by one: plan, features, probe cells, summary, result.

Each stage is a function of its inputs with a typed object between them; these tests run
each alone, check that the split never leaks a configuration across the probe-training /
held-out boundary (and that the check catches a split by sample), that positions reach a
model in its own dtype, and that ``results.json`` is described by the schema.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as hst

from _helpers import toy_dataset
from empirical.diagnostic import (FeatureSet, SpectralProbe, diagnose,
                                  extract_features, make_plan, model_dtype, probe_backbone,
                                  summarize, verdict)
from empirical.diagnostic import _cells
from empirical.diagnostic._result import SCHEMA, schema_markdown
from empirical.testing import assert_equivariant_features, assert_spectral_ceiling

ROOT = Path(__file__).resolve().parents[1]




class FingerprintBackbone:
    """Harmonics of the marked direction, plus one invariant scalar that identifies the
    configuration (the sum of squared interatomic distances): a spy can tell from the
    features alone which configuration a probe saw."""

    dtype = torch.float64

    def __init__(self, L=1):
        self.irreps_out = o3.Irreps("1x0e") + o3.Irreps.spherical_harmonics(L)

    def node_features(self, positions, numbers):
        v = positions[1] - positions[0]
        y = o3.spherical_harmonics(o3.Irreps(self.irreps_out[1:]), v[None], normalize=True,
                                   normalization="component")
        fp = (torch.cdist(positions, positions) ** 2).sum().reshape(1, 1)
        return torch.cat([fp, y], dim=1).repeat(len(positions), 1)

    def energy(self, positions, numbers):
        return torch.cdist(positions, positions).sum() / 2


# -- stage 1: the plan ---------------------------------------------------------------------------

def assert_no_leakage(plan):
    """Probe-training and held-out samples come from disjoint sets of configurations, and
    every sample of a configuration is on one side (no held-out rotation of a training
    configuration)."""
    train_cfg = set(plan.groups[plan.train_idx].tolist())
    test_cfg = set(plan.groups[plan.test_idx].tolist())
    assert not train_cfg & test_cfg, f"configurations on both sides: {sorted(train_cfg & test_cfg)[:5]}"
    assert len(plan.train_idx) + len(plan.test_idx) == plan.n_samples
    assert len(set(plan.train_idx.tolist()) | set(plan.test_idx.tolist())) == plan.n_samples
    assert plan.configurations_overlap().size == 0


def sample_split(plan, seed=0):
    """The mutation the leakage tests must catch: the same fractions, split by sample."""
    perm = np.random.default_rng(seed).permutation(plan.n_samples)
    n_test = len(plan.test_idx)
    return dataclasses.replace(plan, test_idx=np.sort(perm[:n_test]),
                               train_idx=np.sort(perm[n_test:]))


@settings(max_examples=30, deadline=None)
@given(n=hst.integers(20, 120), rotations=hst.integers(1, 4),
       fraction=hst.sampled_from([0.2, 0.25, 0.5]), seed=hst.integers(0, 2**16))
def test_plan_splits_by_configuration(n, rotations, fraction, seed):
    data = toy_dataset(n=n, seed=1)
    plan = make_plan(data, [0, 1], degrees=(1,), lmax=2, seed=seed, test_fraction=fraction,
                     rotations_per_config=rotations, k_sweep=())
    assert_no_leakage(plan)
    assert len(plan.test_idx) == rotations * int(round(fraction * n))


def test_a_split_by_sample_is_caught():
    """The leakage check fails on a plan whose split ignores configurations."""
    plan = make_plan(toy_dataset(n=100), [0, 1], degrees=(1,), lmax=2,
                     rotations_per_config=3, k_sweep=())
    assert_no_leakage(plan)
    with pytest.raises(AssertionError, match="configurations on both sides"):
        assert_no_leakage(sample_split(plan))


def test_plan_is_seeded_and_validated():
    data = toy_dataset(n=100)
    one = make_plan(data, [0, 1, 2], degrees=(2,), lmax=5, seed=3, frames=60, k_sweep=())
    two = make_plan(data, [0, 1, 2], degrees=(2,), lmax=5, seed=3, frames=60, k_sweep=())
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.test_idx, two.test_idx)
    assert np.array_equal(one.rotations(1), two.rotations(1))
    assert not np.array_equal(one.rotations(0), one.rotations(1))   # independent clusters
    assert one.predicted[2].ceiling == 4 and one.predicted[2].recoverable == (0, 1, 2, 3, 4)
    for bad, needle in [(dict(degrees=()), "at least one probe degree"),
                        (dict(frames=1), "frames must lie"),
                        (dict(k=0), "SPN width"), (dict(marked=(0, 9)), "does not exist"),
                        (dict(rotations_per_config=0), "rotations per configuration")]:
        with pytest.raises(ValueError, match=needle):
            make_plan(data, [0, 1], **{"k_sweep": (), **bad})
    with pytest.raises(ValueError, match="no l > 0"):
        make_plan(data, [0])


def test_widened_and_refit_plans_split_by_configuration():
    """The widened probe's plan (more rotations per configuration) and the refit splits
    keep every configuration on one side; the widened plan keeps the run's sides."""
    from empirical.diagnostic._capacity import refit_split
    from empirical.diagnostic._plan import widened_plan

    plan = make_plan(toy_dataset(n=100), [0, 1], degrees=(1, 2), lmax=3, k_sweep=())
    wide = widened_plan(plan, 3, 20, 2)
    assert_no_leakage(wide)
    assert wide.n_samples == 3 * plan.n_samples and wide.k == {2: 20} and wide.degrees == (2,)
    assert set(wide.groups[wide.test_idx]) == set(plan.groups[plan.test_idx])
    for j in (1, 2, 3):
        train, test = refit_split(wide, j)
        assert not set(wide.groups[train]) & set(wide.groups[test])
        assert len(test) == len(wide.test_idx)
        assert set(wide.groups[test]) != set(wide.groups[wide.test_idx])


def test_the_memory_estimate_covers_the_widest_probe(monkeypatch):
    """capacity="auto" is refused before work when its widest step would not fit, where
    "fixed" (one width) fits."""
    from empirical.runtime import WorkLimitExceeded

    data = toy_dataset(n=1000)       # 800 training configurations: d = 3 widens to k = 18
    kw = dict(degrees=(3,), lmax=4, k_sweep=(), n_boot=10, feature_dim=18)
    fixed = make_plan(data, [0, 1, 2], capacity="fixed", **kw)
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(60 * 1024 ** 2))
    make_plan(data, [0, 1, 2], capacity="fixed", **kw)
    with pytest.raises(WorkLimitExceeded, match="GB"):
        make_plan(data, [0, 1, 2], capacity="auto", **kw)
    assert fixed.capacity == "fixed"
    with pytest.raises(ValueError, match="capacity must be 'auto' or 'fixed', got 'x'"):
        make_plan(data, [0, 1, 2], capacity="x", **kw)


# -- stage 2 and 3: features and probe cells -----------------------------------------------

class SpyProbe(SpectralProbe):
    """Records the configuration fingerprints of every fit and prediction."""

    log = []

    def fit(self, X, y, groups):
        SpyProbe.log.append(("fit", np.round(X[:, 0], 6), np.asarray(groups)))
        return super().fit(X, y, groups)

    def predict(self, X):
        SpyProbe.log.append(("predict", np.round(X[:, 0], 6), None))
        return super().predict(X)


def assert_probes_never_saw_held_out(log):
    seen = set()
    for kind, fp, groups in log:
        if kind == "fit":
            seen |= set(fp.tolist())
            # cross-validation folds are grouped by configuration: one group per fingerprint
            pairs = set(zip(fp.tolist(), groups.tolist()))
            assert len(pairs) == len(set(fp.tolist())) == len(set(groups.tolist())), \
                "a configuration's samples carry different group ids"
    for kind, fp, _ in log:
        if kind == "predict":
            shared = seen & set(fp.tolist())
            assert not shared, f"{len(shared)} held-out configurations were in a probe's fit"


@pytest.fixture(scope="module")
def fingerprint_features():
    data = toy_dataset(n=150, seed=4)
    plan = make_plan(data, [0, 1], degrees=(1, 2), lmax=3, rotations_per_config=3,
                     n_boot=50, k_sweep=(1,))
    return data, plan, extract_features(FingerprintBackbone(), data, plan, 0)


def test_probe_stage_never_trains_on_held_out_configurations(fingerprint_features, monkeypatch):
    data, plan, fs = fingerprint_features
    monkeypatch.setattr(_cells, "SpectralProbe", SpyProbe)
    SpyProbe.log = []
    probe_backbone("fp", fs, plan, plan.energies(data))
    assert len([e for e in SpyProbe.log if e[0] == "fit"]) >= 3
    assert_probes_never_saw_held_out(SpyProbe.log)
    # the same spy catches the pipeline run on a plan split by sample
    SpyProbe.log = []
    probe_backbone("fp", fs, sample_split(plan), plan.energies(data))
    with pytest.raises(AssertionError, match="held-out configurations were in a probe's fit"):
        assert_probes_never_saw_held_out(SpyProbe.log)


def test_feature_set_is_kept_and_reused(fingerprint_features):
    data, plan, fs = fingerprint_features
    assert isinstance(fs, FeatureSet) and fs.dtype == "float64"
    assert fs.features.shape == (plan.n_samples, 2 * FingerprintBackbone().irreps_out.dim)
    assert fs.equivariance_error["rotation"] < 1e-9
    kw = dict(dataset=data, degrees=(1, 2), lmax=3, rotations_per_config=3, n_boot=50,
              k_sweep=(1,), progress=False)
    fresh = diagnose(backbones=[FingerprintBackbone()], **kw)
    reused = diagnose(backbones=[FingerprintBackbone()], features=[fs], **kw)
    assert fresh.to_json() == reused.to_json()
    with pytest.raises(ValueError, match="another plan"):
        diagnose(backbones=[FingerprintBackbone()], features=[fs],
                 **{**kw, "rotations_per_config": 2})


def test_probe_and_summary_stages_alone(fingerprint_features):
    data, plan, fs = fingerprint_features
    probes = [probe_backbone("a", fs, plan, plan.energies(data))]
    assert probes[0].fits[2].pred_s.shape == (len(plan.test_idx), plan.lmax)
    rho = {r.l: r.rho for r in probes[0].records if r.d == 1}
    assert rho[0] is None and rho[1] > 0.99 and abs(rho[2]) < 0.3
    summaries, cells = summarize(probes, plan)
    assert summaries[1].measured_ceiling == 1 and summaries[2].measured_ceiling == 2
    assert [(c.d, c.l) for c in cells] == [(d, l) for d in (1, 2) for l in range(4)]
    assert all(c.measured == verdict(c.rho) for c in cells)


# -- the cliff ratio -------------------------------------------------------------------------

def test_cliff_ratio_set_contains_its_point_estimate(fingerprint_features):
    data, plan, fs = fingerprint_features
    summaries, _ = summarize([probe_backbone("a", fs, plan, plan.energies(data))], plan)
    s = summaries[1]
    ci = s.cliff_ratio_ci
    assert ci["kind"] in ("interval", "two_rays", "ray", "unbounded")
    r = s.cliff_ratio
    inside = any((lo is None or lo <= r) and (hi is None or r <= hi) for lo, hi in ci["pieces"])
    assert inside, (r, ci)


# -- backbones of any dtype ------------------------------------------------------------------

class StrictDtypeWrapper:
    """A user's plain wrapper: a torch module held as an attribute, no cast inside. The
    marked direction goes through ``self.net`` (identity weights) in the net's own dtype,
    so float64 positions fail on a float32 net (and vice versa) inside torch."""

    def __init__(self, dtype, L=2):
        self.net = torch.nn.Linear(3, 3, bias=False).to(dtype)
        with torch.no_grad():
            self.net.weight.copy_(torch.eye(3))
        self.irreps_out = o3.Irreps.spherical_harmonics(L)

    def node_features(self, positions, numbers):
        v = self.net(positions[1] - positions[0])
        y = o3.spherical_harmonics(self.irreps_out, v[None], normalize=True,
                                   normalization="component")
        return y.repeat(len(positions), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wrapper_is_strict_about_dtype(dtype):
    """The premise of the dtype tests: the wrong dtype fails inside torch."""
    other = torch.float64 if dtype == torch.float32 else torch.float32
    w = StrictDtypeWrapper(dtype)
    assert model_dtype(w) == dtype
    with pytest.raises(RuntimeError, match="dtype"):
        w.node_features(torch.zeros(4, 3, dtype=other) + torch.arange(4.0)[:, None],
                        torch.ones(4, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backbones_of_any_dtype_through_every_entry_point(dtype):
    data = toy_dataset(n=300, seed=5)
    res = diagnose(backbones=[StrictDtypeWrapper(dtype)], dataset=data, degrees=(1, 2),
                   lmax=5, n_boot=20, k_sweep=(), progress=False)
    assert res.backbones[0].dtype == str(dtype).replace("torch.", "")
    assert res.summaries[1].measured_ceiling == 2 and res.summaries[2].measured_ceiling == 4
    m = assert_spectral_ceiling(StrictDtypeWrapper(dtype), d=2, dataset=data)
    assert m.ceiling == 4
    errors = assert_equivariant_features(StrictDtypeWrapper(dtype),
                                         positions=data.positions[0], numbers=data.numbers)
    assert max(errors.values()) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_model_dtype_rule():
    class Own:
        dtype = torch.float64
        net = torch.nn.Linear(2, 2)           # a class attribute is not the instance's
    class Holder:
        def __init__(self):
            self.net = torch.nn.Linear(2, 2).double()
    class Nothing:
        pass
    assert model_dtype(Own()) == torch.float64
    assert model_dtype(Holder()) == torch.float64
    assert model_dtype(torch.nn.Linear(2, 2)) == torch.float32
    assert model_dtype(Nothing()) == torch.get_default_dtype()


# -- one verdict rule, one schema ------------------------------------------------------------

def test_no_second_copy_of_the_verdict_rule():
    """Only ``_verdict.py`` compares a correlation with the thresholds."""
    limit = r"(THRESHOLDS|CALIBRATION_BAR|thresholds|th)\[[\"'](recoverable|blind)[\"']\]"
    compared = re.compile(rf"[<>]=?\s*{limit}|{limit}\s*[<>]")   # not inside f-string text
    offenders = []
    for path in (ROOT / "empirical").rglob("*.py"):
        if path.name == "_verdict.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if compared.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _schema_patterns():
    out = []
    for key, *_ in SCHEMA:
        rx = re.escape(key)
        rx = rx.replace(re.escape("<d>"), r"\d+").replace(re.escape("<l>"), r"\d+")
        rx = rx.replace(re.escape("[i]"), r"\[\d+\]")
        rx = re.sub(r"\\\{([^}]*)\\\}", lambda m: "(" + "|".join(
            re.escape(s.replace("\\", "").strip()) for s in m.group(1).split(",")) + ")", rx)
        rx = rx.replace(re.escape("<adapter keys>"), r"[a-z_]+")
        out.append(re.compile(rx + r"(\..*|\[.*)?$"))
    return out


def _paths(x, prefix=""):
    if isinstance(x, dict) and x:
        for k, v in x.items():
            yield from _paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(x, list) and x and isinstance(x[0], dict):
        for i, v in enumerate(x):
            yield from _paths(v, f"{prefix}[{i}]")
    else:
        yield prefix


def test_every_results_key_is_in_the_schema(fingerprint_features):
    data, plan, fs = fingerprint_features
    res = diagnose(backbones=[FingerprintBackbone()], dataset=data, degrees=(1, 2), lmax=3,
                   rotations_per_config=3, n_boot=50, k_sweep=(1,), features=[fs],
                   progress=False)
    patterns = _schema_patterns()
    missing = [p for p in _paths(json.loads(res.to_json()))
               if not any(rx.match(p) for rx in patterns)]
    assert not missing, missing


def test_schema_document_is_generated_from_the_code():
    doc = (ROOT / "docs" / "results_schema.md").read_text()
    assert doc == schema_markdown(), "run: python -c 'from empirical.diagnostic._result " \
        "import schema_markdown; print(schema_markdown(), end=\"\")' > docs/results_schema.md"


def test_features_side_by_side_equal_serial():
    """``workers`` changes how the feature stage is scheduled, never the result."""
    from empirical.backbone import Backbone, BackboneConfig

    data = toy_dataset(n=80, seed=6)
    config = BackboneConfig(L=1, channels=4, layers=2, species=[1, 6, 8])
    nets = [Backbone(config, seed=s).eval() for s in (0, 1)]
    kw = dict(dataset=data, degrees=(1,), lmax=3, n_boot=20, k_sweep=(), progress=False)
    default = torch.get_default_dtype()
    serial = diagnose(backbones=nets, workers=1, **kw).to_json()
    assert diagnose(backbones=nets, workers=2, **kw).to_json() == serial
    # no process-wide state left changed by the worker threads
    assert torch.get_default_dtype() == default and torch.get_num_threads() >= 1
    with pytest.raises(ValueError, match="workers"):
        diagnose(backbones=nets, workers=0, **kw)


def test_eps_is_the_energy_error_sd_on_probe_training_configurations(fingerprint_features):
    """docs/method.md §2.5: eps is defined on the probe-training configurations only (a
    definition that looked at held-out configurations would fail here)."""
    data, plan, fs = fingerprint_features
    probes = probe_backbone("a", fs, plan, plan.energies(data))
    err = plan.energies(data) - fs.energies
    assert probes.eps == float(np.std(err[plan.train_idx]))
    assert probes.eps != float(np.std(err)) and probes.eps != float(np.std(err[plan.test_idx]))
    assert probes.energy_error_rmse_meV == pytest.approx(
        1e3 * np.sqrt(np.mean(err[plan.train_idx] ** 2)))
    given = probe_backbone("a", fs, dataclasses.replace(plan, eps=0.5), plan.energies(data))
    assert given.eps == 0.5


@pytest.mark.parametrize("split", [[(1,), (2,)], [(2,), (1,)], [(1, 2)]])
def test_probe_parts_per_degree_merge_to_one_call(fingerprint_features, split):
    """``probe_backbone(degrees=[d])`` per ``d``, joined by ``merge_probes`` in any order,
    equals one call with every degree: fits, records, sweep rows, warnings (the sweep's
    probe tasks rest on it)."""
    from empirical.diagnostic._cells import merge_probes

    data, plan, fs = fingerprint_features
    whole = probe_backbone("fp", fs, plan, plan.energies(data))
    parts = [probe_backbone("fp", fs, plan, plan.energies(data), degrees=list(ds))
             for ds in split]
    merged = merge_probes(parts, plan)
    assert merged.records == whole.records and merged.sweep == whole.sweep
    assert merged.warnings == whole.warnings and merged.eps == whole.eps
    assert list(merged.fits) == list(whole.fits)
    for d in plan.degrees:
        assert np.array_equal(merged.fits[d].pred_s, whole.fits[d].pred_s)
        assert np.array_equal(merged.fits[d].pred_r, whole.fits[d].pred_r)
    with pytest.raises(ValueError, match="in two parts"):
        merge_probes(parts + parts[:1], plan)
    with pytest.raises(ValueError, match="not in the plan"):
        probe_backbone("fp", fs, plan, plan.energies(data), degrees=[3])


def test_seed_streams_record_the_diagnostics_streams_only():
    """``config.seed_streams`` names the plan's streams and the signal's, with the keys of
    the one registry (empirical.runtime.STREAMS), and nothing of other commands (C5)."""
    from empirical.diagnostic._plan import seed_streams

    assert seed_streams() == {"frames": 11, "split": 12, "rotations": 13, "cv": 14,
                              "bootstrap": 15, "refit": 16, "equivariance": 17,
                              "derivation_check": 18,
                              "signal_coefficients": "[seed, 1, l]"}


def test_the_plan_stages_are_the_plan():
    """make_plan's named stages (frames, split, predictions) give exactly its arrays."""
    from empirical.diagnostic._plan import choose_frames, predictions, split_configurations

    data = toy_dataset(n=40, seed=3)
    plan = make_plan(data, (0, 1, 2), degrees=(1, 2), lmax=5, seed=7, frames=30,
                     rotations_per_config=2, k_sweep=())
    assert np.array_equal(choose_frames(data, 30, 7), plan.frames)
    assert np.array_equal(choose_frames(data, None, 7), np.arange(40))
    test_cfg, groups, train_idx, test_idx = split_configurations(30, 6, 2, 7)
    assert np.array_equal(test_cfg, plan.test_configurations)
    assert np.array_equal(groups, plan.groups)
    assert np.array_equal(train_idx, plan.train_idx) and np.array_equal(test_idx, plan.test_idx)
    assert not set(groups[train_idx]) & set(groups[test_idx])      # configurations whole
    assert predictions((1, 2), (0, 1, 2), 5) == plan.predicted
    assert plan.predicted[2].ceiling == 4 and plan.predicted[2].recoverable == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError, match="frames must lie in 2..40"):
        choose_frames(data, 41, 7)
