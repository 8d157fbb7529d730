"""Sweeps on Dask (docs/method.md §2.11): identical cells to a serial diagnose, a resumable
content-keyed store, a killed worker replaced with nothing lost, and the configuration's
checks. The clusters are real (LocalCluster worker processes), the sweeps tiny."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from empirical.cli import main  # noqa: E402
from empirical.diagnostic import diagnose  # noqa: E402
from empirical.survey import model_seed  # noqa: E402
from empirical.sweep import (TaskStore, content_key, epoch_of, load_config,  # noqa: E402
                             parse_config, plan_sweep, sweep)

TWO = ["aspirin_L2_seed0", "aspirin_L2_seed1"]
#: A tiny sweep: two backbones pooled, d = 1, 2, 150 configurations (enough for capacity
#: sweep rows at both d) in chunks of 40 (five batches of our backbones' 8).
SMALL = {"groups": [{"name": "two", "backbones": TWO}], "degrees": [1, 2], "lmax": 5,
         "frames": 150, "n_boot": 60, "k_sweep": [1, 2], "chunk": 40}
OPTIONS = dict(degrees=(1, 2), lmax=5, frames=150, n_boot=60, k_sweep=(1, 2))


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _payload(result):
    return json.loads(result.to_json())


def _without_cache_record(run, reference):
    """``(run, reference)`` without ``config.feature_cache``: a sweep counts its cache use
    per sweep (timings.json), a diagnose without a cache records ``{"used": False}``."""
    assert run["config"].pop("feature_cache")["counted"] == "per sweep, in timings.json"
    assert reference["config"].pop("feature_cache") == {"used": False}
    return run, reference


def test_sweep_cells_are_identical_to_a_serial_diagnose(client, tmp_path):
    """A run of the sweep is ``diagnose`` of its group with the group's own plan seed
    (drawn from the seed and the group's name): every key of the run's results (cells,
    summaries, probes, k sweep, backbone records, config) is equal, bit for bit, on two
    worker processes."""
    result = sweep(parse_config(SMALL), store=tmp_path / "store", client=client,
                   progress=False)
    reference = diagnose(TWO, progress=False, seed=model_seed(0, "two"), **OPTIONS).to_dict()
    assert result.config["draws"] == "independent"
    assert result.config["group_seeds"] == {"two": {"0": model_seed(0, "two")}}
    run = result.runs[result.rows[0].run].to_dict()
    assert run["cells"] == reference["cells"]
    assert run["summary"] == reference["summary"]
    run, reference = _without_cache_record(run, reference)
    assert run == reference
    assert [r.headline.d for r in result.rows] == [1, 2]
    assert result.rows[0].headline.rho_boundary == reference["summary"]["1"]["rho"]["2"]
    assert {r["d"] for r in run["k_sweep"]} == {1, 2}
    # capacity "auto" widened d = 2 on the workers (features of 4 rotations per
    # configuration extracted there), and the result is still diagnose's
    assert [c["rotations_per_config"] for c in run["summary"]["2"]["capacity"]] == [1, 4]
    assert result.timings["computed"]["features"] == 8       # 2 backbones x 4 chunks


def test_a_single_checkpoint_group_is_a_single_backbone_diagnose(client, tmp_path):
    """``pool = false``: one run per backbone, each equal to diagnose of that backbone."""
    raw = {**SMALL, "groups": [{"backbones": TWO[:1], "pool": False}]}
    result = sweep(parse_config(raw), store=tmp_path / "s", client=client, progress=False)
    reference = diagnose(TWO[:1], progress=False, seed=model_seed(0, TWO[0]),
                         **OPTIONS).to_dict()
    (run,) = (r.to_dict() for r in result.runs.values())
    run, reference = _without_cache_record(run, reference)
    assert run["cells"] == reference["cells"] and run == reference


def test_a_fixed_capacity_sweep_is_a_fixed_capacity_diagnose(client, tmp_path):
    """``capacity = "fixed"`` reaches the run's plan: the run equals diagnose with
    ``capacity="fixed"`` (one width, the refit spread still recorded), not the default."""
    raw = {**SMALL, "groups": [{"backbones": TWO[:1], "pool": False}], "capacity": "fixed"}
    result = sweep(parse_config(raw), store=tmp_path / "s", client=client, progress=False)
    reference = diagnose(TWO[:1], progress=False, seed=model_seed(0, TWO[0]),
                         capacity="fixed", **OPTIONS).to_dict()
    (run,) = (r.to_dict() for r in result.runs.values())
    assert run["config"]["capacity"]["mode"] == "fixed"
    assert all(len(s["capacity"]) == 1 and s["refit_spread"] is not None
               for s in run["summary"].values())
    run, reference = _without_cache_record(run, reference)
    assert run == reference


def test_rerun_computes_only_what_is_missing(client, tmp_path):
    """A rerun takes every task from the store and writes the same results.json; with
    two feature chunks, the probe fits and the run deleted, exactly those run again; with
    the run alone deleted, only the bootstrap (from the stored fits); the results are the
    same each time."""
    store = tmp_path / "store"
    config = parse_config(SMALL)
    first = sweep(config, store=store, client=client, progress=False)
    again = sweep(config, store=store, client=client, progress=False)
    assert sum(again.timings["computed"].values()) == 0
    assert again.timings["from_store"]["run"] == 1
    assert _payload(again) == _payload(first)
    plan = plan_sweep(config)
    (run,) = plan.runs
    ts = TaskStore(store)
    deleted = [run.backbones[0].chunks[1][0], run.backbones[1].chunks[3][0]]
    for key in deleted:
        ts.path("features", key).unlink()
    for bb in run.backbones:
        for key in bb.probe_keys.values():
            ts.path("probe", key).unlink()
    ts.path("run", run.key).unlink()
    third = sweep(config, store=store, client=client, progress=False)
    assert third.timings["computed"] == {"features": 2, "equivariance": 0, "probe": 4,
                                         "run": 1}
    assert third.timings["from_store"]["features"] == 6
    assert _payload(third) == _payload(first)
    ts.path("run", run.key).unlink()      # the bootstrap again, from the stored probe fits
    fourth = sweep(config, store=store, client=client, progress=False)
    assert fourth.timings["computed"] == {"features": 0, "equivariance": 0, "probe": 0,
                                          "run": 1}
    assert _payload(fourth) == _payload(first)


def test_an_interrupted_sweep_loses_only_running_tasks(client, tmp_path):
    """Stopped after three stored tasks (an interrupt in the driver), the store keeps
    them, and the rerun computes only the rest."""
    store = tmp_path / "store"
    config = parse_config(SMALL)
    seen = []

    def stop(kind, key):
        seen.append((kind, key))
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(config, store=store, client=client, progress=False, on_task=stop)
    kept = sum(TaskStore(store).count(k) for k in ("features", "equivariance", "probe", "run"))
    assert kept >= 3
    total = sum(plan_sweep(config).tasks().values())
    rest = sweep(config, store=store, client=client, progress=False)
    assert sum(rest.timings["computed"].values()) == total - kept
    reference = sweep(config, store=tmp_path / "fresh", client=client, progress=False)
    assert _payload(rest) == _payload(reference)


def test_a_killed_worker_is_replaced_and_the_results_are_unchanged(client, tmp_path):
    """Two worker processes; one is killed (SIGKILL) as soon as the first feature chunk
    is stored. Its nanny starts a new process, the scheduler reruns what was lost, and
    the sweep's results equal an undisturbed run's."""
    config = parse_config(SMALL)
    undisturbed = sweep(config, store=tmp_path / "calm", client=client, progress=False)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    own = Client(cluster)
    try:
        pids = own.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed = []

        def kill(kind, key):
            if kind == "features" and not killed:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        disturbed = sweep(config, store=tmp_path / "storm", client=own, progress=False,
                          on_task=kill)
        own.wait_for_workers(2, timeout=60)
        after = own.run(os.getpid)
    finally:
        own.close()
        cluster.close()
    assert killed == [victim]
    assert victim not in after.values() and len(after) == 2
    assert _payload(disturbed) == _payload(undisturbed)


def test_the_same_backbone_twice_is_extracted_once(client, tmp_path):
    """Content keys: with paired draws, two groups of the same backbones are the same
    work, keyed once (8 feature chunks, 1 run), and both rows read it."""
    raw = {**SMALL, "paired": True, "groups": [{"name": "a", "backbones": TWO},
                                               {"name": "b", "backbones": TWO, "pool": True}]}
    config = parse_config(raw)
    assert config.to_dict()["draws"] == "paired"
    counts = plan_sweep(config).tasks()
    assert counts["run"] == 1 and counts["features"] == 8
    result = sweep(config, store=tmp_path / "s", client=client, progress=False)
    assert result.timings["computed"]["features"] == 8
    a, b = result.runs.values()
    assert a.cells == b.cells


def test_groups_draw_their_own_plans_unless_paired():
    """Independent draws (the default): two groups of the same backbones under two names
    get their own plan seeds (their own rotations: 16 feature chunks, 2 runs), and a
    group's plan does not depend on the groups beside it; ``paired = true`` in the file
    or ``with_paired(True)`` (CLI --paired) gives every group the seed itself."""
    groups = [{"name": "a", "backbones": TWO}, {"name": "b", "backbones": TWO}]
    plan = plan_sweep(parse_config({**SMALL, "seeds": [0, 3], "groups": groups}))
    seeds = {(r.group.name, r.seed): r.plan.seed for r in plan.runs}
    assert seeds == {(g, s): model_seed(s, g) for g in "ab" for s in (0, 3)}
    assert plan.tasks()["run"] == 4 and plan.tasks()["features"] == 32
    alone = plan_sweep(parse_config({**SMALL, "groups": groups[1:]}))
    assert alone.runs[0].key == plan.runs[2].key        # group b, seed 0: the same run
    for config in (parse_config({**SMALL, "groups": groups, "paired": True}),
                   parse_config({**SMALL, "groups": groups}).with_paired(True)):
        assert [r.plan.seed for r in plan_sweep(config).runs] == [0, 0]
    with pytest.raises(ValueError, match="paired must be true or false, got 'yes'"):
        parse_config({**SMALL, "paired": "yes"})


# -- configuration ------------------------------------------------------------------------

def test_config_checks_name_the_bad_key(tmp_path):
    cases = [({"groups": []}, "groups"),
             ({**SMALL, "degress": [1]}, "degress"),
             ({**SMALL, "degrees": [0]}, "degrees"),
             ({**SMALL, "degrees": [1, 1]}, "repeats"),
             ({**SMALL, "lmax": 40}, "lmax"),
             ({**SMALL, "frames": 1}, "frames"),
             ({**SMALL, "chunk": 0}, "chunk"),
             ({**SMALL, "marked": [[0]]}, "marked"),
             ({**SMALL, "groups": [{"backbones": ["x/*.pt"]}]}, "matches no file"),
             ({**SMALL, "groups": [{"backbones": TWO, "pool": "yes"}]}, "pool"),
             ({**SMALL, "groups": [{"backbones": TWO, "colour": 1}]}, "colour"),
             ({**SMALL, "groups": [{"name": "a", "backbones": TWO[:1]},
                                   {"name": "a", "backbones": TWO[1:]}]}, "named 'a'"),
             ({**SMALL, "trust_checkpoints": 1}, "trust_checkpoints"),
             ({**SMALL, "capacity": "wide"}, "capacity must be 'auto' or 'fixed', got 'wide'"),
             ({**SMALL, "capacity": ["auto"]}, "capacity .* got \\('auto',\\)")]
    for raw, word in cases:
        with pytest.raises(ValueError, match=word):
            parse_config(raw, base=tmp_path)


def test_globs_expand_to_one_group_per_checkpoint_with_its_epoch(tmp_path):
    """``pool = false`` over ``epoch_*.pt``: one group per file, sorted, named after its
    folder and file, its epoch parsed from the name."""
    run = tmp_path / "train"
    run.mkdir()
    for e in (10, 0, 2):
        (run / f"epoch_{e:04d}.pt").write_bytes(b"")
    config = parse_config({"groups": [{"backbones": ["train/epoch_*.pt"], "pool": False}]},
                          base=tmp_path)
    assert [g.name for g in config.groups] == ["train/epoch_0000", "train/epoch_0002",
                                               "train/epoch_0010"]
    assert [g.epoch for g in config.groups] == [0, 2, 10]
    named = parse_config({"groups": [{"name": "run", "backbones": ["train/epoch_000[02].pt"],
                                      "pool": False}]}, base=tmp_path)
    assert [g.name for g in named.groups] == ["run/epoch_0000", "run/epoch_0002"]
    assert epoch_of("a/b/epoch_0040.pt") == 40 and epoch_of("best.pt") is None


def test_load_config_reads_toml_and_refuses_broken_files(tmp_path):
    good = tmp_path / "s.toml"
    good.write_text('degrees = [1]\n[[groups]]\nbackbones = ["aspirin_L2_seed0"]\n')
    config = load_config(good)
    assert config.degrees == (1,) and config.groups[0].name == "aspirin_L2_seed0"
    bad = tmp_path / "b.toml"
    bad.write_text("degrees = [1\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ValueError, match="not a file"):
        load_config(tmp_path / "missing.toml")


def test_the_example_config_is_the_four_shipped_backbones():
    config = load_config(Path(__file__).parents[1] / "examples" / "sweep" / "aspirin.toml")
    assert config.degrees == (1, 2, 3)
    assert config.groups[0].backbones == tuple(f"aspirin_L2_seed{i}" for i in range(4))
    assert config.with_frames(100).frames == 100


def test_cli_refuses_bad_input_with_one_line_and_no_output(tmp_path, capsys):
    """Exit 2, one line naming the problem, nothing written: a bad key, an unknown
    backbone (found while planning, before any task), an occupied output directory."""
    out = tmp_path / "out"
    cfg = tmp_path / "c.toml"
    cfg.write_text('lmax = 5\nfrobs = 2\n[[groups]]\nbackbones = ["aspirin_L2_seed0"]\n')
    assert main(["sweep", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frobs" in err[0]
    cfg.write_text('[[groups]]\nbackbones = ["no_such_backbone"]\n')
    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no_such_backbone" in err[-1]
    assert not out.exists() and not (tmp_path / "out.store").exists()
    out.mkdir()
    (out / "x").write_text("")
    assert main(["sweep", str(cfg), "--out", str(out)]) == 2


def test_cli_names_an_absent_scheduler_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A scheduler address where nothing listens: exit 2, one line naming it, no store
    and no output (the connection's timeout is shortened for the test)."""
    import empirical.sweep._sweep as sw
    from distributed import Client

    monkeypatch.setattr(sw, "_connect", lambda address: Client(address, timeout="2s"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('degrees = [1]\n[[groups]]\nbackbones = ["aspirin_L2_seed0"]\n')
    out = tmp_path / "o"
    assert main(["sweep", str(cfg), "--frames", "20", "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in err[-1]
    assert not out.exists() and not (tmp_path / "o.store").exists()


def test_cli_sweep_writes_one_set(client, tmp_path, monkeypatch, capsys):
    """``empirical sweep`` on a tiny file: results.json, report.md, sweep.png and
    timings.json; the report and the rows agree with results.json."""
    import empirical.sweep._sweep as sw

    monkeypatch.setattr(sw, "_client", lambda scheduler, workers: (client, None))
    monkeypatch.setattr(client, "close", lambda: None)
    cfg = tmp_path / "c.toml"
    cfg.write_text('degrees = [1]\nlmax = 3\nn_boot = 40\nk_sweep = []\nchunk = 8\n'
                   '[[groups]]\nbackbones = ["aspirin_L2_seed2"]\n')
    out = tmp_path / "o"
    assert main(["sweep", str(cfg), "--frames", "30", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".spectral-ceilings.json", "report.md",
                                                    "results.json", "sweep.png", "timings.json"]
    payload = json.loads((out / "results.json").read_text())
    assert payload["schema"] == "spectral-ceilings-sweep/2" and payload["config"]["frames"] == 30
    (row,) = payload["rows"]
    assert row["group"] == "aspirin_L2_seed2" and row["d"] == 1
    assert "| aspirin_L2_seed2 | undefined | aspirin |" in (out / "report.md").read_text()
    assert (tmp_path / "o.store" / "SPECTRAL_CEILINGS_STORE").is_file()


def _strings(value):
    """Every string in a JSON value (keys too)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_a_sweep_records_paths_relative_to_its_configuration(client, tmp_path):
    """A checkpoint named by a glob relative to the configuration file is loaded from where
    it lies and recorded relative to the file (the group's backbones, the run's backbone
    source): results.json holds no absolute path, and no part of the machine's."""
    import shutil

    from empirical.backbone import shipped_paths

    (tmp_path / "ck").mkdir()
    shutil.copy(shipped_paths()["aspirin_L2_seed2"], tmp_path / "ck" / "epoch_0003.pt")
    (tmp_path / "cfg").mkdir()
    cfg = tmp_path / "cfg" / "c.toml"
    cfg.write_text('degrees = [1]\nlmax = 3\nn_boot = 40\nk_sweep = []\nchunk = 8\n'
                   'frames = 30\n[[groups]]\nbackbones = ["../ck/epoch_000?.pt"]\n')
    config = load_config(cfg)
    assert config.groups[0].backbones == (str(tmp_path / "ck" / "epoch_0003.pt"),)  # loadable
    result = sweep(config, store=tmp_path / "s", client=client, progress=False)
    payload = json.loads(result.to_json())
    assert payload["config"]["groups"][0]["backbones"] == ["../ck/epoch_0003.pt"]
    (run,) = payload["runs"].values()
    assert run["backbones"][0]["source"] == "../ck/epoch_0003.pt"
    assert result.rows[0].epoch == 3
    for text in _strings(payload):
        assert not os.path.isabs(text) and str(tmp_path) not in text, text


def test_recorded_paths_are_relative_to_the_file(tmp_path):
    """Every recorded path: relative to the configuration's directory, after an adapter
    prefix too; names and specs that are not paths as they are."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "m.model").write_text("x")
    raw = {"groups": [{"backbones": ["aspirin_L2_seed0", "mace:" + str(tmp_path / "a" / "*.model"),
                                     "sevenn:7net-0"]}]}
    config = parse_config(raw, base=tmp_path / "b")
    (group,) = config.to_dict()["groups"]
    assert group["backbones"] == ["aspirin_L2_seed0", "mace:../a/m.model", "sevenn:7net-0"]
    assert config.recorded(str(tmp_path / "b" / "data.npz")) == "data.npz"


# -- store ---------------------------------------------------------------------------------

@given(st.lists(st.integers(-5, 5), min_size=1, max_size=6), st.integers(0, 5))
def test_content_keys_change_with_any_input(values, i):
    """Equal inputs give equal keys; changing one number, its type or the kind changes
    the key."""
    arr = np.array(values, dtype=float)
    key = content_key("features", arr, {"a": 1})
    assert key == content_key("features", arr.copy(), {"a": 1})
    changed = arr.copy()
    changed[i % len(arr)] += 1
    assert key != content_key("features", changed, {"a": 1})
    assert key != content_key("features", arr.astype(np.float32), {"a": 1})
    assert key != content_key("probe", arr, {"a": 1})
    assert key != content_key("features", arr, {"a": 2})


def test_store_refuses_foreign_folders_and_damaged_entries(tmp_path):
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match="not a spectral-ceilings cache or task store"):
        TaskStore(foreign)
    store = TaskStore(tmp_path / "s")
    key = content_key("features", 1)
    meta = {"dtype": "float64", "scale": 1.0, "seconds": 0.5}
    store.save("features", key, {"features": np.arange(3.0)}, meta)
    arrays, loaded = store.load("features", key)
    assert np.array_equal(arrays["features"], np.arange(3.0)) and loaded == meta
    store.path("features", key).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="damaged"):
        store.load("features", key)
    with pytest.raises(ValueError, match="not a store key"):
        store.path("features", "../../etc")


def test_a_worker_refuses_a_file_with_other_weights():
    """A path that holds other weights on a worker (another machine's file) fails."""
    from empirical.sweep._tasks import worker_backbone

    with pytest.raises(ValueError, match="SHA-256"):
        worker_backbone("aspirin_L2_seed0", False, "0" * 64)


def test_tune_malloc_sets_glibc_thresholds_once():
    """On glibc both thresholds are set (mallopt returns 1), and a second call is a no-op
    that still reports them set; the speed it buys is in bench/bench_sweep.py."""
    import sys

    from empirical import _malloc

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert _malloc.tune_malloc() is True
    assert _malloc.tune_malloc() is True and _malloc._done


def test_ctrl_c_stops_the_command_cleanly_and_keeps_finished_tasks(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a CLI
    sweep: exit 130, one line saying where the finished tasks are, no traceback from the
    workers, no output directory, and the tasks finished so far kept in the store."""
    import subprocess
    import sys
    import time

    cfg = tmp_path / "c.toml"
    cfg.write_text('degrees = [1, 2]\nlmax = 5\nchunk = 40\nk_sweep = []\n[[groups]]\n'
                   'backbones = ["aspirin_L2_seed0", "aspirin_L2_seed1"]\n')
    out, store = tmp_path / "o", tmp_path / "o.store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "empirical.cli", "sweep", str(cfg), "--frames", "1500",
         "--workers", "2", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: (os.setpgrp(), signal.signal(signal.SIGINT, signal.SIG_DFL)))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not any(
            (store / "features").glob("*/*.npz")):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1].startswith("empirical: interrupted;")
    assert str(store) in err
    assert not out.exists()
    assert any((store / "features").glob("*/*.npz"))
