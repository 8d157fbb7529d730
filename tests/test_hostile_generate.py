"""Hostile input against `empirical data aspirin` / :func:`generate_aspirin` (README "Limits and trust"):
request sizes bounded before any work, xTB failures as one line, readable range messages."""

import math
import multiprocessing
import time

import numpy as np
import pytest

from empirical import cli
from empirical.data import GenerationError, MDSettings
from empirical.data import _generate as gen


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- F1: bounded request sizes -----------------------------------------------------------

# the limits (getattr: this file must still collect on the code before the fix)
MAX_FRAMES = getattr(gen, "MAX_GENERATED_FRAMES", 1_000_000)
MAX_CHAINS = getattr(gen, "MAX_CHAINS", 64)

AT_LIMIT = {
    "--frames": str(MAX_FRAMES),
    "--chains": str(MAX_CHAINS),
    "--temperature": repr(getattr(gen, "MAX_TEMPERATURE_K", 5000.0)),
    "--equilibration-ps": repr(getattr(gen, "MAX_EQUILIBRATION_PS", 1000.0)),
    "--timestep-fs": repr(getattr(gen, "MAX_TIMESTEP_FS", 5.0)),
    "--friction": repr(getattr(gen, "MAX_FRICTION_PER_FS", 1.0)),
}

OVER = [
    (["--frames", str(MAX_FRAMES + 1)], "MAX_GENERATED_FRAMES"),
    (["--frames", "10000001"], "--frames"),
    (["--chains", str(MAX_CHAINS + 1)], "MAX_CHAINS"),
    (["--frames", "3", "--chains", "4"], "chains"),
    (["--temperature", "1e9"], "MAX_TEMPERATURE_K"),
    (["--temperature", "nan"], "--temperature"),
    (["--equilibration-ps", "-1"], "--equilibration-ps"),
    (["--equilibration-ps", "inf"], "--equilibration-ps"),
    (["--equilibration-ps", "1e300"], "MAX_EQUILIBRATION_PS"),
    (["--timestep-fs", "nan"], "--timestep-fs"),
    (["--timestep-fs", "50"], "MAX_TIMESTEP_FS"),
    (["--timestep-fs", "1e-300"], "MAX_MD_STEPS"),        # every step count explodes
    (["--spacing-fs", "inf"], "--spacing-fs"),
    (["--spacing-fs", "1e300"], "spacing_fs"),
    (["--spacing-fs", "0.25"], "multiple of the time step"),   # spacing < time step
    (["--friction", "inf"], "--friction"),
    (["--friction", "nan"], "--friction"),
    (["--frames", "1000000", "--timestep-fs", "0.1"], "MAX_MD_STEPS"),  # 100 M steps
]


def test_every_option_at_its_limit_is_accepted():
    """The bounds are inclusive: all options at their limit together parse, build settings
    and pass the request check (14.8 M MD steps: within MAX_MD_STEPS)."""
    argv = ["data", "aspirin"] + [x for kv in AT_LIMIT.items() for x in kv]
    args = cli.build_parser().parse_args(argv)
    settings = MDSettings(temperature_K=args.temperature, timestep_fs=args.timestep_fs,
                          spacing_fs=args.spacing_fs, equilibration_ps=args.equilibration_ps,
                          friction_per_fs=args.friction)
    gen.check_request(args.frames, args.chains, settings)
    assert args.frames == gen.MAX_GENERATED_FRAMES and args.chains == gen.MAX_CHAINS
    assert gen.md_steps(args.frames, args.chains, settings) <= gen.MAX_MD_STEPS


def test_md_steps_at_the_limit_is_accepted():
    stride = gen.MAX_MD_STEPS // gen.MAX_GENERATED_FRAMES           # 50 steps a frame
    settings = MDSettings(timestep_fs=0.5, spacing_fs=0.5 * stride, equilibration_ps=0.0)
    assert gen.md_steps(gen.MAX_GENERATED_FRAMES, 1, settings) == gen.MAX_MD_STEPS
    gen.check_request(gen.MAX_GENERATED_FRAMES, 1, settings)
    over = MDSettings(timestep_fs=0.5, spacing_fs=0.5 * stride, equilibration_ps=0.0005)
    with pytest.raises(ValueError, match="MAX_MD_STEPS"):                # + 1 step a chain
        gen.check_request(gen.MAX_GENERATED_FRAMES, 1, over)


@pytest.mark.parametrize("extra,needle", OVER)
def test_cli_refuses_oversized_requests_at_once(tmp_path, capsys, monkeypatch, extra, needle):
    """One line, exit 2, nothing written, and before any MD (the optimization is never
    reached; before the fix --frames 10000001 ran 66 s and died in numpy)."""
    def no_work(*a, **k):
        raise AssertionError("generation started")

    monkeypatch.setattr(gen, "optimize_aspirin", no_work)
    monkeypatch.setattr(gen, "_run_chain", no_work)
    out = tmp_path / "y.npz"
    t0 = time.perf_counter()
    code, _, err = run(capsys, "data", "aspirin", *extra, "--out", str(out), "--no-progress")
    assert code == 2, err
    assert time.perf_counter() - t0 < 10
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("kwargs,needle", [
    (dict(frames=MAX_FRAMES + 1), "frames"),
    (dict(frames=MAX_CHAINS + 10, chains=MAX_CHAINS + 1), "chains"),
    (dict(frames=True), "frames"),
    (dict(frames=1_000_000, settings=MDSettings(timestep_fs=0.1)), "MAX_MD_STEPS"),
])
def test_api_refuses_oversized_requests_before_work(monkeypatch, kwargs, needle):
    def no_work(*a, **k):
        raise AssertionError("generation started")

    monkeypatch.setattr(gen, "optimize_aspirin", no_work)
    with pytest.raises(ValueError, match=needle):
        gen.generate_aspirin(progress=False, log=lambda s: None, **kwargs)


