"""Issue 21, checks that can fail: empirical.testing on NaN, inf, wrongly shaped and
non-equivariant models; `survey --models --extra`; `compare` on tampered results files."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3

from empirical import cli
from empirical.calibration import _compare as compare_module
from empirical.calibration._compare import compare
from empirical.testing import (CeilingMeasurement, assert_equivariant_features,
                               assert_spectral_ceiling)

DOCS = Path(__file__).resolve().parents[1] / "docs"
C5 = json.loads((DOCS / "c5" / "results.json").read_text())
ASPIRIN = json.loads((DOCS / "diagnose_aspirin" / "results.json").read_text())


# -- 10. assert_equivariant_features / assert_spectral_ceiling ----------------------------

def _small_frame(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * 1.5, np.full(n, 6)


class _Centred:
    """Positions about the centroid: a true 1o vector field (equivariant)."""

    irreps_out = o3.Irreps("1x1o")
    dtype = torch.float64

    def node_features(self, positions, numbers):
        return positions - positions.mean(0)


class _Broken(_Centred):
    """An equivariant field spoilt by ``spoil``, applied from the ``after``-th call on
    (0: every output, 1: only the rotated ones)."""

    def __init__(self, spoil, after=0):
        self.spoil, self.after, self.calls = spoil, after, 0

    def node_features(self, positions, numbers):
        f = super().node_features(positions, numbers)
        self.calls += 1
        return self.spoil(f.clone()) if self.calls > self.after else f


def _set(value):
    def spoil(f):
        f[1, 2] = value
        return f
    return spoil


@pytest.mark.parametrize("spoil,after,needle", [
    (_set(float("nan")), 0, r"1 NaN or inf values \(the unrotated configuration; atoms \[1\]"),
    (_set(float("inf")), 0, r"1 NaN or inf values"),
    (_set(float("nan")), 1, r"NaN or inf values \(rotation 0"),
    (_set(float("-inf")), 1, r"NaN or inf values \(rotation 0"),
    (lambda f: f[:-1], 0, r"shape \(5, 3\) \(the unrotated configuration\); expected "
                          r"\(atoms, irreps_out.dim\) = \(6, 3\)"),
    (lambda f: torch.cat([f, f[:, :1]], 1), 0, r"shape \(6, 4\)"),
    (lambda f: f[None], 0, r"shape \(1, 6, 3\)"),
    (lambda f: f.reshape(-1), 0, r"shape \(18,\)"),
    (lambda f: f[:-1], 1, r"shape \(5, 3\) \(rotation 0\)"),
    (lambda f: f.tolist(), 0, r"returned a list"),
    (lambda f: f.round().long(), 0, r"torch.int64 values"),
])
def test_assert_equivariant_features_fails_on_nan_inf_and_shapes(spoil, after, needle):
    pos, num = _small_frame()
    with pytest.raises(AssertionError, match=needle):
        assert_equivariant_features(_Broken(spoil, after), pos, num, n_rotations=1)


def test_assert_equivariant_features_still_passes_a_good_model():
    """Guards what worked before: an equivariant field passes, with six errors."""
    pos, num = _small_frame()
    errors = assert_equivariant_features(_Centred(), pos, num)
    assert len(errors) == 6 and max(errors.values()) < 1e-12


def test_a_nan_error_fails_against_any_tolerance():
    """``NaN > tol`` is False: the comparison must be written so that NaN fails."""
    pos, num = _small_frame()
    with pytest.raises(AssertionError, match="NaN or inf"):
        assert_equivariant_features(_Broken(_set(float("nan")), 1), pos, num, atol=1e30)


def test_assert_equivariant_features_refuses_bad_test_input():
    pos, num = _small_frame()
    with pytest.raises(ValueError, match=r"positions must have shape \(atoms, 3\)"):
        assert_equivariant_features(_Centred(), pos[:, :2], num)
    with pytest.raises(ValueError, match="positions hold NaN"):
        assert_equivariant_features(_Centred(), np.where(pos > 1, np.nan, pos), num)
    with pytest.raises(ValueError, match="numbers must be 6 integers"):
        assert_equivariant_features(_Centred(), pos, num[:4])


class _Offset(_Centred):
    """A constant vector added to every atom's features: not equivariant (error ~ 8.5
    for |c| = 4.9), yet its span is the positions' span, so its measured ceiling is dL."""

    def node_features(self, positions, numbers):
        return super().node_features(positions, numbers) + torch.tensor(
            [3.0, -2.0, 3.2], dtype=positions.dtype)


