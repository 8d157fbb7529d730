"""empirical.data: loaders, unit conversion, splits, info, generation, bad input."""

import json

import numpy as np
import pytest

from empirical import cli
from empirical.data import (DataError, Dataset, GenerationError, MDSettings, harmonic_temperature,
                            load, make_splits, save_npz, summary)
from empirical.units import BOLTZMANN, KCAL_PER_MOL

RNG = np.random.default_rng(0)
POS = RNG.normal(size=(4, 3, 3))
E_KCAL = np.array([-10.0, -9.5, -9.0, -11.25])
F_KCAL = RNG.normal(size=(4, 3, 3))
Z = np.array([8, 1, 1])


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_kcal_per_mol_constant():
    """1 kcal/mol = 4184 J / (N_A e) = 0.04336410... eV (ASE's older CODATA value agrees to 1e-8)."""
    assert KCAL_PER_MOL == pytest.approx(0.0433641042, rel=1e-9)
    ase_units = pytest.importorskip("ase.units")
    assert KCAL_PER_MOL == pytest.approx(ase_units.kcal / ase_units.mol, rel=1e-7)


def test_md17_layout_converts_units(tmp_path):
    """MD17 (R, E as (frames, 1), F, z) in kcal/mol -> eV exactly by the named constant."""
    path = tmp_path / "md17.npz"
    np.savez(path, R=POS, E=E_KCAL[:, None], F=F_KCAL, z=Z)
    ds = load(path)
    np.testing.assert_array_equal(ds.energies, E_KCAL * KCAL_PER_MOL)
    np.testing.assert_array_equal(ds.forces, F_KCAL * KCAL_PER_MOL)
    np.testing.assert_array_equal(ds.positions, POS)
    assert ds.numbers.tolist() == [8, 1, 1] and ds.formula == "H2O"
    assert ds.metadata["format"] == "MD17 npz"


def test_rmd17_layout_converts_units(tmp_path):
    path = tmp_path / "rmd17.npz"
    np.savez(path, coords=POS, energies=E_KCAL, forces=F_KCAL, nuclear_charges=Z)
    ds = load(path)
    assert ds.energies[3] == pytest.approx(-11.25 * 0.0433641042, rel=1e-9)
    np.testing.assert_array_equal(ds.forces, F_KCAL * KCAL_PER_MOL)
    assert ds.metadata["format"] == "rMD17 npz"


def test_empirical_npz_round_trip(tmp_path):
    ds = Dataset(POS, Z, E_KCAL, F_KCAL, {"note": "x"})
    path = save_npz(ds, tmp_path / "own.npz", float32=False)
    back = load(path)
    np.testing.assert_array_equal(back.forces, ds.forces)
    assert back.metadata["note"] == "x" and back.metadata["source"] == str(path)


def test_extxyz(tmp_path):
    """An ASE trajectory with energies and forces loads in eV and Angstrom unchanged."""
    ase = pytest.importorskip("ase")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for k in range(4):
        atoms = ase.Atoms(numbers=Z, positions=POS[k])
        atoms.calc = SinglePointCalculator(atoms, energy=float(E_KCAL[k]), forces=F_KCAL[k])
        frames.append(atoms)
    path = tmp_path / "traj.extxyz"
    write(path, frames)
    ds = load(path)
    # extxyz stores 8 significant digits
    np.testing.assert_allclose(ds.energies, E_KCAL, rtol=1e-7)
    np.testing.assert_allclose(ds.forces, F_KCAL, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ds.positions, POS, rtol=1e-6, atol=1e-7)