@pytest.mark.parametrize("field,value", [
    ("temperature_K", 1e9), ("temperature_K", math.nan), ("temperature_K", 0.0),
    ("timestep_fs", math.inf), ("timestep_fs", 50.0), ("timestep_fs", 1e-300),
    ("spacing_fs", math.nan), ("spacing_fs", 1e300),
    ("equilibration_ps", math.inf), ("equilibration_ps", math.nan), ("equilibration_ps", 1e6),
    ("friction_per_fs", math.inf), ("friction_per_fs", math.nan), ("friction_per_fs", 0.0),
    ("tolerance", math.nan), ("tolerance", 0.0),
])
def test_md_settings_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"{field}|MAX_MD_STEPS"):
        MDSettings(**{field: value})


def test_md_settings_at_the_limits():
    s = MDSettings(temperature_K=gen.MAX_TEMPERATURE_K, timestep_fs=gen.MAX_TIMESTEP_FS,
                   spacing_fs=gen.MAX_TIMESTEP_FS, equilibration_ps=gen.MAX_EQUILIBRATION_PS,
                   friction_per_fs=gen.MAX_FRICTION_PER_FS, tolerance=1.0)
    assert s.stride == 1 and s.equilibration_steps == 200_000


# --- F5: an xTB failure inside the MD is one line naming chain, step, temperature ---------

def _failing_calculator(fail_at: int):
    """An ASE calculator that returns zero forces and raises CalculationFailed (as tblite
    does for an unconverged SCF) on its ``fail_at``-th calculation."""
    from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

    class Failing(Calculator):
        implemented_properties = ["energy", "forces"]
        calls = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            Failing.calls += 1
            if Failing.calls >= fail_at:
                raise CalculationFailed("SCF not converged in 250 cycles")
            self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}

    return Failing


@pytest.fixture
def failing_xtb(monkeypatch):
    pytest.importorskip("ase")
    pytest.importorskip("tblite")
    from empirical.data import _aspirin_geometry as geom

    monkeypatch.setattr(gen, "optimize_aspirin", lambda: (geom.initial_positions(), 0.0))
    cls = _failing_calculator(fail_at=5)
    monkeypatch.setattr(gen, "_calculator", lambda: cls())
    return cls


def test_calculation_failed_becomes_generation_error(failing_xtb):
    settings = MDSettings(temperature_K=1234.0, equilibration_ps=0.0)
    with pytest.raises(GenerationError) as info:
        gen.generate_aspirin(frames=3, settings=settings, progress=False, log=lambda s: None)
    msg = str(info.value)
    assert "chain 0" in msg and "MD step 4 of 60" in msg and "1234 K" in msg
    assert "SCF not converged" in msg


def test_cli_calculation_failed_is_one_line_exit_1(failing_xtb, tmp_path, capsys):
    out = tmp_path / "y4.npz"
    code, _, err = run(capsys, "data", "aspirin", "--frames", "3", "--temperature", "4000",
                       "--equilibration-ps", "0", "--out", str(out), "--no-progress")
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err, err
    assert lines[-1].startswith("empirical: failed: chain 0: GFN2-xTB failed at MD step")
    assert "4000 K" in lines[-1] and not out.exists()


def test_calculation_failed_crosses_the_process_boundary(failing_xtb, monkeypatch):
    """chains > 1 run in a process pool. The real code spawns (the children would not see
    this test's fake calculator), so the pool is made with fork here: the worker raises
    GenerationError, which is pickled back and re-raised in the parent."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    real = multiprocessing.get_context
    monkeypatch.setattr(gen.mp, "get_context", lambda method=None: real("fork"))
    settings = MDSettings(equilibration_ps=0.0)
    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match=r"chain [01]: GFN2-xTB failed at MD step 4 "
                                              r"of \d+ \(target 500 K"):
        gen.generate_aspirin(frames=4, chains=2, settings=settings, progress=False,
                             log=lambda s: None)
    assert time.perf_counter() - t0 < 30


# --- M6: range messages name the bound, not "between None and ..." -----------------------

def test_backbone_config_r_max_message():
    pytest.importorskip("torch")
    from empirical.backbone import BackboneConfig

    with pytest.raises(ValueError) as info:
        BackboneConfig(r_max=1e6)
    msg = str(info.value)
    assert msg == "r_max must be > 0 and at most 100.0, got 1000000.0"


def test_cli_train_r_max_message(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    import empirical.backbone as backbone

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(backbone, "train", no_training)
    code, _, err = run(capsys, "train", "--r-max", "1e300", "--seed", "0",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and "None" not in err and len(err.strip().splitlines()) == 1
    assert "r_max must be > 0 and at most 100.0, got 1e+300" in err
    assert not (tmp_path / "run").exists()