@pytest.fixture(scope="module")
def aspirin_small(aspirin):
    return aspirin.subset(range(200))


def test_assert_spectral_ceiling_fails_on_a_model_that_is_not_equivariant(aspirin_small):
    with pytest.raises(AssertionError) as err:
        assert_spectral_ceiling(_Offset(), d=1, dataset=aspirin_small)
    msg = str(err.value)
    assert "_Offset.node_features is not equivariant" in msg
    assert "max abs error" in msg and "> tolerance" in msg and "(torch.float64)" in msg, msg
    error = float(msg.split("max abs error ")[1].split()[0])
    assert 1 < error < 20


def test_assert_spectral_ceiling_reads_the_diagnostics_equivariance_record(monkeypatch):
    """When the diagnostic's own run finds the model not equivariant, the assertion fails
    with that error, even if the ceiling matches."""
    import empirical.testing as testing

    bad = CeilingMeasurement(d=1, ceiling=1, predicted=1, rho={0: None, 1: 0.9, 2: 0.01},
                             seconds=0.0, equivariance_error={"rotation": 8.5,
                                                              "reflection": 8.5},
                             equivariant=False)
    monkeypatch.setattr(testing, "spectral_ceiling", lambda *a, **k: bad)
    pos, num = _small_frame(21)
    from empirical.data import Dataset

    data = Dataset(positions=pos[None], numbers=num, energies=np.zeros(1),
                   forces=np.zeros((1, 21, 3)), metadata={})
    with pytest.raises(AssertionError, match=r"not equivariant in the diagnostic's run: max "
                                             r"abs error 8\.500e\+00.*tolerance"):
        assert_spectral_ceiling(_Centred(), d=1, dataset=data)


def test_an_so3_model_is_checked_on_rotations_alone(monkeypatch):
    """Guards the diagnostic's rule (passes before and after): a model that says
    ``parity = False`` (SevenNet) is not failed for its reflections."""
    import empirical.testing as testing

    class SO3(_Centred):
        irreps_out = o3.Irreps("1x1e")      # a vector labelled even: reflections differ
        parity = False

    good = CeilingMeasurement(d=1, ceiling=1, predicted=1, rho={0: None, 1: 0.9, 2: 0.0},
                              seconds=0.0, equivariance_error={"rotation": 0.0},
                              equivariant=True, status="agrees",
                              rho_ci={1: (0.8, 0.95), 2: (-0.05, 0.05)},
                              cell_status={1: "recovered", 2: "blind"})
    monkeypatch.setattr(testing, "spectral_ceiling", lambda *a, **k: good)
    pos, num = _small_frame(21)
    from empirical.data import Dataset

    data = Dataset(positions=pos[None], numbers=num, energies=np.zeros(1),
                   forces=np.zeros((1, 21, 3)), metadata={})
    assert assert_spectral_ceiling(SO3(), d=1, dataset=data) is good


# -- 12. survey --models A --extra B ------------------------------------------------------

def test_survey_extra_adds_to_models():
    from empirical.survey import _survey

    assert _survey.survey_items(["A"], ["B", "A", "C"]) == ["A", "B", "C"]
    assert _survey.survey_items(None, ["B"])[-1] == "B"
    assert _survey.survey_items(["A"]) == ["A"]


def test_survey_cli_models_and_extra_reach_the_run(monkeypatch, tmp_path, capsys):
    from empirical.survey import _survey

    seen = []

    def stop(items, **kwargs):
        seen.append(list(items))
        raise ValueError("stopped here by the test")

    monkeypatch.setattr(_survey, "resolve_backbones", stop)
    code = cli.main(["survey", "--models", "aspirin_L2_seed0", "--extra", "aspirin_L1_seed0",
                     "--out", str(tmp_path / "s"), "--no-progress"])
    assert code == 2 and "stopped here by the test" in capsys.readouterr().err
    assert seen == [["aspirin_L2_seed0", "aspirin_L1_seed0"]]