def _write_bad(tmp_path, case):
    path = tmp_path / f"{case}.npz"
    if case == "missing-forces":
        np.savez(path, R=POS, E=E_KCAL, z=Z)
    elif case == "missing-key-rmd17":
        np.savez(path, coords=POS, energies=E_KCAL, forces=F_KCAL)
    elif case == "shapes":
        np.savez(path, R=POS, E=E_KCAL[:3], F=F_KCAL, z=Z)
    elif case == "force-shape":
        np.savez(path, R=POS, E=E_KCAL, F=F_KCAL[:, :2], z=Z)
    elif case == "numbers-shape":
        np.savez(path, R=POS, E=E_KCAL, F=F_KCAL, z=Z[:2])
    elif case == "nan":
        bad = F_KCAL.copy()
        bad[2, 1, 0] = np.nan
        np.savez(path, R=POS, E=E_KCAL, F=bad, z=Z)
    elif case == "inf":
        bad = E_KCAL.copy()
        bad[1] = np.inf
        np.savez(path, R=POS, E=bad, F=F_KCAL, z=Z)
    elif case == "zero-frames":
        np.savez(path, R=POS[:0], E=E_KCAL[:0], F=F_KCAL[:0], z=Z)
    elif case == "unknown-layout":
        np.savez(path, a=POS, b=Z)
    elif case == "garbage":
        path.write_bytes(b"this is not a zip archive")
    elif case == "bad-element":
        np.savez(path, R=POS, E=E_KCAL, F=F_KCAL, z=np.array([8, 0, 1]))
    elif case == "unknown-extension":
        path = tmp_path / "data.weird"
        path.write_text("no format here\n")
    elif case == "directory":
        path = tmp_path / "adir"
        path.mkdir()
    elif case == "missing-file":
        path = tmp_path / "nope.npz"
    return path


