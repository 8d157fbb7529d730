"""The spanthm command line: JSON contract, exit codes, one-line errors; the empirical
command line's parser: shared options and the training defaults."""

import json
import subprocess
import sys

import pytest

from spanthm import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_json_contract(capsys):
    code, out, err = run(capsys, "check", "--L", "2", "--d", "2", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert set(data) == {"features", "d", "exactly", "degrees", "dims", "ceiling", "theorem",
                         "boundary_multiplicity", "methods"}
    assert data["features"] == [0, 1, 2] and data["d"] == 2 and data["exactly"] is False
    assert data["degrees"] == [0, 1, 2, 3, 4]
    assert data["dims"] == {"0": 1, "1": 3, "2": 5, "3": 7, "4": 9, "5": 0, "6": 0}
    assert (data["ceiling"], data["theorem"], data["boundary_multiplicity"]) == (4, "holds", 1)
    assert data["methods"] == {"exact": "agree"}


def test_check_features_exactly_all_methods(capsys):
    code, out, _ = run(capsys, "check", "--features", "2", "--d", "4", "--exactly",
                       "--method", "all", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["degrees"] == [0, 2, 4, 6, 8] and data["theorem"] == "not-applicable"
    assert set(data["methods"].values()) == {"agree"} and len(data["methods"]) == 4
    sv = data["numeric"]["singular_values"]
    assert len(sv["8"]) == 17 and data["numeric"]["gap"] > 1e4


def test_check_text_output(capsys):
    code, out, _ = run(capsys, "check", "--L", "1", "--d", "3")
    assert code == 0 and "ceiling         : 3" in out and "holds" in out


def test_disagreeing_methods_exit_1(capsys, monkeypatch):
    """A method that gets a block wrong makes `--method all` fail loudly."""
    from spanthm import _rules

    monkeypatch.setattr(_rules, "gaunt_spectrum", lambda f, d, e=False: {0})
    code, out, err = run(capsys, "check", "--L", "2", "--d", "2", "--method", "all", "--json")
    assert code == 1
    assert json.loads(out)["methods"]["rules"] == "disagree"
    assert "disagree" in err


def test_multiplicities_json(capsys):
    code, out, _ = run(capsys, "multiplicities", "--features", "0,1,2", "--d", "3",
                       "--power", "sym", "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["features"], data["d"], data["power"]) == ([0, 1, 2], 3, "sym")
    assert data["multiplicities"]["6"] == 1 and "7" not in data["multiplicities"]
    assert all(v > 0 for v in data["multiplicities"].values())
    code, out, _ = run(capsys, "multiplicities", "--features", "2", "--d", "4", "--json")
    assert json.loads(out)["multiplicities"] == {"0": 1, "2": 2, "4": 2, "5": 1, "6": 1, "8": 1}


def test_table_json_and_text(capsys):
    code, out, _ = run(capsys, "table", "--Lmax", "3", "--dmax", "2", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 6
    assert [(r["L"], r["d"], r["ceiling"], r["theorem"]) for r in rows][:3] == [
        (1, 1, 1, "holds"), (1, 2, 2, "holds"), (2, 1, 2, "holds")]
    code, out, _ = run(capsys, "table", "--Lmax", "2", "--dmax", "2")
    assert code == 0 and "4 instances" in out


def test_certify_and_verify(capsys, tmp_path):
    path = tmp_path / "c.json"
    code, out, _ = run(capsys, "certify", "--features", "0,3", "--d", "2", "--out", str(path))
    assert code == 0 and path.exists()
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 0 and out.startswith("ok")
    code, out, _ = run(capsys, "certify", "--Lmax", "2", "--dmax", "2", "--out-dir",
                       str(tmp_path / "many"))
    assert code == 0 and len(list((tmp_path / "many").glob("L*_d*.json"))) == 4
    cert = json.loads(path.read_text())
    cert["present"][0]["coefficient"] = "7"
    path.write_text(json.dumps(cert))
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1 and "FAILED" in out


BAD_INPUT = [
    (["check", "--L", "-1", "--d", "2"], "--L"),
    (["check", "--L", "2.5", "--d", "2"], "2.5"),
    (["check", "--features", "", "--d", "2"], "empty"),
    (["check", "--features", "1,x", "--d", "2"], "'x'"),
    (["check", "--features", "1,,2", "--d", "2"], "empty entry"),
    (["check", "--features", "-2", "--d", "2"], "-2"),
    (["check", "--features", "1,1", "--d", "2"], "more than once"),
    (["check", "--L", "2", "--d", "0"], "--d"),
    (["check", "--L", "2", "--d", "two"], "two"),
    (["check", "--L", "2"], "--d"),
    (["check", "--L", "2", "--features", "1", "--d", "2"], "not allowed"),
    (["check", "--L", "2", "--d", "2", "--method", "fast"], "fast"),
    (["multiplicities", "--L", "2", "--d", "2", "--power", "wedge"], "wedge"),
    (["table", "--Lmax", "0"], "--Lmax"),
    (["certify", "--Lmax", "2"], "--dmax"),
    (["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize("argv,needle", BAD_INPUT)
def test_bad_input_exit_2_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", ["{", "[]", '{"schema": "x"}', '{"schema": '
                                     '"spanthm-certificate/1", "instance": 3}'])
def test_malformed_certificate_exit_2(capsys, tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run(capsys, "verify", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_brute_force_refuses_huge_instances(capsys):
    code, _, err = run(capsys, "check", "--L", "6", "--d", "5", "--method", "brute")
    assert code == 2 and "use the exact method" in err


def test_unreadable_certificate_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "verify", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read" in err


def test_console_script_runs():
    """The installed `spanthm` entry point works as a process (exit code and stderr)."""
    proc = subprocess.run([sys.executable, "-m", "spanthm.cli", "check", "--L", "1", "--d",
                           "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "spanthm.cli", "check", "--L", "1", "--d",
                           "2", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ceiling"] == 2


# -- the empirical parser ------------------------------------------------------------------------

#: The run commands whose --threads means "torch CPU threads, default all cores".
RUN_COMMANDS = ("diagnose", "profile", "survey", "c5", "controls", "reproduce")


def _subparsers(parser):
    from argparse import _SubParsersAction

    action = next(a for a in parser._actions if isinstance(a, _SubParsersAction))
    return action.choices


def _option(subparser, option):
    return next(a for a in subparser._actions if option in a.option_strings)


def test_empirical_run_commands_share_their_common_options():
    """One definition of --threads, --overwrite, --no-plots and --no-progress serves every
    run command: the same help and type wherever the option means the same thing."""
    from empirical import cli as ecli

    commands = _subparsers(ecli.build_parser())
    threads = [_option(commands[c], "--threads") for c in RUN_COMMANDS]
    assert {a.help for a in threads} == {"torch CPU threads (default: all cores)"}
    assert {a.type for a in threads} == {threads[0].type}
    for option, names in (("--overwrite", ("diagnose", "profile", "survey", "sweep", "c5",
                                           "controls", "compare")),
                          ("--no-plots", ("diagnose", "profile", "survey", "sweep", "c5")),
                          ("--no-progress", RUN_COMMANDS + ("train", "sweep"))):
        actions = [_option(commands[c], option) for c in names]
        assert len({(a.help, a.default, a.dest) for a in actions}) == 1, option
    assert _option(commands["diagnose"], "--overwrite").help == ecli.OVERWRITE_HELP


def test_empirical_train_defaults_come_from_train_settings(tmp_path, monkeypatch, capsys):
    """The train command restates none of TrainSettings' defaults: an option not given
    leaves the field to TrainSettings; a given one reaches it."""
    from dataclasses import fields

    import numpy as np

    import empirical.backbone as backbone
    import empirical.data as data
    from empirical import cli as ecli

    argv = ["train", "--seed", "0", "--out", str(tmp_path / "run"), "--no-progress"]
    args = ecli.build_parser().parse_args(argv)
    options = [f.name for f in fields(backbone.TrainSettings) if hasattr(args, f.name)]
    assert len(options) == 11 and all(getattr(args, name) is None for name in options)

    seen = []

    def fake_train(dataset, out, config, seed, settings, **kwargs):
        seen.append(settings)
        return {"test": {"energy_mae_meV": 1.0, "force_mae_meV_per_A": 2.0}, "status": "done"}

    monkeypatch.setattr(backbone, "train", fake_train)
    monkeypatch.setattr(data, "load", lambda source: type("D", (), {"numbers": np.array([1, 6])}))
    assert ecli.main(argv) == 0
    assert ecli.main(argv + ["--epochs", "7", "--lr", "0.01", "--max-minutes", "0"]) == 0
    capsys.readouterr()
    assert seen[0] == backbone.TrainSettings()
    assert seen[1] == backbone.TrainSettings(epochs=7, lr=0.01)