# -- 12b. compare validates what it reads -------------------------------------------------

def _write(tmp_path, name, payload):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def _compare(tmp_path, c5, aspirin, out="cmp"):
    c5_file = _write(tmp_path, "c5.json", c5)
    asp_file = _write(tmp_path, "asp.json", aspirin)
    code = cli.main(["compare", "--c5", str(c5_file), "--aspirin", str(asp_file),
                     "--out", str(tmp_path / out)])
    return code, c5_file, asp_file


def _set_at(payload, path, value):
    """A copy of ``payload`` with ``path`` (keys separated by /) set to ``value``
    (``_DEL``: removed)."""
    out = copy.deepcopy(payload)
    keys = path.split("/")
    parent = out
    for k in keys[:-1]:
        parent = parent[int(k) if isinstance(parent, list) else k]
    last = int(keys[-1]) if isinstance(parent, list) else keys[-1]
    if value is _DEL:
        del parent[last]
    else:
        parent[last] = value
    return out


_DEL = object()


def _rename(payload, part, old, new):
    out = copy.deepcopy(payload)
    out[part][new] = out[part].pop(old)
    return out


# (which file, how it was tampered, the key the message must name)
TAMPERED = [
    ("aspirin", _set_at(ASPIRIN, "summary/2/ceiling", 10 ** 9), "summary.2.ceiling"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/ceiling", 1e9), "summary.2.ceiling"),
    ("aspirin", _set_at(ASPIRIN, "summary", {}), "summary: probe degrees []"),
    ("aspirin", _set_at(ASPIRIN, "schema_version", 99), "schema_version: 99"),
    ("aspirin", _set_at(ASPIRIN, "schema_version", "2"), "schema_version: '2'"),
    ("aspirin", _set_at(ASPIRIN, "schema_version", _DEL), "missing schema_version"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho/3", "0.99"), "summary.2.rho.3"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho/3", 1.5), "summary.2.rho.3"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho/3", float("nan")), "summary.2.rho.3"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho/3", [0.9]), "summary.2.rho.3"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho", [0.9]), "summary.2.rho"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho_ci/4", [0.9, 0.2]), "summary.2.rho_ci.4"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho_ci/4", "x"), "summary.2.rho_ci.4"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/r2_inj", [1, 2]), "summary.2.r2_inj"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/measured_ceiling", 7),
     "summary.2.measured_ceiling"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/agreement", "yes"), "summary.2.agreement"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho_boundary", 0.1), "summary.2.rho_boundary"),
    ("aspirin", _set_at(ASPIRIN, "summary/2", None), "summary.2: expected an object"),
    ("aspirin", _rename(ASPIRIN, "summary", "2", "02"), "the key '02'"),
    ("aspirin", _rename(ASPIRIN, "summary", "2", "-2"), "the key '-2'"),
    ("aspirin", _set_at(ASPIRIN, "summary/2/rho/99", 0.1), "degree 99 is above 7"),
    ("aspirin", _set_at(ASPIRIN, "predicted/2/ceiling", 5), "predicted.2.ceiling"),
    ("aspirin", _set_at(ASPIRIN, "config/degrees", [1, 2, 2, 3]), "config.degrees: repeats"),
    ("aspirin", _set_at(ASPIRIN, "config/degrees", "123"), "config.degrees: expected a list"),
    ("aspirin", _set_at(ASPIRIN, "config/lmax", -1), "config.lmax"),
    ("aspirin", _set_at(ASPIRIN, "backbones/0/L", 3), "backbones[0].L: 3, but irreps_out"),
    ("aspirin", _set_at(ASPIRIN, "backbones/0/L", "2"), "backbones[0].L"),
    ("aspirin", _set_at(ASPIRIN, "backbones", []), "backbones: empty"),
    ("aspirin", _set_at(ASPIRIN, "backbones", {"a": 1}), "backbones: expected a list"),
    ("aspirin", _set_at(ASPIRIN, "cells/3/rho", "high"), "cells[3].rho"),
    ("aspirin", _set_at(ASPIRIN, "cells/3/extra", 1), "cells[3]: unknown keys extra"),
    ("aspirin", _set_at(ASPIRIN, "probes/0", [1, 2]), "probes[0]: expected an object"),
    ("aspirin", [ASPIRIN], "expected a JSON object, got list"),
    ("aspirin", C5, "this is a results.json of empirical c5"),
    ("c5", _set_at(C5, "schema_version", 99), "schema_version: 99"),
    ("c5", _set_at(C5, "summary", {}), "summary: no entry for source 'ideal'"),
    ("c5", _set_at(C5, "summary/ideal/agree", 71), "summary.ideal.agree: 71, but the cells"),
    ("c5", _set_at(C5, "cells/1/rho", "0.99"), "cells[1].rho"),
    ("c5", _set_at(C5, "cells/1/rho", 1e9), "cells[1].rho"),
    ("c5", _set_at(C5, "cells/1/rho", None), "cells[1].agrees: True, but rho None"),
    ("c5", _set_at(C5, "cells/1/predicted", "blind"), "cells[1].predicted"),
    ("c5", _set_at(C5, "cells/1/L", 7), "cells[1].L: 7 is not in config.Ls"),
    ("c5", _set_at(C5, "cells/1/l", -1), "cells[1].l"),
    ("c5", _set_at(C5, "cells/1", C5["cells"][2]), "a second cell"),
    ("c5", _set_at(C5, "cells/1/agrees", False), "cells[1].agrees"),
    ("c5", _set_at(C5, "config/Ls", [1, 1, 2, 3]), "config.Ls: repeats"),
    ("c5", _set_at(C5, "config/sources", ["ideal", "magic"]), "config.sources[1]"),
    ("c5", _set_at(C5, "config/thresholds/blind", 0.9), "config.thresholds"),
    ("c5", _set_at(C5, "config", []), "config: expected an object"),
    ("c5", _set_at(C5, "agreement", "true"), "agreement"),
    ("c5", _set_at(C5, "cells", None), "cells: expected a list"),
    ("c5", ASPIRIN, "this is a results.json of empirical diagnose"),
]