BAD = {
    "missing-forces": "'F' (forces)",
    "missing-key-rmd17": "'nuclear_charges'",
    "shapes": "energies have shape",
    "force-shape": "forces have shape",
    "numbers-shape": "atomic numbers have shape",
    "nan": "NaN or inf",
    "inf": "NaN or inf",
    "zero-frames": "zero frames",
    "unknown-layout": "unknown npz layout",
    "garbage": "cannot read",
    "bad-element": "1..118",
    "unknown-extension": "cannot read",
    "directory": "directory",
    "missing-file": "no such file",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_data_error(tmp_path, case):
    with pytest.raises(DataError, match=BAD[case].replace("(", r"\(").replace(")", r"\)")):
        load(_write_bad(tmp_path, case))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_cli_exit_2(tmp_path, capsys, case):
    path = _write_bad(tmp_path, case)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "data", "info", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("case", ["varying-atoms", "no-forces", "no-energy"])
def test_bad_extxyz(tmp_path, case):
    ase = pytest.importorskip("ase")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for k in range(3):
        n = 3 if (case != "varying-atoms" or k < 2) else 2
        atoms = ase.Atoms(numbers=Z[:n], positions=POS[k, :n])
        kwargs = {"energy": 1.0, "forces": F_KCAL[k, :n]}
        if case == "no-forces":
            kwargs.pop("forces")
        if case == "no-energy":
            kwargs.pop("energy")
        atoms.calc = SinglePointCalculator(atoms, **kwargs)
        frames.append(atoms)
    path = tmp_path / "bad.extxyz"
    write(path, frames)
    with pytest.raises(DataError, match={"varying-atoms": "atom count", "no-forces": "no forces",
                                         "no-energy": "no energy"}[case]):
        load(path)


def test_splits_are_deterministic_and_disjoint():
    a = make_splits(1000, seed=3)
    b = make_splits(1000, seed=3)
    c = make_splits(1000, seed=4)
    assert a.to_dict() == b.to_dict() and a.to_dict() != c.to_dict()
    parts = [set(v.tolist()) for v in a.indices.values()]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 1000
    assert a.sizes == {"train": 400, "validation": 100, "test": 100, "probe": 400}
    cont = make_splits(10, {"train": 6, "test": 4}, strategy="contiguous")
    assert cont["train"].tolist() == list(range(6)) and cont["test"].tolist() == [6, 7, 8, 9]
    json.dumps(a.to_dict())


@pytest.mark.parametrize("sizes,match", [
    ({"train": 8, "test": 5}, "need 13 frames"),
    ({"train": 0.5, "test": 3}, "mix"),
    ({"train": 1.5}, r"\(0, 1\]"),
    ({"train": 0}, ">= 1"),
    ({}, "no split parts"),
])
def test_bad_splits(sizes, match):
    with pytest.raises(DataError, match=match):
        make_splits(10, sizes)


def test_harmonic_temperature_recovers_temperature():
    """Canonical samples of a harmonic system: E_pot = sum 1/2 k x^2 over 3N-6 modes,
    x ~ N(0, kT/k); the estimator returns T within 3 %."""
    rng = np.random.default_rng(1)
    n_atoms, temperature = 21, 500.0
    modes = 3 * n_atoms - 6
    stiffness = rng.uniform(1, 50, size=modes)
    x = rng.normal(size=(20000, modes)) * np.sqrt(BOLTZMANN * temperature / stiffness)
    energies = 0.5 * (stiffness * x**2).sum(axis=1) - 1000.0
    assert harmonic_temperature(energies, n_atoms) == pytest.approx(temperature, rel=0.03)
    assert harmonic_temperature(energies[:1], n_atoms) is None


def test_info_json(capsys, tmp_path):
    path = tmp_path / "md17.npz"
    np.savez(path, R=POS, E=E_KCAL, F=F_KCAL, z=Z)
    code, out, _ = run(capsys, "data", "info", str(path), "--json")
    info = json.loads(out)
    assert code == 0 and info["frames"] == 4 and info["atoms"] == 3 and info["formula"] == "H2O"
    assert info["energy_min_eV"] == pytest.approx(-11.25 * KCAL_PER_MOL)
    assert info["force_rms_eV_per_A"] == pytest.approx(np.sqrt(np.mean((F_KCAL * KCAL_PER_MOL) ** 2)))


# --- the shipped dataset ---------------------------------------------------------------


def test_shipped_aspirin_shape_and_provenance(aspirin):
    assert aspirin.n_frames >= 5000 and aspirin.n_atoms == 21 and aspirin.formula == "C9H8O4"
    meta = aspirin.metadata
    for key in ("method", "temperature_K", "timestep_fs", "frame_spacing_fs", "seed",
                "versions", "atom_labels", "created", "marked_bond", "mean_kinetic_temperature_K"):
        assert key in meta, key
    assert meta["method"] == "GFN2-xTB" and meta["temperature_K"] == 500.0
    assert meta["frame_spacing_fs"] >= 10.0 and meta["timestep_fs"] == 0.5
    assert set(meta["versions"]) >= {"tblite", "ase"}
    assert abs(meta["mean_kinetic_temperature_K"] - 500.0) <= 25.0


def test_shipped_marked_bond_is_the_carboxylic_c_o(aspirin):
    """The named atoms are a C and an O bonded in every frame (1.05-1.35 A at 500 K), the C
    also carries the hydroxyl O9, whose bond is longer on average (C=O vs C-OH), and the acid
    H stays on O9 (no proton transfer changes which O is the carbonyl)."""
    a, b = aspirin.metadata["marked_bond"]["atoms"]
    assert aspirin.numbers[a] == 6 and aspirin.numbers[b] == 8
    labels = aspirin.metadata["atom_labels"]
    oh, h = labels.index("O9"), labels.index("H9")
    pos = aspirin.positions

    def dist(i, j):
        return np.linalg.norm(pos[:, i] - pos[:, j], axis=-1)

    d_co, d_coh = dist(a, b), dist(a, oh)
    assert 1.05 < d_co.min() and d_co.max() < 1.35
    assert d_coh.mean() - d_co.mean() > 0.08
    assert dist(oh, h).max() < 1.3 and dist(b, h).min() > 1.5


def test_shipped_file_is_small_and_float32():
    from empirical.data import shipped_path

    path = shipped_path("aspirin")
    assert path.stat().st_size < 8e6
    with np.load(path) as f:
        assert f["positions"].dtype == np.float32 and f["energies"].dtype == np.float64


def test_shipped_aspirin_is_thermal(aspirin):
    """The potential-energy spread corresponds to roughly the MD temperature (harmonic
    estimate, anharmonic bias allowed) and the net force vanishes (isolated molecule)."""
    info = summary(aspirin)
    assert 350 < info["temperature_estimate_K"] < 700
    assert np.abs(aspirin.forces.sum(axis=1)).max() < 1e-3


def test_shipped_forces_match_a_fresh_single_point(aspirin):
    """Stored energies and forces are GFN2-xTB's at the stored positions (a recomputation
    from scratch agrees within SCF convergence and float32 storage)."""
    pytest.importorskip("tblite")
    from ase import Atoms
    from tblite.ase import TBLite

    for k in (0, aspirin.n_frames // 2, aspirin.n_frames - 1):
        atoms = Atoms(numbers=aspirin.numbers, positions=aspirin.positions[k])
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        assert atoms.get_potential_energy() == pytest.approx(aspirin.energies[k], abs=1e-4)
        np.testing.assert_allclose(atoms.get_forces(), aspirin.forces[k], atol=1e-3)


# --- generation ------------------------------------------------------------------------


def test_generation_small_run(tmp_path):
    """A short run: optimized start, frames spaced as asked, provenance, deterministic."""
    pytest.importorskip("tblite")
    from empirical.data import generate_aspirin

    settings = MDSettings(equilibration_ps=0.005, tolerance=1.0)
    a = generate_aspirin(frames=3, seed=5, settings=settings, progress=False, log=lambda s: None)
    b = generate_aspirin(frames=3, seed=5, settings=settings, progress=False, log=lambda s: None)
    assert a.n_frames == 3 and a.formula == "C9H8O4"
    np.testing.assert_array_equal(a.positions, b.positions)
    step = np.linalg.norm(a.positions[1] - a.positions[0], axis=-1).max()
    assert 0.005 < step < 1.0  # 10 fs apart at ~500 K: moved, not exploded
    assert a.metadata["marked_bond"]["atoms"] == [6, 7]


def test_generation_temperature_check_fails_loudly():
    pytest.importorskip("tblite")
    from empirical.data import generate_aspirin

    settings = MDSettings(equilibration_ps=0.0, tolerance=1e-6)
    with pytest.raises(GenerationError, match="mean kinetic temperature"):
        generate_aspirin(frames=1, seed=0, settings=settings, progress=False, log=lambda s: None)


@pytest.mark.parametrize("exc,code", [(GenerationError("too hot"), 1), (KeyboardInterrupt(), 130)])
def test_cli_generation_failure_writes_nothing(tmp_path, capsys, monkeypatch, exc, code):
    pytest.importorskip("tblite")
    import empirical.data as data

    def boom(**kwargs):
        raise exc

    monkeypatch.setattr(data, "generate_aspirin", boom)
    out = tmp_path / "x.npz"
    rc, _, err = run(capsys, "data", "aspirin", "--frames", "2", "--out", str(out))
    assert rc == code and not out.exists() and list(tmp_path.iterdir()) == []
    assert "Traceback" not in err


def test_cli_generation_writes_the_file(tmp_path, capsys, monkeypatch):
    """`empirical data aspirin` passes its options on and writes a loadable npz."""
    pytest.importorskip("tblite")
    import empirical.data as data

    seen = {}

    def fake(frames, seed, settings, chains, progress):
        seen.update(frames=frames, seed=seed, temperature=settings.temperature_K, chains=chains)
        return Dataset(POS, Z, E_KCAL, F_KCAL, {"mean_kinetic_temperature_K": 350.0,
                                                "ms_per_md_step": 1.0, "generation_seconds": 2.0})

    monkeypatch.setattr(data, "generate_aspirin", fake)
    out = tmp_path / "sub" / "a.npz"
    rc, stdout, _ = run(capsys, "data", "aspirin", "--frames", "4", "--temperature", "350",
                        "--seed", "7", "--chains", "2", "--out", str(out))
    assert rc == 0 and "4 frames" in stdout
    assert seen == {"frames": 4, "seed": 7, "temperature": 350.0, "chains": 2}
    assert load(out).n_frames == 4
    assert load(out).positions.dtype == np.float64


@pytest.mark.parametrize("argv,needle", [
    (["data", "aspirin", "--frames", "0"], "--frames"),
    (["data", "aspirin", "--temperature", "-5"], "--temperature"),
    (["data", "aspirin", "--spacing-fs", "0.7"], "multiple of the time step"),
    (["data", "info"], "source"),
    (["data"], "ACTION"),
])
def test_cli_bad_options(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_save_is_atomic(tmp_path, monkeypatch):
    import os

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_npz(Dataset(POS, Z, E_KCAL, F_KCAL), tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []
