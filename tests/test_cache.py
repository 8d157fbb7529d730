"""The feature cache every command shares, and rotations derived from equivariance
(docs/method.md §2.12, §2.13)."""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.cache import (CACHE_CHUNK, MARKER, FeatureCache, TaskStore, default_cache_dir,
                             features_key, model_key, parse_size, resolve_cache_dir)
from empirical.diagnostic import diagnose, rotate_features, wigner
from empirical.diagnostic._features import cached_features


def load_shipped(name):
    from empirical.backbone import load, shipped_paths

    return load(shipped_paths()[name])

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(frames=120, n_boot=200, degrees=(1, 2), lmax=5, k_sweep=(), progress=False)


def _numbers(result) -> dict:
    """Every number of a result that the cache must not change (no cache record)."""
    d = result.to_dict()
    for b in d["backbones"]:
        b.pop("cache", None)
    d["config"].pop("feature_cache")
    return d


# -- where the cache lives ------------------------------------------------------------

def test_default_directory_follows_xdg_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SPECTRAL_CEILINGS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "spectral-ceilings"
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "spectral-ceilings"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")     # the spec: absolute only
    assert default_cache_dir() == Path.home() / ".cache" / "spectral-ceilings"
    monkeypatch.setenv("SPECTRAL_CEILINGS_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir(None) == tmp_path / "env"
    monkeypatch.setenv("SPECTRAL_CEILINGS_CACHE", "off")
    assert resolve_cache_dir(None) is None
    assert resolve_cache_dir(False) is None
    assert resolve_cache_dir(tmp_path / "given") == tmp_path / "given"


def test_parse_size():
    assert parse_size("4G") == 4 * 2 ** 30 and parse_size("512k") == 512 * 1024
    assert parse_size("1000") == 1000 and parse_size("2MiB") == 2 * 2 ** 20
    for bad in ("lots", "-1G", "nan", ""):
        with pytest.raises(ValueError):
            parse_size(bad)


# -- the numbers do not depend on the cache --------------------------------------------

def test_a_warm_rerun_reuses_every_entry_and_gives_identical_numbers(tmp_path):
    cold = diagnose(["aspirin_L2_seed0"], cache=tmp_path / "c", **SMALL)
    warm = diagnose(["aspirin_L2_seed0"], cache=tmp_path / "c", **SMALL)
    none = diagnose(["aspirin_L2_seed0"], **SMALL)
    c, w = cold.backbones[0].cache, warm.backbones[0].cache
    # a cold run reuses only what it wrote itself (a widened plan's model runs may repeat
    # one of its earlier ones: the same key)
    assert set(c["reused"]) <= set(c["written"]) and len(c["written"]) >= 2
    assert set(w["reused"]) == set(c["written"]) and w["written"] == []
    assert warm.config["feature_cache"]["reused"] == len(w["reused"]) >= len(c["written"])
    assert _numbers(cold) == _numbers(warm) == _numbers(none)
    # other probe options, same samples: the features are all reused
    other = diagnose(["aspirin_L2_seed0"], cache=tmp_path / "c",
                     **{**SMALL, "degrees": (2,), "lmax": 4})
    assert other.backbones[0].cache["written"] == []


def test_the_key_names_the_weights_the_configurations_and_the_atoms():
    
    a, b = load_shipped("aspirin_L2_seed0"), load_shipped("aspirin_L2_seed1")
    ka, kb = model_key(a), model_key(b)
    assert ka and kb and ka != kb and model_key(load_shipped("aspirin_L2_seed0")) == ka
    assert model_key(object()) is None            # nothing to name it by: never cached
    pos, rot = np.zeros((2, 3, 3)), np.stack([np.eye(3)] * 2)
    base = features_key(ka, pos, rot, [1, 6, 8], [0, 1])
    assert features_key(ka, pos, rot, [1, 6, 8], [0, 1]) == base
    assert features_key(kb, pos, rot, [1, 6, 8], [0, 1]) != base
    assert features_key(ka, pos + 1e-12, rot, [1, 6, 8], [0, 1]) != base
    assert features_key(ka, pos, rot, [1, 6, 8], [1, 0]) != base
    assert features_key(ka, pos, rot, [1, 6, 8], [0, 1], with_energy=False) != base


# -- damaged entries, unwritable directories, concurrent writers -----------------------

def _entries(root: Path):
    return sorted((root / "features").glob("*/*.npz"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_a_corrupted_entry_is_recomputed_never_trusted(tmp_path, damage):
    root = tmp_path / "c"
    reference = diagnose(["aspirin_L2_seed0"], cache=root, **SMALL)
    victim = _entries(root)[1]
    blob = bytearray(victim.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 2] ^= 0x10          # inside a member: its CRC-32 fails
    elif damage == "empty":
        blob = bytearray()
    else:
        blob = bytearray(os.urandom(len(blob)))
    victim.write_bytes(bytes(blob))
    lines = []
    again = diagnose(["aspirin_L2_seed0"], cache=FeatureCache(root, log=lines.append),
                     **SMALL)
    assert _numbers(again) == _numbers(reference)
    assert again.config["feature_cache"]["damaged_recomputed"] == 1
    assert any("damaged" in line for line in lines)
    key = victim.name[:-4]
    assert f"features/{key}" in again.backbones[0].cache["written"]
    TaskStore(root).load("features", key)          # rewritten whole


def test_an_unwritable_cache_directory_leaves_the_run_correct(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    lines = []
    cache = FeatureCache(blocker / "cache", log=lines.append)
    assert cache.store is None and "cannot be created" in cache.problem
    result = diagnose(["aspirin_L2_seed0"], cache=cache, **SMALL)
    assert _numbers(result) == _numbers(diagnose(["aspirin_L2_seed0"], **SMALL))
    assert result.config["feature_cache"]["problem"] and lines
    assert str(tmp_path) not in json.dumps(result.config["feature_cache"])   # no path


def test_a_read_only_cache_is_read_and_not_written(tmp_path, monkeypatch):
    root = tmp_path / "c"
    diagnose(["aspirin_L2_seed0"], cache=root, **SMALL)
    cache = FeatureCache(root, log=lambda line: None)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache.store, "save", refuse)
    other = diagnose(["aspirin_L2_seed1"], cache=cache, **SMALL)       # nothing to reuse
    assert other.config["feature_cache"]["written"] == 0
    assert "cannot be written" in other.config["feature_cache"]["problem"]
    assert _numbers(other) == _numbers(diagnose(["aspirin_L2_seed1"], **SMALL))


def _fill(root: str, queue) -> None:
    from empirical.diagnostic import diagnose as run

    result = run(["aspirin_L2_seed0"], cache=root, **SMALL)
    queue.put(json.dumps(_numbers(result), sort_keys=True))


def test_two_processes_filling_one_cache_at_once_leave_correct_results(tmp_path):
    root = str(tmp_path / "c")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fill, args=(root, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    outs = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    reference = json.dumps(_numbers(diagnose(["aspirin_L2_seed0"], **SMALL)), sort_keys=True)
    assert outs == [reference, reference]
    store = TaskStore(root)
    for f in _entries(Path(root)):
        assert store.has("features", f.name[:-4])        # every entry whole
    assert not list(Path(root).rglob(".*.npz.*"))        # no half-written file left
    warm = diagnose(["aspirin_L2_seed0"], cache=root, **SMALL)
    assert warm.backbones[0].cache["written"] == []


def test_threads_writing_the_same_entry_never_leave_half_of_one(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = TaskStore(tmp_path / "s")
    key = "ab" * 32
    arrays = {"features": np.arange(50000, dtype=np.float64)}

    def write(_):
        store.save("features", key, arrays, {"dtype": "float64", "scale": 1.0, "seconds": 0})
        got, _ = TaskStore(tmp_path / "s").load("features", key)
        return np.array_equal(got["features"], arrays["features"])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(write, range(32)))


# -- eviction and clear --------------------------------------------------------------

def test_eviction_removes_the_least_recently_used_and_never_what_the_run_used(tmp_path):
    root = tmp_path / "c"
    meta = {"dtype": "float64", "scale": 1.0, "seconds": 0.0}
    old = TaskStore(root)
    keys = [f"{i:02x}" * 32 for i in range(6)]
    for i, k in enumerate(keys):
        old.save("features", k, {"features": np.zeros(1000)}, meta)
        os.utime(old.path("features", k), (1000 + i, 1000 + i))
    size = old.path("features", keys[0]).stat().st_size
    run = TaskStore(root)
    assert run.has("features", keys[0])                  # used now: the newest, and pinned
    removed, _ = run.evict(3 * size)
    assert removed == 3
    left = {f.name[:-4] for f in _entries(root)}
    assert left == {keys[0], keys[4], keys[5]}
    assert run.evict(0)[0] == 2 and {f.name[:-4] for f in _entries(root)} == {keys[0]}


def test_clear_touches_only_what_the_tool_wrote(tmp_path):
    root = tmp_path / "c"
    store = TaskStore(root)
    store.save("features", "cd" * 32, {"features": np.zeros(3)},
               {"dtype": "float64", "scale": 0.0, "seconds": 0.0})
    foreign = [root / "notes.txt", root / "features" / "cd" / "mine.npz",
               root / "features" / "zz" / ("ef" * 32 + ".npz")]
    for f in foreign:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("keep me")
    removed, freed = store.clear()
    assert removed == 1 and freed > 0
    for f in foreign:
        assert f.read_text() == "keep me"
    assert (root / MARKER).is_file() and not list(root.rglob("cdcd*.npz"))


def test_cli_cache_info_and_clear(tmp_path):
    env = {**os.environ, "SPECTRAL_CEILINGS_CACHE": str(tmp_path / "c")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "empirical.cli", *a],
                                    capture_output=True, text=True, env=env, cwd=tmp_path)
    empty = run("cache", "info", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout)["exists"] is False
    diagnose(["aspirin_L2_seed0"], cache=tmp_path / "c", **SMALL)
    info = json.loads(run("cache", "info", "--json").stdout)
    assert info["exists"] and info["entries"]["features"] >= 2
    assert "removed" in run("cache", "clear").stdout
    assert json.loads(run("cache", "info", "--json").stdout)["entries"]["features"] == 0
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("x")
    bad = run("cache", "clear", "--cache", str(tmp_path / "foreign"))
    assert bad.returncode == 2 and "not a spectral-ceilings cache" in bad.stderr
    assert (tmp_path / "foreign" / "x").read_text() == "x"


def test_cli_refuses_a_cache_inside_the_output(tmp_path):
    out = subprocess.run([sys.executable, "-m", "empirical.cli", "diagnose", "--frames", "50",
                          "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "o" / "c")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "overlap" in out.stderr
    assert not (tmp_path / "o").exists()


# -- rotations derived from equivariance ------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 31), l=st.integers(0, 8), improper=st.booleans())
def test_wigner_blocks_equal_e3nn_d_from_matrix(seed, l, improper):
    """Two independent constructions of D(R): ours from e3nn's spherical harmonics on a
    fixed point set, e3nn's from the so(3) generators (built in float64)."""
    from scipy.spatial.transform import Rotation

    R = Rotation.random(3, random_state=seed).as_matrix() * (-1 if improper else 1)
    parity = 1 if seed % 2 else -1
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        D = o3.Irrep(l, parity).D_from_matrix(torch.tensor(R)).numpy()
    finally:
        torch.set_default_dtype(old)
    h = np.random.default_rng(seed).normal(size=(3, 2 * l + 1))
    ours = rotate_features(h, o3.Irreps(f"1x{l}{'e' if parity == 1 else 'o'}"), R)
    assert np.abs(ours - np.einsum("nij,nj->ni", D, h)).max() < 1e-12
    if not improper:
        assert np.abs(wigner(l, R) - D).max() < 1e-12


def test_rotate_features_is_a_representation():
    from scipy.spatial.transform import Rotation

    irreps = o3.Irreps("2x0e+1x1o+3x2e+1x3o")
    A, B = Rotation.random(2, random_state=3).as_matrix()
    h = np.random.default_rng(0).normal(size=(1, irreps.dim))
    two = rotate_features(rotate_features(h, irreps, B[None]), irreps, A[None])
    assert np.abs(two - rotate_features(h, irreps, (A @ B)[None])).max() < 1e-12


def test_derived_rotations_match_the_model_to_1e_4_in_rho():
    """The issue's measurement on a small scale: rho of every cell with 4 rotations per
    configuration, derived and run through the model, differ by less than 1e-4."""
    opts = {**SMALL, "frames": 150, "rotations_per_config": 4}
    auto = diagnose(["aspirin_L2_seed0"], rotate="auto", **opts)
    model = diagnose(["aspirin_L2_seed0"], rotate="model", **opts)
    ra, rm = auto.backbones[0].rotations, model.backbones[0].rotations
    assert ra["method"] == "equivariance" and ra["model_runs"] == 150 and ra["derived"] == 450
    assert ra["check"]["passed"] and ra["check"]["samples"] == 32
    assert ra["check"]["max_deviation"] < 1e-4
    assert rm["method"] == "model" and rm["model_runs"] == 600
    diffs = [abs(a - m) for d in auto.summaries for l, a in auto.summaries[d].rho.items()
             if a is not None for m in [model.summaries[d].rho[l]]]
    assert diffs and max(diffs) < 1e-4


class _Broken:
    """Our backbone with a lab-frame term added to its l = 1 features: not equivariant."""

    def __init__(self, inner, strength):
        self.inner, self.strength = inner, strength
        self.irreps_out = inner.irreps_out

    def node_features(self, positions, numbers):
        h = self.inner.node_features(positions, numbers).clone()
        sl = o3.Irreps(self.irreps_out).slices()[1]
        h[:, sl.start] += self.strength * positions[:, 2]
        return h


@pytest.mark.parametrize("strength", [1.0])
def test_a_non_equivariant_model_is_never_derived(strength):
    
    broken = _Broken(load_shipped("aspirin_L2_seed0"), strength)
    result = diagnose([broken], **{**SMALL, "frames": 60, "rotations_per_config": 2})
    rec = result.backbones[0].rotations
    assert rec["method"] == "model" and rec["derived"] == 0 and "fallback" in rec
    assert rec["model_runs"] == 120 and result.backbones[0].equivariant is False


def test_rotate_model_is_the_old_measurement():
    opts = {**SMALL, "frames": 60}
    one = diagnose(["aspirin_L2_seed0"], rotate="model", **opts)
    other = diagnose(["aspirin_L2_seed0"], rotate="auto", **opts)
    # one rotation per configuration: nothing to derive, the same numbers
    assert other.backbones[0].rotations["derived"] == 0
    a, b = _numbers(one), _numbers(other)
    a["config"].pop("rotate"), b["config"].pop("rotate")
    for rec in a["backbones"] + b["backbones"]:
        rec["rotations"].pop("mode")
    assert a == b


def test_cached_features_equal_atom_features_across_chunk_edges(tmp_path):
    from empirical.data import load as load_dataset
    from empirical.diagnostic import atom_features, haar_rotations

    obj = load_shipped("aspirin_L2_seed0")
    data = load_dataset("aspirin")
    n = CACHE_CHUNK + 17
    pos, rot = data.positions[:n], haar_rotations(n, 5)
    plain, e = atom_features(obj, pos, data.numbers, rot, [3, 4])
    cache = FeatureCache(tmp_path / "c")
    first, e1, written = cached_features(obj, pos, data.numbers, rot, [3, 4], cache=cache,
                                         model=model_key(obj))
    again, e2, none = cached_features(obj, pos, data.numbers, rot, [3, 4], cache=cache,
                                      model=model_key(obj))
    assert written == 2 and none == 0
    assert np.array_equal(first, plain.reshape(n, -1)) and np.array_equal(again, first)
    assert np.array_equal(e1, e) and np.array_equal(e2, e)


# -- hostile entries and folders (found by attacking the cache; each once failed) -------

def _npy(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _zip(path: Path, members) -> None:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, blob in members:
            zf.writestr(name, blob)


META = json.dumps({"dtype": "float64", "scale": 1.0, "seconds": 0.0})
HOSTILE = {
    "deep JSON meta": [("meta.npy", _npy(np.array("[" * 100000 + "]" * 100000))),
                       ("a_features.npy", _npy(np.zeros((2, 3))))],
    "a header numpy cannot parse": [("meta.npy", _npy(np.array(META))),
                                    ("a_features.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': ((((" +
                                     b" " * 1 + b"\n")],
    "int8 features": [("meta.npy", _npy(np.array(META))),
                      ("a_features.npy", _npy(np.zeros((2, 3), dtype=np.int8)))],
    "strings": [("meta.npy", _npy(np.array(META))), ("a_features.npy", _npy(np.array(["a"])))],
    "a structured array": [("meta.npy", _npy(np.array(META))),
                           ("a_features.npy", _npy(np.zeros(2, dtype=[("a", "<f8")])))],
    "complex features": [("meta.npy", _npy(np.array(META))),
                         ("a_features.npy", _npy(np.zeros((2, 3), dtype=np.complex128)))],
    "float32 under a float64 meta": [("meta.npy", _npy(np.array(META))),
                                     ("a_features.npy", _npy(np.zeros((2, 3), np.float32)))],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_entry_counts_as_damaged_never_raises(tmp_path, case):
    import warnings

    store = TaskStore(tmp_path / "s")
    key = "7f" * 32
    members = list(HOSTILE[case])
    _zip(store.path("features", key), members)
    seen = []
    store.on_damaged = lambda kind, k, reason: seen.append(reason)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a complex cast would only warn
        assert store.get("features", key) is None
    assert len(seen) == 1


def test_two_members_of_one_name_are_damaged(tmp_path):
    import zipfile

    store = TaskStore(tmp_path / "s")
    key = "7e" * 32
    path = store.path("features", key)
    path.parent.mkdir(parents=True)
    with warnings_off(), zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("meta.npy", _npy(np.array(META)))
        zf.writestr("a_features.npy", _npy(np.zeros((2, 3))))
        zf.writestr("a_features.npy", _npy(np.ones((2, 3))))
    assert not store.has("features", key)


def warnings_off():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")

    class _Done:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            ctx.__exit__(*exc)
    return _Done()


@pytest.mark.parametrize("damage", ["int8", "wrong shape", "nan"])
def test_an_entry_of_the_wrong_kind_of_numbers_is_recomputed_not_trusted(tmp_path, damage):
    """Entries that pass a zip check but hold numbers a run must not use: before, int8
    features were trusted (the equivariance check read 1.18), a shorter array was
    recomputed silently and listed as both reused and written."""
    root = tmp_path / "c"
    reference = diagnose(["aspirin_L2_seed0"], cache=root, **SMALL)
    store = TaskStore(root)
    victim = max(_entries(root), key=lambda f: f.stat().st_size)
    key = victim.name[:-4]
    arrays, meta = store.load("features", key)
    f = arrays["features"]
    if damage == "int8":
        f = f.astype(np.int8)
    elif damage == "wrong shape":
        f = f[:3]
    else:
        f = f.copy()
        f[0, 0] = np.nan
    victim.unlink()
    _zip(victim, [("meta.npy", _npy(np.array(json.dumps(meta)))), ("a_features.npy", _npy(f)),
                  *([("a_energies.npy", _npy(arrays["energies"]))]
                    if "energies" in arrays else [])])
    again = diagnose(["aspirin_L2_seed0"], cache=FeatureCache(root, log=lambda line: None),
                     **SMALL)
    assert _numbers(again) == _numbers(reference)
    assert again.config["feature_cache"]["damaged_recomputed"] == 1
    record = [b.cache for b in again.backbones][0]
    assert f"features/{key}" in record["written"]
    # read back whole afterwards (a later extraction of the run may reuse it)
    assert TaskStore(root).load("features", key)[0]["features"].dtype == arrays["features"].dtype


def test_nothing_behind_a_symbolic_link_is_read_touched_or_removed(tmp_path):
    outside = tmp_path / "outside"
    key = "ab" * 32
    (outside / "ab").mkdir(parents=True)
    victim = outside / "ab" / f"{key}.npz"
    victim.write_text("not ours")
    root = tmp_path / "c"
    store = TaskStore(root)
    (root / "probe").symlink_to(outside)              # a kind folder that is a link
    entry = store.path("features", "cd" * 32)
    good = TaskStore(tmp_path / "elsewhere")
    good.save("features", "cd" * 32, {"features": np.zeros((2, 3))},
              {"dtype": "float64", "scale": 0.0, "seconds": 0.0})
    entry.parent.mkdir(parents=True)
    entry.symlink_to(good.path("features", "cd" * 32))  # an entry that is a link
    os.utime(good.path("features", "cd" * 32), (1000, 1000))
    assert not store.has("features", "cd" * 32)       # not trusted
    assert good.path("features", "cd" * 32).stat().st_mtime == 1000   # not touched
    store.save("features", "cd" * 32, {"features": np.ones((2, 3))},
               {"dtype": "float64", "scale": 1.0, "seconds": 0.0})
    assert entry.is_symlink()                         # not replaced
    assert store.evict(0) == (0, 0) and store.clear()[0] == 0
    assert victim.read_text() == "not ours" and entry.is_symlink()
    assert store.info().entries["probe"] == 0


def test_a_marker_that_is_a_link_is_not_ours(tmp_path):
    (tmp_path / "foreign").write_text("x")
    root = tmp_path / "c"
    root.mkdir()
    (root / MARKER).symlink_to(tmp_path / "foreign")
    (root / "data.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a spectral-ceilings cache|symbolic link"):
        TaskStore(root)


@pytest.mark.parametrize("argv, message", [
    (["--cache", ""], "an empty path"),
    (["--cache", "x"], "SPECTRAL_CEILINGS_CACHE_MAX_BYTES: not a size"),
])
def test_cli_names_the_bad_cache_input(tmp_path, argv, message):
    env = {**os.environ, "SPECTRAL_CEILINGS_CACHE_MAX_BYTES": "abc"} if "x" in argv \
        else dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "empirical.cli", "diagnose", "--frames", "50",
                          "--out", str(tmp_path / "o"), *argv], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()