@pytest.mark.parametrize("which,payload,key", TAMPERED,
                         ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(TAMPERED)])
def test_compare_refuses_a_tampered_file_in_one_line(which, payload, key, tmp_path, capsys):
    c5, aspirin = (payload, ASPIRIN) if which == "c5" else (C5, payload)
    code, c5_file, asp_file = _compare(tmp_path, c5, aspirin)
    err = capsys.readouterr().err
    named = c5_file if which == "c5" else asp_file
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"empirical: error: --{which} {named}: not the results of empirical "
                          f"{'c5' if which == 'c5' else 'diagnose'}: "), err
    assert key in err, err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("which,payload", [
    ("aspirin", _set_at(ASPIRIN, "something_new", {"a": [1]})),    # an unknown top-level key
    ("aspirin", _set_at(ASPIRIN, "backbones/0/nequip_layer", "x")),  # an adapter key
    ("c5", _set_at(C5, "config/note", "mine")),                    # an unknown config key
])
def test_compare_accepts_harmless_additions(which, payload, tmp_path, capsys):
    c5, aspirin = (payload, ASPIRIN) if which == "c5" else (C5, payload)
    code, _, _ = _compare(tmp_path, c5, aspirin)
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "cmp" / "compare.md").is_file()


def test_a_bad_aspirin_file_is_not_blamed_on_the_c5_file(tmp_path, capsys):
    bad = _set_at(ASPIRIN, "summary/2/rho/3", "x")
    code, c5_file, asp_file = _compare(tmp_path, C5, bad)
    err = capsys.readouterr().err
    assert code == 2 and f"--aspirin {asp_file}" in err and "--c5" not in err, err


def _c5_without_L(L):
    """The reference C5 run without its cells of ``L`` (counts recomputed): valid."""
    out = copy.deepcopy(C5)
    out["cells"] = [c for c in out["cells"] if c["L"] != L]
    out["config"]["Ls"] = [x for x in out["config"]["Ls"] if x != L]
    for src, entry in out["summary"].items():
        mine = [c for c in out["cells"] if c["source"] == src and c["rho"] is not None]
        entry.update(cells=len(mine), agree=sum(bool(c["agrees"]) for c in mine),
                     meet_bar=sum(bool(c["meets_bar"]) for c in mine))
    out["training"] = [t for t in out["training"] if t["L"] != L]
    return out


def test_compare_with_files_that_do_not_fit_names_both(tmp_path, capsys):
    code, c5_file, asp_file = _compare(tmp_path, _c5_without_L(2), ASPIRIN)
    err = capsys.readouterr().err
    assert code == 2 and f"--c5 {c5_file} and --aspirin {asp_file}" in err, err
    assert "the C5 run has no L = 2" in err and err.count("\n") == 1, err
    assert not (tmp_path / "cmp").exists()


def _aspirin_with_degrees(n):
    """The reference aspirin run with probe degrees 1..n (entries above 3 copied from d =
    3, made consistent with their ceilings): a valid file at any n."""
    out = copy.deepcopy(ASPIRIN)
    L, lmax = 2, out["config"]["lmax"]
    for d in range(4, n + 1):
        s = copy.deepcopy(out["summary"]["3"])
        s["ceiling"] = d * L                     # above lmax: every l recoverable
        s["rho"] = {k: None if k == "0" else 0.99 for k in s["rho"]}
        s["measured_ceiling"], s["agreement"] = lmax, None      # untested above dL
        s["rho_boundary"] = s["rho_above"] = None
        s["status"], s["capacity"], s["refit_spread"] = "untested", [], None
        out["summary"][str(d)] = s
        out["predicted"][str(d)] = {"ceiling": d * L, "recoverable": list(range(lmax + 1))}
    out["config"]["degrees"] = list(range(1, n + 1))
    return out


def test_compare_degree_limit_at_and_over():
    MAX_DEGREES = compare_module.MAX_DEGREES
    validate_c5_results = compare_module.validate_c5_results
    validate_diagnose_results = compare_module.validate_diagnose_results
    at_limit = (_set_at(C5, "config/degrees", list(range(1, MAX_DEGREES + 1))),
                _aspirin_with_degrees(MAX_DEGREES))
    validate_c5_results(at_limit[0])
    validate_diagnose_results(at_limit[1])
    assert sorted({r["d"] for r in compare(*at_limit)["rows"]}) == list(range(1, 13))
    with pytest.raises(ValueError, match=f"{MAX_DEGREES + 1} entries, at most {MAX_DEGREES}"):
        validate_diagnose_results(_aspirin_with_degrees(MAX_DEGREES + 1))
    with pytest.raises(ValueError, match=f"{MAX_DEGREES + 1} entries, at most {MAX_DEGREES}"):
        validate_c5_results(_set_at(C5, "config/degrees", list(range(1, MAX_DEGREES + 2))))


def test_compare_api_validates_both_inputs():
    from empirical.diagnostic import DiagnoseResult

    cmp = compare(C5, DiagnoseResult.from_dict(ASPIRIN))      # the records are checked too
    assert cmp["L"] == 2 and cmp["agreement"] is True
    with pytest.raises(ValueError, match=r"^C5 results: cells\[1\]\.rho"):
        compare(_set_at(C5, "cells/1/rho", "x"), ASPIRIN)
    with pytest.raises(ValueError, match=r"^aspirin results: summary\.2\.ceiling"):
        compare(C5, _set_at(ASPIRIN, "summary/2/ceiling", 1e9))
    assert math.isfinite(cmp["rows"][0]["aspirin_rho"])


# -- one large irrep hides a broken one; size arguments ---------------------------------

