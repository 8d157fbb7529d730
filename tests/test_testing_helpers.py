"""spanthm.testing and empirical.testing: the helpers pass where they should and fail,
with a message naming the instance, where they should not."""

import pytest
from hypothesis import given, settings

from spanthm.testing import (assert_methods_agree, assert_spectrum, assert_theorem_instance,
                             feature_sets, instances, probe_degrees)


@pytest.mark.parametrize("L,d", [(1, 1), (1, 3), (2, 2), (3, 2), (4, 1)])
def test_theorem_instances_pass(L, d):
    assert_theorem_instance(L, d)


@given(instances(max_degree=4, max_d=3, max_size=3))
@settings(max_examples=15)
def test_methods_agree_through_the_helper(instance):
    features, d, exactly = instance
    assert isinstance(features, tuple) and list(features) == sorted(set(features))
    assert 1 <= d <= 3 and isinstance(exactly, bool)
    assert_methods_agree(features, d, exactly=exactly)


@given(feature_sets(max_degree=3, max_size=2), probe_degrees(2))
@settings(max_examples=10)
def test_strategies_draw_valid_instances(features, d):
    assert 1 <= len(features) <= 2 and all(0 <= f <= 3 for f in features)
    assert_methods_agree(features, d, methods=["exact", "rules"])


def test_assert_spectrum_passes_and_fails_with_the_difference():
    assert_spectrum({2}, 2, [0, 2, 4], exactly=True)
    with pytest.raises(AssertionError) as err:
        assert_spectrum({2}, 2, [0, 1, 2, 3, 4], exactly=True)
    msg = str(err.value)
    assert "S = {2}" in msg and "missing [1, 3]" in msg


def test_assert_theorem_instance_fails_when_the_claim_is_wrong(monkeypatch):
    """A spectrum function that drops the boundary degree (a broken method) is caught."""
    import spanthm.testing as testing

    real = testing.spectrum

    def broken(features, d, **kw):
        r = real(features, d, **kw)
        r.dims[max(r.degrees)] = 0
        return r

    monkeypatch.setattr(testing, "spectrum", broken)
    with pytest.raises(AssertionError, match=r"L = 2, d = 2 .*degrees \[0, 1, 2, 3\]"):
        assert_theorem_instance(2, 2)


def test_assert_methods_agree_fails_on_a_disagreement(monkeypatch):
    """A method that loses a degree (simulated by wrapping spectrum) is reported by name."""
    import spanthm.testing as testing

    real = testing.spectrum

    def broken(features, d, **kw):
        r = real(features, d, **kw)
        if kw.get("method") == "rules":
            r.dims[max(r.degrees)] = 0
        if kw.get("method") == "all":
            r.methods["rules"] = "disagree"
        return r

    monkeypatch.setattr(testing, "spectrum", broken)
    with pytest.raises(AssertionError, match=r"S = \{0, 1\}.*methods disagree.*rules"):
        assert_methods_agree((0, 1), 2)
    with pytest.raises(AssertionError, match="methods disagree"):
        assert_methods_agree((0, 1), 2, methods=["exact", "rules"])


# -- empirical.testing ------------------------------------------------------------------------

import dataclasses  # noqa: E402

import torch  # noqa: E402
from e3nn import o3  # noqa: E402

from empirical.testing import assert_equivariant_features, assert_spectral_ceiling  # noqa: E402

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def aspirin_400(aspirin):
    """The first 400 aspirin frames: the fast equivalents of the slow ceiling tests (a
    d = 1 probe is already wide at this size; d = 2 needs the 1000 frames of the budget)."""
    return aspirin.subset(range(400))


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"aspirin_L2_seed{s}" for s in range(4)])
def test_spectral_ceiling_of_the_shipped_backbones(name):
    m = assert_spectral_ceiling(name, d=2)
    assert m.ceiling == m.predicted == 4 and m.config["budget"] == "fast"
    assert m.rho[0] is None and m.rho[4] >= 0.5 and abs(m.rho[5]) < 0.3


def test_spectral_ceiling_of_a_shipped_backbone_fast(aspirin_400):
    """Fast equivalent of the test above: one shipped backbone, d = 1, 400 frames."""
    m = assert_spectral_ceiling("aspirin_L2_seed0", d=1, dataset=aspirin_400)
    assert m.ceiling == m.predicted == 2
    assert m.rho[0] is None and m.rho[2] >= 0.5 and abs(m.rho[3]) < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("name,d,ceiling", [("aspirin_L1_seed0", 2, 2),
                                             ("aspirin_L3_seed0", 1, 3)])
def test_spectral_ceiling_of_the_L1_and_L3_control_backbones(name, d, ceiling):
    """The shipped L = 1 and L = 3 control backbones put the ceiling at d * L, not at 2d."""
    m = assert_spectral_ceiling(name, d=d)
    assert m.ceiling == m.predicted == ceiling


def test_spectral_ceiling_of_the_L1_control_backbone_fast(aspirin_400):
    """Fast equivalent: at d = 1 on 400 frames the ceiling is L = 1 itself, not 2."""
    m = assert_spectral_ceiling("aspirin_L1_seed0", d=1, dataset=aspirin_400)
    assert m.ceiling == m.predicted == 1 and m.status == "agrees"


