"""Hostile data and diagnose bounds (README "Limits and trust": data and diagnose bounds, the diagnose-time messages).

Every npz here is tiny on disk and built in ``tmp_path``; the "bomb" members are written by
hand (a ``.npy`` header and a stream of zero bytes in chunks) so that no test holds the
large array it declares. Memory limits are tested on the estimate, never by allocating.
"""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from empirical import cli
from empirical.data import Dataset, DataError, load

KCAL_PER_MOL = 0.043364104241800934
HARTREE = 27.211386245988
BOHR = 0.529177210903


# -- helpers ------------------------------------------------------------------------------------

def _toy(frames=20, atoms=4, seed=0):
    """A small molecule-like dataset in eV and Angstrom (C, O, H, H at bond lengths)."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0, 0], [1.2, 0, 0], [0, 1.1, 0], [0, 0, 1.0]])[:atoms]
    pos = base[None] + rng.normal(scale=0.05, size=(frames, atoms, 3))
    return {"positions": pos, "numbers": np.array([6, 8, 1, 1])[:atoms],
            "energies": rng.normal(scale=0.1, size=frames),
            "forces": rng.normal(size=(frames, atoms, 3))}


def _member(archive: zipfile.ZipFile, key: str, shape, dtype="<f8", fill: int = None,
            chunk: int = 1 << 20) -> None:
    """Write member ``key.npy`` with a header for ``shape`` and ``fill`` zero bytes after it
    (default: as many as the shape needs), in chunks: the array is never held."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize if fill is None else fill
    with archive.open(key + ".npy", "w", force_zip64=True) as out:
        npy_format.write_array_header_1_0(out, {"descr": npy_format.dtype_to_descr(dtype),
                                                "fortran_order": False,
                                                "shape": tuple(shape)})
        zeros = bytes(min(chunk, max(nbytes, 1)))
        left = nbytes
        while left > 0:
            out.write(zeros[:min(left, len(zeros))])
            left -= len(zeros)


def _npz(path, arrays: dict, compress: bool = True):
    (np.savez_compressed if compress else np.savez)(path, **arrays)
    return path


def _info(path, capsys):
    """``empirical data info PATH``: (exit code, stderr)."""
    code = cli.main(["data", "info", str(path)])
    return code, capsys.readouterr().err


# -- case 7: npz decompression is bounded before it starts ---------------------------------------

def test_a_member_whose_header_claims_terabytes_is_refused_before_decompression(tmp_path, capsys):
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, arr in _toy().items():
            with z.open(key + ".npy", "w") as out:
                npy_format.write_array(out, arr)
        _member(z, "unused", (300_000_000_000,), fill=64)       # 2.18 TiB declared, 64 B held
    code, err = _info(path, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "claims.npz" in err and "'unused'" in err and "more than the" in err


def test_the_bytes_an_npz_expands_to_are_bounded_at_the_limit(tmp_path, monkeypatch):
    from empirical.data import _loaders

    arrays = _toy(frames=10)
    need = sum(a.nbytes for a in arrays.values())
    path = _npz(tmp_path / "ok.npz", arrays)
    monkeypatch.setattr(_loaders, "MAX_NPZ_BYTES", need)             # at the limit: read
    assert load(path).n_frames == 10
    monkeypatch.setattr(_loaders, "MAX_NPZ_BYTES", need - 1)         # one byte over: refused
    with pytest.raises(DataError, match=r"ok\.npz.*expand to .* above the limit"):
        load(path)


def test_an_unused_member_is_never_decompressed(tmp_path, monkeypatch):
    """The issue's bomb: a small file whose unused member expands to many times the limit."""
    from empirical.data import _loaders

    monkeypatch.setattr(_loaders, "MAX_NPZ_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, arr in _toy().items():
            with z.open(key + ".npy", "w") as out:
                npy_format.write_array(out, arr)
        _member(z, "padding", (1 << 21,))                            # 16 MB of zeros
    assert path.stat().st_size < 100_000
    read = []
    real = npy_format.read_array
    monkeypatch.setattr(_loaders.npy_format, "read_array",
                        lambda fp, **kw: read.append(fp.name) or real(fp, **kw))
    assert load(path).n_frames == 20
    assert "padding.npy" not in read and len(read) == 4


def test_a_trajectory_file_is_bounded_in_size(tmp_path, monkeypatch):
    pytest.importorskip("ase")
    from empirical.data import _loaders

    text = "".join("2\nenergy=-1.0 Properties=species:S:1:pos:R:3:forces:R:3\n"
                   "H 0 0 0 0 0 0\nH 0.74 0 0 0 0 0\n" for _ in range(3))
    path = tmp_path / "h2.extxyz"
    path.write_text(text)
    monkeypatch.setattr(_loaders, "MAX_TRAJECTORY_BYTES", len(text))        # at the limit
    assert load(path).n_frames == 3
    monkeypatch.setattr(_loaders, "MAX_TRAJECTORY_BYTES", len(text) - 1)    # over
    with pytest.raises(DataError, match=r"h2\.extxyz.*above the limit"):
        load(path)


# -- data bounds: atoms per frame, frames, absurd values ------------------------------------------

def _atoms_file(path, atoms):
    """One frame of ``atoms`` hydrogens on a 1 A grid (written without holding much)."""
    side = int(np.ceil(atoms ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = grid[:atoms][None].astype(np.float64)
    return _npz(path, {"positions": pos, "numbers": np.ones(atoms, dtype=np.int64),
                       "energies": np.zeros(1), "forces": np.zeros_like(pos)})


def test_atoms_per_frame_are_bounded_from_the_header(tmp_path, capsys):
    from empirical.data import MAX_ATOMS

    assert load(_atoms_file(tmp_path / "at.npz", MAX_ATOMS)).n_atoms == MAX_ATOMS
    code, err = _info(_atoms_file(tmp_path / "over.npz", MAX_ATOMS + 1), capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"{MAX_ATOMS + 1} atoms per frame, above the limit of {MAX_ATOMS}" in err


def test_a_hundred_thousand_atoms_are_refused_at_once(tmp_path, capsys):
    path = _atoms_file(tmp_path / "huge.npz", 100_000)
    start = time.perf_counter()
    code, err = _info(path, capsys)
    assert code == 2 and "100000 atoms per frame" in err
    assert time.perf_counter() - start < 10


def test_frames_are_bounded(tmp_path, monkeypatch):
    from empirical.data import _dataset, _loaders

    path = _npz(tmp_path / "six.npz", _toy(frames=6))
    for module in (_dataset, _loaders):
        monkeypatch.setattr(module, "MAX_FRAMES", 6)
    assert load(path).n_frames == 6                                  # at the limit
    for module in (_dataset, _loaders):
        monkeypatch.setattr(module, "MAX_FRAMES", 5)
    with pytest.raises(DataError, match="6 frames, above the limit of 5"):
        load(path)


@pytest.mark.parametrize("field", ["energies", "forces", "positions"])
def test_absurd_values_are_refused_naming_the_file_and_field(field, tmp_path, capsys):
    from empirical.data import MAX_ABS_VALUE

    arrays = _toy()
    arrays[field] = arrays[field].copy()
    arrays[field].flat[3] = MAX_ABS_VALUE                            # at the limit: read
    assert load(_npz(tmp_path / "at.npz", arrays)).n_frames == 20
    arrays[field].flat[3] = 1e300                                   # the energies
    with _no_runtime_warning():
        code, err = _info(_npz(tmp_path / "huge.npz", arrays), capsys)
    assert code == 2 and err.count("\n") == 1
    assert "huge.npz" in err and f"{field} reach 1e+300" in err


class _no_runtime_warning:
    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# -- about 30 hostile files: each one line, exit 2, naming the file (or read as it should be) ----

def _savez_edited(**edits):
    """A writer of ``np.savez(path, **arrays)``, each ``key: edit`` replacing (or adding)
    ``arrays[key]`` by ``edit(arrays)``."""
    def write(path, t):
        np.savez(path, **{**t, **{key: edit(t) for key, edit in edits.items()}})
    return write


def _with_value(key, index, value):
    """An edit: a copy of ``arrays[key]`` with ``value`` at ``index``."""
    def edit(t):
        array = t[key].copy()
        array[index] = value
        return array
    return edit


def _savez_all(transform):
    """A writer of ``np.savez(path, **transform(arrays))``."""
    return lambda path, t: np.savez(path, **transform(t))


def _truncated_zip(path, t):
    full = _npz(path.with_name("full.npz"), t).read_bytes()
    path.write_bytes(full[:len(full) // 2])


def _zip_with(name, content):
    """A writer of a zip archive holding the one member ``name``."""
    def write(path, t):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(name, content)
    return write


def _duplicated_member(path, t):
    import warnings

    with zipfile.ZipFile(path, "w") as z:
        for key, arr in t.items():
            with z.open(key + ".npy", "w") as out:
                npy_format.write_array(out, arr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                      # "Duplicate name"
            with z.open("energies.npy", "w") as out:
                npy_format.write_array(out, t["energies"] * 0)


def _corrupt_deflate_stream(path, t):
    good = _npz(path.with_name("good.npz"), t)
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("positions.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[start:start + 200] = bytes(200)
    path.write_bytes(bytes(raw))


def _truncated_member(path, t):
    with zipfile.ZipFile(path, "w") as z:
        for key, arr in t.items():
            data = arr.tobytes()
            with z.open(key + ".npy", "w") as out:
                npy_format.write_array_header_1_0(out, npy_format.header_data_from_array_1_0(arr))
                out.write(data[:len(data) // 2] if key == "forces" else data)


def _too_many_atoms_in_the_header(path, t):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        _member(z, "positions", (1, 20_000, 3))
        _member(z, "forces", (1, 20_000, 3))
        _member(z, "energies", (1,))
        _member(z, "numbers", (20_000,), dtype="<i8")


#: kind -> writer(path, arrays of :func:`_toy`): files ``empirical data info`` refuses
#: (:data:`REFUSED` holds the words of each refusal).
_REFUSED_WRITERS = {
    "truncated zip": _truncated_zip,
    "empty file": lambda path, t: path.write_bytes(b""),
    "random bytes": lambda path, t: path.write_bytes(np.random.default_rng(0).bytes(4096)),
    "text file": lambda path, t: path.write_text("positions,energies\n1,2\n"),
    "non-npy member": _zip_with("readme.txt", "hello"),
    "bad npy magic": _zip_with("positions.npy", b"NOTNUMPY" + bytes(100)),
    "object array": _savez_edited(energies=lambda t: np.array([{"e": 1.0}] * 20, dtype=object)),
    "object metadata": _savez_edited(metadata=lambda t: np.array([{"a": 1}], dtype=object)),
    "string energies": _savez_edited(energies=lambda t: np.array(["x"] * 20)),
    "complex positions": _savez_edited(positions=lambda t: t["positions"].astype(complex)),
    "forces shape mismatch": _savez_edited(forces=lambda t: t["forces"][:-1]),
    "energies length mismatch": _savez_edited(energies=lambda t: t["energies"][:5]),
    "zero frames": _savez_all(lambda t: {k: (v[:0] if k != "numbers" else v)
                                         for k, v in t.items()}),
    "NaN positions": _savez_edited(positions=_with_value("positions", (2, 1, 0), np.nan)),
    "inf energies": _savez_edited(energies=_with_value("energies", 4, np.inf)),
    "2-D positions": _savez_edited(positions=lambda t: t["positions"].reshape(20, -1)),
    "atomic number 200": _savez_edited(numbers=lambda t: np.array([6, 8, 1, 200])),
    "atomic number 0": _savez_edited(numbers=lambda t: np.array([6, 8, 0, 1])),
    "fractional atomic numbers": _savez_edited(numbers=lambda t: np.array([6.5, 8, 1, 1])),
    "duplicated member": _duplicated_member,
    "MD17 without forces": lambda path, t: np.savez(path, R=t["positions"], E=t["energies"],
                                                    z=t["numbers"]),
    "unknown layout": lambda path, t: np.savez(path, a=np.zeros(3)),
    "metadata not JSON": _savez_edited(metadata=lambda t: np.array("{not json")),
    "corrupt deflate stream": _corrupt_deflate_stream,
    "truncated member": _truncated_member,
    "directory": lambda path, t: path.mkdir(),
    "too many atoms in the header": _too_many_atoms_in_the_header,
}

#: kind -> writer(path, arrays of :func:`_toy`): unusual files that are valid.
_ACCEPTED_WRITERS = {
    "fortran order": _savez_edited(positions=lambda t: np.asfortranarray(t["positions"])),
    "big endian": _savez_all(lambda t: {k: v.astype(v.dtype.newbyteorder(">"))
                                        for k, v in t.items()}),
    "one atom": _savez_all(lambda t: {k: (v[:1] if k == "numbers" else v[:, :1] if v.ndim == 3
                                          else v) for k, v in t.items()}),
    "float32": _savez_all(lambda t: {k: (v.astype(np.float32) if v.dtype.kind == "f" else v)
                                     for k, v in t.items()}),
    "MD17 (frames, 1) E": lambda path, t: np.savez(path, R=t["positions"],
                                                   E=t["energies"][:, None], F=t["forces"],
                                                   z=t["numbers"]),
}


def _write_hostile(kind: str, path) -> None:
    """Write the file of ``kind`` (a key of :data:`_REFUSED_WRITERS` or
    :data:`_ACCEPTED_WRITERS`) at ``path``, from :func:`_toy`'s arrays."""
    writer = _REFUSED_WRITERS.get(kind) or _ACCEPTED_WRITERS[kind]
    writer(path, _toy())


REFUSED = {
    "truncated zip": "as an npz archive", "empty file": "as an npz archive",
    "random bytes": "as an npz archive", "text file": "as an npz archive",
    "non-npy member": "'readme.txt' is not a .npy array",
    "bad npy magic": "'positions' is not a readable .npy array",
    "object array": "'energies' holds Python objects",
    "object metadata": "'metadata' holds Python objects",
    "string energies": "energies are not numeric",
    "complex positions": "positions are not numeric",
    "forces shape mismatch": "forces have shape", "energies length mismatch": "energies have shape",
    "zero frames": "zero frames", "NaN positions": "positions contain 1 NaN or inf",
    "inf energies": "energies contain 1 NaN or inf", "2-D positions": "positions must have shape",
    "atomic number 200": "must lie in 1..118", "atomic number 0": "must lie in 1..118",
    "fractional atomic numbers": "must be integers",
    "duplicated member": "'energies' appears twice",
    "MD17 without forces": "lacks 'F' (forces)", "unknown layout": "unknown npz layout",
    "metadata not JSON": "metadata entry is not valid JSON",
    "corrupt deflate stream": "the member 'positions'",
    "truncated member": "'forces'", "directory": "it is a directory",
    "too many atoms in the header": "20000 atoms per frame, above the limit",
}
ACCEPTED = list(_ACCEPTED_WRITERS)


def test_every_refused_kind_has_its_writer_and_its_message():
    assert sorted(REFUSED) == sorted(_REFUSED_WRITERS)


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_hostile_file_is_one_line_naming_it(kind, tmp_path, capsys):
    path = tmp_path / "hostile.npz"
    _write_hostile(kind, path)
    code, err = _info(path, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "hostile.npz" in err and REFUSED[kind] in err, err


@pytest.mark.parametrize("kind", ACCEPTED)
def test_an_unusual_but_valid_file_is_read_as_it_is(kind, tmp_path):
    path = tmp_path / "fine.npz"
    _write_hostile(kind, path)
    data = load(path)
    ref = _toy()
    atoms = 1 if kind == "one atom" else 4
    scale = KCAL_PER_MOL if kind.startswith("MD17") else 1.0
    np.testing.assert_allclose(data.positions, ref["positions"][:, :atoms], rtol=1e-6)
    np.testing.assert_allclose(data.energies, ref["energies"] * scale, rtol=1e-6)
    assert data.positions.dtype == np.float64 and data.positions.dtype.isnative


# -- case 6: the memory estimate includes the backbone, and the cutoff check is fast ------------

def _cloud(atoms, frames=12, density=0.1, seed=0):
    """``frames`` random clouds of ``atoms`` H/C/O atoms at a molecular density (per A^3)."""
    rng = np.random.default_rng(seed)
    side = (atoms / density) ** (1 / 3)
    pos = rng.uniform(0, side, size=(frames, atoms, 3))
    numbers = np.array([1, 6, 8] * atoms)[:atoms]
    return Dataset(positions=pos, numbers=numbers, energies=rng.normal(size=frames),
                   forces=rng.normal(size=(frames, atoms, 3)),
                   metadata={"source": f"cloud{atoms}", "marked_bond": {"atoms": [0, 1]}})


def test_the_estimate_counts_the_dense_pair_matrix_and_the_edges():
    from empirical.backbone import load as load_backbone
    from empirical.diagnostic._plan import backbone_bytes

    bb = load_backbone("aspirin_L2_seed0")
    base = backbone_bytes(bb, 100, 0, 8)
    assert base == (8 * 100) ** 2 * (4 * 4 + 6)              # float32 diff, norm, six masks
    assert backbone_bytes(bb, 100, 0, 1) * 64 == base          # (chunk * atoms)^2
    per_edge = backbone_bytes(bb, 100, 1, 1) - backbone_bytes(bb, 100, 0, 1)
    assert 10_000 < per_edge < 100_000                         # measured: about 12 kB an edge
    assert backbone_bytes(object(), 5000, 10 ** 6, 8) == 0     # no cutoff: nothing known


def test_a_large_molecule_is_refused_before_any_backbone_runs(tmp_path, capsys, monkeypatch):
    """The issue's 1500-atom file (12.8 GB peak): refused in seconds, naming the activations."""
    from empirical.diagnostic import _features

    data = _cloud(1500)
    path = tmp_path / "big.npz"
    np.savez(path, positions=data.positions, numbers=data.numbers, energies=data.energies,
             forces=data.forces)
    monkeypatch.setattr(_features, "marked_features",
                        lambda *a, **k: pytest.fail("a backbone ran"))
    start = time.perf_counter()
    code = cli.main(["diagnose", "--data", str(path), "--backbones", "aspirin_L2_seed0",
                     "--marked", "0", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "backbone activations" in err and "1500 atoms" in err and "GB" in err
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "run").exists()


def test_the_backbone_estimate_is_enforced_at_the_limit(monkeypatch):
    from empirical.backbone import load as load_backbone
    from empirical.diagnostic import make_plan
    from empirical.diagnostic._plan import WorkLimitExceeded, estimate_bytes

    bb = load_backbone("aspirin_L2_seed0")
    data = _cloud(300, frames=20)
    plan = make_plan(data, [0, 1, 2], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10,
                     backbones=[bb], concurrent=2)
    k = plan.k
    base = sum(estimate_bytes(20, 16, 4, k, 10, 2 * 9, 1).values())
    from empirical.diagnostic._plan import _activation_bytes
    act = _activation_bytes(bb, data, plan.frames)[0]
    assert act > 100e6                                         # the edges dominate here
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(base + 2 * act))
    make_plan(data, [0, 1, 2], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10,
              backbones=[bb], concurrent=2)                    # at the limit
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(base + 2 * act - 1))
    with pytest.raises(WorkLimitExceeded, match="backbone activations"):
        make_plan(data, [0, 1, 2], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10,
                  backbones=[bb], concurrent=2)


def test_extract_features_checks_the_activations_too(monkeypatch):
    """The sweep reaches the backbone through extract_features: the same bound holds there."""
    from empirical.backbone import load as load_backbone
    from empirical.diagnostic import extract_features, make_plan
    from empirical.diagnostic._plan import WorkLimitExceeded

    bb = load_backbone("aspirin_L2_seed0")
    data = _cloud(300, frames=20)
    plan = make_plan(data, [0, 1, 2], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10)
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", str(10 ** 8))
    with pytest.raises(WorkLimitExceeded, match="backbone activations"):
        extract_features(bb, data, plan)


def test_shortest_distances_are_exact_and_fast():
    from empirical.diagnostic._features import shortest_distances

    rng = np.random.default_rng(1)
    pos = rng.normal(size=(5, 30, 3))
    brute = np.array([np.min(np.linalg.norm(p[:, None] - p[None], axis=-1)
                             + np.eye(30) * 1e9) for p in pos])
    np.testing.assert_allclose(shortest_distances(pos), brute)
    assert np.isinf(shortest_distances(np.zeros((2, 1, 3)))).all()
    big = _cloud(10_000, frames=2).positions                    # MAX_ATOMS, O(N^2) took minutes
    start = time.perf_counter()
    assert shortest_distances(big).shape == (2,)
    assert time.perf_counter() - start < 5


# -- case 11: unit heuristics ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def aspirin50(aspirin):
    return aspirin.subset(range(50))


def _scaled(ds, pos=1.0, energy=1.0, force=1.0):
    return Dataset(ds.positions * pos, ds.numbers, ds.energies * energy, ds.forces * force,
                   {"source": "scaled aspirin"})


def test_true_aspirin_raises_no_unit_warning(aspirin, aspirin50):
    from empirical.data import unit_warnings

    assert unit_warnings(aspirin50) == []
    assert unit_warnings(aspirin) == []


@pytest.mark.parametrize("unit, scale, needle", [
    ("kcal/mol", dict(energy=1 / KCAL_PER_MOL, force=1 / KCAL_PER_MOL), "kcal/mol"),
    ("kJ/mol", dict(energy=96.485, force=96.485), "kcal/mol or kJ/mol"),
    ("Hartree, Bohr forces", dict(energy=1 / HARTREE, force=BOHR / HARTREE), "Hartree"),
    ("Hartree, A forces", dict(energy=1 / HARTREE, force=1 / HARTREE), "Hartree"),
    ("Bohr positions", dict(pos=1 / BOHR, force=BOHR), "Bohr"),
    ("nm positions", dict(pos=0.1, force=10.0), "nanometres"),
])
def test_data_in_other_units_is_warned_about(unit, scale, needle, aspirin50):
    from empirical.data import unit_warnings

    found = unit_warnings(_scaled(aspirin50, **scale))
    assert len(found) >= 1 and needle in " ".join(found), (unit, found)
    assert all("check the units" in w for w in found)


def test_constant_energies_are_warned_about(aspirin50):
    from empirical.data import unit_warnings

    flat = Dataset(aspirin50.positions, aspirin50.numbers, np.full(50, -1077.0),
                   aspirin50.forces, {})
    assert any("energies are the same" in w for w in unit_warnings(flat))


def test_the_unit_windows_hold_at_their_edges(aspirin50):
    """At a window's edge the data pass; just past it they are flagged."""
    from empirical.data import _info, unit_warnings

    f_rms = float(np.sqrt(np.mean(aspirin50.forces ** 2)))
    low, high = _info.UNIT_WINDOWS["force_rms"]
    windows = dict(_info.UNIT_WINDOWS)
    try:
        _info.UNIT_WINDOWS.update(stiffness=(0, np.inf), temperature_K=(0, np.inf))
        assert unit_warnings(_scaled(aspirin50, force=high / f_rms * (1 - 1e-9))) == []
        assert "force RMS" in " ".join(unit_warnings(_scaled(aspirin50,
                                                             force=high / f_rms * 1.01)))
        assert unit_warnings(_scaled(aspirin50, force=low / f_rms * (1 + 1e-9))) == []
        assert "force RMS" in " ".join(unit_warnings(_scaled(aspirin50,
                                                             force=low / f_rms * 0.99)))
    finally:
        _info.UNIT_WINDOWS.clear()
        _info.UNIT_WINDOWS.update(windows)


def test_the_unit_warning_reaches_the_result(aspirin):
    """The issue's kcal/mol aspirin ran without a word: the result now carries the warning."""
    import torch
    from e3nn import o3

    from empirical.diagnostic import diagnose

    class Ideal:
        dtype = torch.float64
        irreps_out = o3.Irreps.spherical_harmonics(1)

        def node_features(self, positions, numbers):
            v = positions[1] - positions[0]
            return o3.spherical_harmonics(self.irreps_out, v[None], normalize=True,
                                          normalization="component").repeat(len(positions), 1)

    asp = aspirin.subset(range(60))
    kcal = Dataset(asp.positions, asp.numbers, asp.energies / KCAL_PER_MOL,
                   asp.forces / KCAL_PER_MOL, dict(asp.metadata))
    res = diagnose(backbones=[Ideal()], dataset=kcal, degrees=(1,), lmax=2, n_boot=10,
                   k_sweep=(), progress=False)
    assert any("kcal/mol" in w and "check the units" in w for w in res.warnings)


# -- messages: --lmax 0, --n-boot, --frames ------------------------------------------------------

def test_lmax_zero_is_refused_before_the_work(monkeypatch, tmp_path, capsys):
    from empirical.diagnostic import _features

    monkeypatch.setattr(_features, "marked_features",
                        lambda *a, **k: pytest.fail("a backbone ran"))
    for argv in (["diagnose", "--lmax", "0"], ["profile", "--lmax", "0"]):
        code = cli.main([*argv, "--backbones", "aspirin_L2_seed0", "--frames", "50",
                         "--out", str(tmp_path / "run"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "lmax = 0" in err, err
    from empirical.diagnostic import make_plan

    data = _cloud(4, frames=20, density=0.05)
    assert make_plan(data, [1], marked=(0, 1), degrees=(1,), lmax=1, n_boot=10).lmax == 1


@pytest.mark.parametrize("command", ["diagnose", "profile", "survey"])
def test_too_few_bootstrap_resamples_are_refused_with_the_minimum(command, tmp_path, capsys):
    from empirical.diagnostic._plan import MIN_N_BOOT

    out = str(tmp_path / "run")
    assert cli.main([command, "--n-boot", str(MIN_N_BOOT - 1), "--out", out,
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n-boot" in err and f"at least {MIN_N_BOOT}" in err
    assert "Fieller" not in err


def test_the_bootstrap_minimum_holds_in_the_api():
    from empirical.diagnostic import make_plan
    from empirical.diagnostic._plan import MIN_N_BOOT

    data = _cloud(4, frames=20, density=0.05)
    assert make_plan(data, [1], marked=(0, 1), degrees=(1,), lmax=2,
                     n_boot=MIN_N_BOOT).n_boot == MIN_N_BOOT          # at the limit
    with pytest.raises(ValueError, match=f"n_boot.*>= {MIN_N_BOOT}.*got {MIN_N_BOOT - 1}"):
        make_plan(data, [1], marked=(0, 1), degrees=(1,), lmax=2, n_boot=MIN_N_BOOT - 1)


@pytest.mark.parametrize("command", ["diagnose", "profile", "survey"])
def test_frames_above_the_bound_are_refused_by_the_parser(command, tmp_path, capsys):
    from empirical.data import MAX_FRAMES

    for text, needle in [(str(MAX_FRAMES + 1), str(MAX_FRAMES)), ("1e8", "'1e8'")]:
        assert cli.main([command, "--frames", text, "--out", str(tmp_path / "r"),
                         "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--frames" in err and needle in err, err


def test_more_frames_than_the_dataset_are_refused_naming_both():
    from empirical.diagnostic import make_plan

    data = _cloud(4, frames=20, density=0.05)
    assert len(make_plan(data, [1], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10,
                         frames=20).frames) == 20                    # at the limit
    with pytest.raises(ValueError, match="frames = 21 is more than the 20 frames of cloud4"):
        make_plan(data, [1], marked=(0, 1), degrees=(1,), lmax=2, n_boot=10, frames=21)


def test_controls_never_cut_the_frames_silently(capsys):
    """``controls --frames N`` with N above the dataset's frames is refused naming both
    counts (it was cut to the dataset's size without a word); the parser bounds N and
    ``--n-boot`` as diagnose's does."""
    from empirical import cli

    for argv, needle in ((["--frames", "6000"], "more than the 5000 frames"),
                         (["--frames", "100000000"], "--frames"),
                         (["--frames", "19"], "--frames"),
                         (["--n-boot", "1"], "--n-boot")):
        code = cli.main(["controls", "--kinds", "untrained", "--no-progress", *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1 and needle in err, (argv, err)


def test_a_path_that_is_not_a_regular_file_is_named(tmp_path, capsys):
    """A FIFO as --data blocked the read forever, /dev/zero never ends; a directory, a
    device, a FIFO or a link loop given as data or as a checkpoint is named for what it
    is, in one line, at once (it was "no such file", or a hang)."""
    import os

    from empirical import cli

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop1"
    os.symlink(tmp_path / "loop2", loop)
    os.symlink(loop, tmp_path / "loop2")
    folder = tmp_path / "folder"
    folder.mkdir()
    for argv, needle in (
            (["data", "info", str(fifo)], "not a regular file"),
            (["data", "info", "/dev/null"], "not a regular file"),
            (["diagnose", "--backbones", str(fifo)], "not a regular file"),
            (["diagnose", "--backbones", str(folder)], "a directory"),
            (["diagnose", "--backbones", str(loop)], "does not resolve")):
        if argv[0] == "diagnose":
            argv = argv + ["--out", str(tmp_path / "out"), "--no-progress"]
        code = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err, (argv, err)
        assert "--out" not in err
    assert not (tmp_path / "out").exists()