class _HiddenVector:
    """F7: a huge invariant scalar beside a vector block that does not rotate at all (a
    constant): not equivariant, error ~ 8 on the vector, yet under the old whole-feature
    tolerance (1e-4 x 1e5 = 10 in float32, 1e-9 x 1e10 = 10 in float64) it passed."""

    irreps_out = o3.Irreps("1x0e+1x1o")

    def __init__(self, dtype, big):
        self.dtype, self.big = dtype, big

    def node_features(self, positions, numbers):
        n = positions.shape[0]
        s = torch.full((n, 1), self.big, dtype=positions.dtype)
        v = torch.tensor([3.0, -2.0, 3.2], dtype=positions.dtype).expand(n, 3)
        return torch.cat([s, v], 1)


class _HonestBigScalar(_HiddenVector):
    """Equivariant: scalar ``big + |r|^2``, vector ``r`` (about the centroid) computed
    through the scalar's magnitude, ``(r + s u) - s u``: its rounding error (~5e-3 in
    float32) is far above 1e-4 x |r| but of the order of eps x big."""

    def node_features(self, positions, numbers):
        c = positions - positions.mean(0)
        r = c.norm(dim=1, keepdim=True)
        s = self.big + r ** 2
        u = c / r
        return torch.cat([s, (c + s * u) - s * u], 1)


@pytest.mark.parametrize("dtype,big", [(torch.float32, 1e5), (torch.float64, 1e10)])
def test_a_large_scalar_does_not_hide_a_broken_vector(dtype, big):
    """F7: fails on the old code (the model passed); the message names the block."""
    pos, num = _small_frame()
    with pytest.raises(AssertionError) as err:
        assert_equivariant_features(_HiddenVector(dtype, big), pos, num)
    msg = str(err.value)
    assert "_HiddenVector.node_features is not equivariant" in msg and str(dtype) in msg
    assert "1x1o, features[:, 1:4]: max abs error 7.806e+00 (reflection 0) > tolerance" in msg
    assert "1x0e" not in msg.split("(tolerance per irrep copy")[0]     # the scalar is fine
    tol = float(msg.split("> tolerance ")[1].split()[0])
    eps = torch.finfo(dtype).eps
    assert tol == pytest.approx(float(f"{100 * eps * big:.1e}"))       # the rounding floor


def test_each_copy_of_an_irrep_is_judged_on_its_own():
    """A large vector copy does not hide a broken copy of the same ``2x1o`` entry."""

    class TwoVectors(_Centred):
        irreps_out = o3.Irreps("2x1o")

        def node_features(self, positions, numbers):
            c = super().node_features(positions, numbers)
            return torch.cat([1e10 * c, torch.tensor([3.0, -2.0, 3.2],
                                                     dtype=c.dtype).expand_as(c)], 1)

    pos, num = _small_frame()
    with pytest.raises(AssertionError, match=r"1o copy 1 of 2x1o, features\[:, 3:6\]: max "
                                             r"abs error 7\.806e\+00"):
        assert_equivariant_features(TwoVectors(), pos, num)


@pytest.mark.parametrize("dtype,big", [(torch.float32, 1e5), (torch.float64, 1e10)])
def test_the_rounding_floor_keeps_an_equivariant_model_with_a_large_scalar_passing(dtype,
                                                                                   big):
    """Guards what worked before (passes on the old code too): the per-block rule does not
    fail a genuinely equivariant model whose small block carries the rounding of a huge
    one; its error is far above the block's relative tolerance, so the floor is needed."""
    pos, num = _small_frame()
    errors = assert_equivariant_features(_HonestBigScalar(dtype, big), pos, num)
    vector_size = float((torch.as_tensor(pos) - torch.as_tensor(pos).mean(0)).abs().max())
    rtol = {torch.float32: 1e-4, torch.float64: 1e-9}[dtype]
    assert rtol * vector_size < max(errors.values()) < 100 * torch.finfo(dtype).eps * big