def test_spectral_ceiling_of_the_L3_control_backbone_fast():
    """At d = 1 on 150 frames the L = 3 backbone's point-estimate ceiling is L = 3, not 2;
    with 30 held-out configurations the intervals above it are too wide for a verdict, and
    assert_spectral_ceiling says what was tried and what would decide it."""
    from empirical.data import load

    small = load("aspirin").subset(range(150))
    with pytest.raises(AssertionError) as err:
        assert_spectral_ceiling("aspirin_L3_seed0", d=1, dataset=small)
    msg = str(err.value)
    assert "status 'undecided'" in msg and "the intervals are too wide" in msg
    assert "tried: budget 'fast', 150 frames, 120 held-out samples (4 rotation(s)" in msg
    assert "k = 64 x 4 rotation(s), ridge: rho(3) = " in msg and "(recovered)" in msg
    assert "more frames" in msg and "more rotations per configuration" in msg
    assert "l = 3: +0.9" in msg and "<- predicted ceiling dL" in msg


class _LabFrameDegree2:
    """Declared 1x1o+5x0e (L = 1): the marked bond vector (atoms 0, 1) as the vector, and
    its lab-frame Y_2 declared as five scalars, in every atom: not equivariant, and
    carrying degree 2 above the ceiling dL = 1 of a d = 1 probe."""

    irreps_out = o3.Irreps("1x1o+5x0e")
    dtype = torch.float64

    def node_features(self, positions, numbers):
        u = positions[1] - positions[0]
        y = o3.spherical_harmonics(2, u.double(), normalize=True, normalization="component")
        return torch.cat([u.double(), y]).expand(positions.shape[0], -1).clone()


def test_assert_spectral_ceiling_fails_on_a_violation(monkeypatch, aspirin_400):
    """A violation of the upper bound fails naming the causes. The premise check (which
    would stop the double first) is bypassed to reach the status message."""
    import empirical.testing as testing

    monkeypatch.setattr(testing, "_check_equivariant", lambda *a, **k: {})
    with pytest.raises(AssertionError) as err:
        testing.assert_spectral_ceiling(_LabFrameDegree2(), d=1,
                                        dataset=aspirin_400.subset(range(100)))
    msg = str(err.value)
    assert "is not equivariant in the diagnostic's run" in msg    # its own record, first
    m = testing.spectral_ceiling(_LabFrameDegree2(), d=1,
                                 dataset=aspirin_400.subset(range(100)))
    assert m.status == "violates" and m.cell_status[2] == "exceeds" and m.equivariant is False
    monkeypatch.setattr(testing, "spectral_ceiling",
                        lambda *a, **k: dataclasses.replace(m, equivariant=True))
    with pytest.raises(AssertionError) as err:
        testing.assert_spectral_ceiling(_LabFrameDegree2(), d=1,
                                        dataset=aspirin_400.subset(range(100)))
    msg = str(err.value)
    assert "status 'violates'" in msg and "wholly outside the blind band [-0.2, 0.2]" in msg
    assert "not equivariant" in msg and "irreps_out that are not the real content" in msg
    assert "target leakage" in msg


def test_assert_spectral_ceiling_fails_on_a_ceiling_claimed_too_high(aspirin_400):
    with pytest.raises(AssertionError) as err:
        assert_spectral_ceiling("aspirin_L2_seed2", d=1, expected=3, dataset=aspirin_400)
    msg = str(err.value)
    assert "measured 2, expected 3" in msg and "l = 3:" in msg and "predicted ceiling" in msg


class _SwappedAxes:
    """Features claimed to be a vector (1o) but built from (y, x, z): not equivariant."""

    irreps_out = o3.Irreps("1x1o")

    def node_features(self, positions, numbers):
        return positions[:, [1, 0, 2]] - positions.mean(0)


class _Centred:
    """Positions about the centroid: a true 1o vector field. It holds no parameters, so it
    says which dtype it wants (else it would run in torch's default dtype)."""

    irreps_out = o3.Irreps("1x1o")
    dtype = torch.float64

    def node_features(self, positions, numbers):
        p = positions - positions.mean(0)
        return p                         # e3nn 0.6: D(R) of 1o is R itself


def test_assert_equivariant_features_passes_and_fails():
    errors = assert_equivariant_features(_Centred())
    assert len(errors) == 6 and max(errors.values()) < 1e-12
    single = _Centred()
    single.dtype = torch.float32       # measured in float32, within float32's tolerance
    assert 1e-9 < max(assert_equivariant_features(single).values()) < 1e-5
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant_features(_SwappedAxes())
    with pytest.raises(AssertionError, match="irreps_out"):
        assert_equivariant_features(object())


def test_assert_equivariant_features_on_our_backbone():
    from empirical.backbone import Backbone, BackboneConfig

    model = Backbone(BackboneConfig(L=2, channels=4, avg_num_neighbors=16.0), seed=0,
                     dtype=torch.float64)
    assert max(assert_equivariant_features(model).values()) < 1e-9


def test_pytest_plugin_needs_one_conftest_line(pytester):
    pytester.makeconftest('pytest_plugins = ["empirical.testing.plugin"]\n')
    pytester.makepyfile('''
from e3nn import o3

class Centred:
    irreps_out = o3.Irreps("1x1o")
    def node_features(self, positions, numbers):
        p = positions - positions.mean(0)
        return p

def test_mine(assert_equivariant_features, spectral_ceiling, assert_spectral_ceiling, aspirin):
    assert aspirin.n_atoms == 21 and callable(spectral_ceiling) and callable(assert_spectral_ceiling)
    assert_equivariant_features(Centred())
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