def test_n_rotations_is_bounded_before_anything_runs(monkeypatch):
    """M8: ``n_rotations=10**9`` tried to allocate 29.8 GiB; 0, -1, True, 2.5 were not
    refused cleanly. Over the limit: ValueError naming the argument, the model never runs
    and the default frame is not even loaded."""
    import empirical.data
    import empirical.testing as testing
    from empirical.testing import MAX_ROTATIONS

    assert MAX_ROTATIONS == 1000
    pos, num = _small_frame()
    calls = []

    class Counted(_Centred):
        def node_features(self, positions, numbers):
            calls.append(1)
            return super().node_features(positions, numbers)

    monkeypatch.setattr(empirical.data, "load", lambda *a, **k: pytest.fail("loaded data"))
    for bad in (10**9, MAX_ROTATIONS + 1, 0, -1, True, 2.5, "3", None):
        with pytest.raises(ValueError, match=rf"n_rotations must be an integer from 1 to "
                                             rf"{MAX_ROTATIONS} \(MAX_ROTATIONS\), got"):
            assert_equivariant_features(Counted(), n_rotations=bad)
    assert calls == []
    errors = testing.assert_equivariant_features(Counted(), pos, num,
                                                 n_rotations=MAX_ROTATIONS)   # at the limit
    assert len(errors) == 2 * MAX_ROTATIONS and len(calls) == 1 + 2 * MAX_ROTATIONS
    assert len(assert_equivariant_features(_Centred(), pos, num, n_rotations=np.int64(2))) == 4


@pytest.mark.parametrize("kwargs,needle", [
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"seed": 2.5}, "seed must be a non-negative integer, got 2.5"),
    ({"seed": True}, "seed must be a non-negative integer, got True"),
    ({"atol": -1.0}, r"atol must be None or a number >= 0, got -1.0"),
    ({"atol": float("nan")}, "atol must be None or a number >= 0, got nan"),
    ({"atol": "1e-3"}, "atol must be None or a number >= 0, got '1e-3'"),
])
def test_assert_equivariant_features_refuses_bad_seed_and_atol(kwargs, needle):
    """A negative or NaN atol failed every model (or a string crashed inside the check);
    a bad seed surfaced as numpy's error after the model ran."""
    pos, num = _small_frame()
    with pytest.raises(ValueError, match=needle):
        assert_equivariant_features(_Centred(), pos, num, **kwargs)


def test_spectral_ceiling_bounds_d_and_budget_before_the_model_runs(monkeypatch):
    """``d`` is bounded by the target degrees it needs (d * L + 2 <= 12), named as ``d``,
    before the model runs (the old code ran the equivariance check, then refused ``lmax``);
    a bad budget, seed or expected is a ValueError too."""
    import empirical.diagnostic
    from empirical.data import Dataset
    from empirical.testing import spectral_ceiling

    class Reached(Exception):
        pass

    def stub(**kwargs):
        raise Reached(kwargs["lmax"])

    monkeypatch.setattr(empirical.diagnostic, "diagnose", stub)
    pos, num = _small_frame(21)
    data = Dataset(positions=pos[None], numbers=num, energies=np.zeros(1),
                   forces=np.zeros((1, 21, 3)), metadata={})
    calls = []

    class Counted(_Centred):                          # L = 1
        def node_features(self, positions, numbers):
            calls.append(1)
            return super().node_features(positions, numbers)

    with pytest.raises(Reached, match="12"):          # at the limit: d * L + 2 = 12
        spectral_ceiling(Counted(), d=10, dataset=data)
    for call in (spectral_ceiling, assert_spectral_ceiling):
        with pytest.raises(ValueError, match=r"probe degree d = 11 is too high .*L = 1.* "
                                             r"d \* L \+ 2 = 13"):
            call(Counted(), d=11, dataset=data)
        with pytest.raises(ValueError, match=r"probe degree d = 1000000000 is too high"):
            call(Counted(), d=10**9, dataset=data)
        for bad in (0, True, 1.5):
            with pytest.raises(ValueError, match=r"probe degree d must be an integer >= 1"):
                call(Counted(), d=bad, dataset=data)
        with pytest.raises(ValueError, match=r"budget must be one of fast, thorough"):
            call(Counted(), d=1, dataset=data, budget=["fast"])
        with pytest.raises(ValueError, match=r"seed must be a non-negative integer"):
            call(Counted(), d=1, dataset=data, seed=-3)
    with pytest.raises(ValueError, match=r"expected must be None or an integer >= 0"):
        assert_spectral_ceiling(Counted(), d=1, expected="two", dataset=data)
    assert calls == []
