"""Hostile input, second round (README "Limits and trust"): trust and sweep faults.

* Trust is given by the user for a file, or by an installed distribution's RECORD (real
  path and SHA-256), never by a folder name (``ANYDIR/site-packages/...``), a symlink, a
  ``*.dist-info`` outside the site directories, or a configuration file.
* ``--scheduler`` refuses, in bounded time and in one line, what is not a Dask scheduler.
* A damaged task-store entry is recomputed, never used, never fatal.
"""

import base64
import hashlib
import json
import os
import pickle
import shutil
import socket
import struct
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _helpers import crafted_pickle, dask_client
from empirical.adapters._trust import UntrustedCheckpoint, is_installed_file, require_trust
from empirical.cli import main


def _crafted(path: Path, marker: Path) -> Path:
    return crafted_pickle(path, marker, config=1)


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _adapter(name):
    pytest.importorskip({"mace": "mace", "nequip": "nequip", "sevenn": "sevenn"}[name])
    import importlib

    return importlib.import_module(f"empirical.adapters.{name}")


# -- trust: a folder name, a link, a fake distribution grant nothing ---------------------------

_FAKE_PLACES = {
    "site-packages": "site-packages/pkg/model.{ext}",
    "dist-packages": "dist-packages/pkg/model.{ext}",
    "site-packages, nested": "a/lib/python3.11/site-packages/sevenn/pretrained_potentials/"
                             "m.{ext}",
}
_EXT = {"mace": "model", "nequip": "ckpt", "sevenn": "pth"}


@pytest.mark.parametrize("framework", ["nequip", "mace", "sevenn"])
@pytest.mark.parametrize("place", sorted(_FAKE_PLACES))
@pytest.mark.parametrize("via", ["path", "symlink", "dotdot"])
def test_a_folder_name_grants_no_trust(tmp_path, framework, place, via):
    """A crafted pickle under ``ANYDIR/site-packages`` (or ``dist-packages``), named
    directly, through a symlink or through a ``..`` path: refused by the adapter, and its
    code does not run."""
    adapter = _adapter(framework)
    marker = tmp_path / "ran"
    file = _crafted(tmp_path / _FAKE_PLACES[place].format(ext=_EXT[framework]), marker)
    if via == "symlink":
        link = tmp_path / f"link.{_EXT[framework]}"
        link.symlink_to(file)
        file = link
    elif via == "dotdot":
        file = file.parent / ".." / file.parent.name / file.name
    with pytest.raises(UntrustedCheckpoint, match="trusted=True"):
        adapter.load(str(file))
    assert not marker.exists()
    assert not is_installed_file(file)


def test_the_cli_refuses_a_pickle_under_a_fake_site_packages(tmp_path, capsys):
    pytest.importorskip("nequip")
    marker = tmp_path / "ran"
    file = _crafted(tmp_path / "site-packages" / "best.ckpt", marker)
    out = tmp_path / "run"
    code = main(["diagnose", "--backbones", f"nequip:{file}", "--out", str(out),
                 "--no-progress", "--n-boot", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "--trust-checkpoints" in err and err.count("\n") == 1
    assert not marker.exists() and not out.exists()


def _distribution(site, name: str, file: str, marker):
    """A crafted pickle at ``site/file`` and an ``{name}-1.0.dist-info`` folder beside it
    holding METADATA: ``(the crafted file, the dist-info folder, the file's bytes)``."""
    crafted = _crafted(site / file, marker)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    return crafted, info, crafted.read_bytes()


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A site directory named ``site-packages`` that the trust rule treats as this
    interpreter's (``site_directories`` patched), holding a distribution ``fakepkg`` whose
    RECORD lists ``fakepkg/model.ckpt`` (a crafted pickle) with its size and hash."""
    import empirical.adapters._trust as trust

    site = tmp_path / "lib" / "site-packages"
    marker = tmp_path / "ran"
    file, info, data = _distribution(site, "fakepkg", "fakepkg/model.ckpt", marker)

    def record(*lines):
        (info / "RECORD").write_text("".join(f"{x}\n" for x in lines)
                                     + "fakepkg-1.0.dist-info/RECORD,,\n")

    record(f"fakepkg/model.ckpt,sha256={_record_hash(data)},{len(data)}")
    monkeypatch.setattr(trust, "site_directories", lambda: [site.resolve()], raising=False)
    return site, file, marker, record


def test_a_file_listed_in_an_installed_record_with_its_hash_is_trusted(fake_site):
    """The one way a file is trusted without the flag: a site directory's distribution
    lists its real path, size and SHA-256 (named directly, through ``..`` or a link)."""
    site, file, _, _ = fake_site
    assert is_installed_file(file)
    assert is_installed_file(site / "fakepkg" / ".." / "fakepkg" / "model.ckpt")
    link = site.parent / "link.ckpt"
    link.symlink_to(file)
    assert is_installed_file(link)
    require_trust(file, False, "nequip")


def test_a_changed_byte_an_unlisted_file_or_a_record_outside_is_not_trusted(fake_site,
                                                                            tmp_path):
    """Under the same site directory: one byte changed, a file beside it that RECORD does
    not list, a RECORD entry that climbs out (``../``) or is absolute, another case, a
    missing or non-sha256 hash: none trusted."""
    site, file, _, record = fake_site
    data = file.read_bytes()
    h, n = _record_hash(data), len(data)
    changed = bytearray(data)
    changed[-2] ^= 1
    file.write_bytes(bytes(changed))
    assert not is_installed_file(file)                         # one byte changed
    file.write_bytes(data)
    other = site / "fakepkg" / "other.ckpt"
    other.write_bytes(data)
    assert not is_installed_file(other)                        # same bytes, not listed
    outside = tmp_path / "outside.ckpt"
    outside.write_bytes(data)
    record(f"../../outside.ckpt,sha256={h},{n}", f"{outside},sha256={h},{n}")
    assert not is_installed_file(outside)                      # RECORD points outside
    record(f"FakePkg/Model.ckpt,sha256={h},{n}")
    assert not is_installed_file(file)                         # another case
    record("fakepkg/model.ckpt,,")
    assert not is_installed_file(file)                         # no hash
    record(f"fakepkg/model.ckpt,md5={h},{n}")
    assert not is_installed_file(file)                         # not sha256
    record(f"fakepkg/model.ckpt,sha256={h},{n + 1}")
    assert not is_installed_file(file)                         # other size
    (site / "fakepkg" / "model.ckpt").unlink()
    assert not is_installed_file(file)                         # gone


def test_a_dist_info_outside_the_site_directories_grants_nothing(tmp_path, monkeypatch):
    """A ``*.dist-info`` with a RECORD listing the crafted file and its true hash, on
    ``sys.path`` (as the working directory is for ``python -m``), under a folder named
    ``site-packages``: it is not a site directory, so nothing is trusted."""
    adapter = _adapter("nequip")
    site = tmp_path / "site-packages"
    marker = tmp_path / "ran"
    file, info, data = _distribution(site, "evil", "evil/best.ckpt", marker)
    (info / "RECORD").write_text(f"evil/best.ckpt,sha256={_record_hash(data)},{len(data)}\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(UntrustedCheckpoint):
        adapter.load(str(file))
    assert not marker.exists()
    assert not is_installed_file(file)


@pytest.fixture(scope="module")
def pretrained():
    """The real path of 7net-0's checkpoint in the installed sevenn wheel."""
    pytest.importorskip("sevenn")
    from sevenn.util import pretrained_name_to_path

    return Path(pretrained_name_to_path("7net-0")).resolve()


def test_sevenn_pretrained_models_are_still_trusted_without_the_flag(pretrained, tmp_path):
    """Every checkpoint the wheel ships is listed in its RECORD with its hash: shipped
    names stay available and load without the flag, also through a symlink whose target
    is the installed file (its real path)."""
    adapter = _adapter("sevenn")
    assert {"7net-0", "7net-l3i5", "7net-mf-0"} <= set(adapter._shipped_names())
    assert is_installed_file(pretrained)
    link = tmp_path / "7net.pth"
    link.symlink_to(pretrained)
    bb = adapter.load(str(link))
    assert bb.sha256 == hashlib.sha256(pretrained.read_bytes()).hexdigest()


def test_copies_of_a_pretrained_model_need_the_flag(pretrained, tmp_path):
    """The wheel's file copied under a fake ``site-packages`` (same relative path), the
    same copy with one byte changed, and a hard link (another path to the same bytes;
    its path is not in any RECORD): refused without the flag. A hard link has the
    installed file's hash, so trusting it would be harmless, but trust goes by the
    installed path, and a link outside it is not that path."""
    adapter = _adapter("sevenn")
    rel = Path(*pretrained.parts[pretrained.parts.index("sevenn"):])
    copy = tmp_path / "lib" / "site-packages" / rel
    copy.parent.mkdir(parents=True)
    shutil.copy(pretrained, copy)
    assert not is_installed_file(copy)
    with pytest.raises(UntrustedCheckpoint):
        adapter.load(str(copy))
    data = bytearray(copy.read_bytes())
    data[-10] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(UntrustedCheckpoint):
        adapter.load(str(copy))
    hard = tmp_path / "hard.pth"
    try:
        os.link(pretrained, hard)
    except OSError:
        return                          # another file system: no hard link to try
    assert not is_installed_file(hard)


# -- trust: a sweep configuration cannot grant it ----------------------------------------------

_ONE = {"groups": [{"backbones": ["aspirin_L2_seed0"]}], "degrees": [1]}


@pytest.mark.parametrize("raw", [
    {**_ONE, "trust_checkpoints": True},
    {**_ONE, "trust_checkpoints": False},
    {**_ONE, "TRUST_CHECKPOINTS": True},
    {**_ONE, "Trust-Checkpoints": True},
    {**_ONE, "trusted": True},
    {"groups": [{"backbones": ["aspirin_L2_seed0"], "trust_checkpoints": True}]},
    {**_ONE, "options": {"trust_checkpoints": True}},
    {**_ONE, "extra": [{"a": {"trust": True}}]},
])
def test_a_config_key_cannot_grant_trust(raw):
    from empirical.sweep import parse_config

    with pytest.raises(ValueError, match="cannot grant trust.*--trust-checkpoints"):
        parse_config(raw)


@pytest.fixture
def no_cluster(monkeypatch):
    """The sweep's cluster stubbed out: a refusal that comes before the cluster is needed
    is all these tests may see."""
    import empirical.sweep._sweep as sw

    def refuse(scheduler, workers):
        raise ValueError("no cluster in this test")
    monkeypatch.setattr(sw, "_client", refuse)


def test_a_shared_sweep_toml_does_not_run_its_pickles(tmp_path, capsys, no_cluster):
    """``trust_checkpoints = true`` in the file, no flag: one line, exit 2, the pickle
    does not run (the cluster is stubbed: the refusal comes before it is needed)."""
    pytest.importorskip("nequip")
    marker = tmp_path / "ran"
    file = _crafted(tmp_path / "best.ckpt", marker)
    cfg = tmp_path / "shared.toml"
    cfg.write_text(f'trust_checkpoints = true\ndegrees = [1]\n[[groups]]\n'
                   f'backbones = ["nequip:{file}"]\n')
    out = tmp_path / "o"
    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot grant trust" in err[0] and "trust_checkpoints" in err[0]
    assert not marker.exists() and not out.exists() and not (tmp_path / "o.store").exists()


def test_trust_in_a_sweep_comes_from_the_caller(tmp_path, no_cluster):
    """Without the argument the crafted file is refused; ``sweep(...,
    trust_checkpoints=True)`` hands trust to the loader (and the pickle runs: the
    argument is what stands between the file and the machine); a non-bool is refused."""
    pytest.importorskip("nequip")
    from empirical.sweep import parse_config, sweep

    marker = tmp_path / "ran"
    file = _crafted(tmp_path / "best.ckpt", marker)
    config = parse_config({"groups": [{"backbones": [f"nequip:{file}"]}], "degrees": [1]})
    assert config.trust_checkpoints is False
    with pytest.raises(UntrustedCheckpoint):
        sweep(config, store=tmp_path / "s", progress=False)
    assert not marker.exists()
    with pytest.raises(ValueError, match="trust_checkpoints must be True or False"):
        sweep(config, store=tmp_path / "s", progress=False, trust_checkpoints="yes")
    with pytest.raises(ValueError):
        sweep(config, store=tmp_path / "s", progress=False, trust_checkpoints=True)
    assert marker.read_text() == "ran"
    assert not (tmp_path / "s").exists()


# -- --scheduler: a service that is not Dask ------------------------------------------------------

def _service(payload: bytes, hold: float = 12.0) -> str:
    """A one-connection TCP service on 127.0.0.1 that sends ``payload`` and then holds the
    connection open for ``hold`` s (bounded: the thread and socket end by themselves)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(hold)
    port = srv.getsockname()[1]

    def run():
        try:
            conn, _ = srv.accept()
        except OSError:
            srv.close()
            return
        with conn:
            try:
                if payload:
                    conn.sendall(payload)
                time.sleep(hold)
            except OSError:
                pass
        srv.close()
    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{port}"


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


def _handshake(size=None) -> bytes:
    """Dask's first message on a connection (a msgpack table in ``pack_frames``),
    padded to ``size`` bytes after the length prefix when given."""
    import msgpack

    info = {"compression": None, "python": [3, 11, 7], "pickle-protocol": 5}

    def pack(table):
        frame = msgpack.packb(table)
        return struct.pack("QQ", 1, len(frame)) + frame
    body = pack(info)
    if size is not None:
        pad = size - len(pack({**info, "pad": ""}))
        body = pack({**info, "pad": "x" * pad})
        while len(body) > size:         # msgpack's string header grew with the pad
            pad -= len(body) - size
            body = pack({**info, "pad": "x" * pad})
        assert len(body) == size
    return struct.pack("Q", len(body)) + body


def _client_within(address, seconds):
    """``sweep._client(address)`` run in a thread: ``("ok", client)``,
    ``("error", exception)`` or ``("hung", None)`` after ``seconds``."""
    import empirical.sweep._sweep as sw

    box = {}

    def run():
        try:
            box["ok"] = sw._client(address, None)
        except BaseException as exc:    # noqa: BLE001 - reported to the test
            box["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if "ok" in box:
        return "ok", box["ok"]
    return ("error", box["error"]) if "error" in box else ("hung", None)


@pytest.mark.parametrize("name, payload", [
    ("silent", b""),
    ("http", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ("random bytes", bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8))),
    ("3 EiB length", struct.pack("Q", 3 << 60) + b"\0" * 64),
    ("not a handshake", struct.pack("Q", 24) + struct.pack("QQ", 1, 8) + b"\x92\x01\x02"
     + b"\0" * 5),
])
def test_a_service_that_is_not_dask_is_refused_in_bounded_time(name, payload):
    pytest.importorskip("distributed")
    import empirical.sweep._sweep as sw

    timeout = getattr(sw, "SCHEDULER_TIMEOUT", 5.0)
    address = _service(payload)
    start = time.monotonic()
    status, value = _client_within(address, timeout + 5)
    assert status == "error", f"{name}: {status}"
    assert type(value) is ValueError and address in str(value)
    assert "\n" not in str(value)
    assert time.monotonic() - start < timeout + 2


def _table(info: dict) -> bytes:
    """A handshake-shaped message (length prefix, ``pack_frames``) holding ``info``."""
    import msgpack

    frame = msgpack.packb(info)
    body = struct.pack("QQ", 1, len(frame)) + frame
    return struct.pack("Q", len(body)) + body


@pytest.mark.parametrize("info", [
    {"compression": None, "python": [3, 11, 7], "pickle-protocol": "5"},
    {"compression": None, "python": "3.11", "pickle-protocol": 5},
    {"compression": None, "python": [3, 11], "pickle-protocol": 5},
    {"compression": None, "python": [3, 11, 7], "pickle-protocol": True},
    {"compression": None, "python": [3, 11, 7], "pickle-protocol": 10 ** 6},
    {"compression": [1], "python": [3, 11, 7], "pickle-protocol": 5},
    {"python": [3, 11, 7], "pickle-protocol": 5},
])
def test_a_handshake_with_the_keys_but_not_the_values_is_refused(info):
    """The keys of Dask's handshake with values of other types (which Dask's client would
    compare with its own and fail on, ``TypeError`` or ``KeyError`` inside Dask) are named
    in one line."""
    pytest.importorskip("distributed")
    address = _service(_table(info), hold=3.0)
    status, value = _client_within(address, 10)
    assert status == "error" and type(value) is ValueError, (status, value)
    assert "not a Dask scheduler" in str(value) and "\n" not in str(value)


def _service_for(connections: int, payload: bytes, hold: float, then: bytes = b"") -> str:
    """Like :func:`_service`, for up to ``connections`` connections (our handshake check,
    then those of Dask's client), each sent ``payload`` and then ``then``; bounded in
    time."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(connections)
    srv.settimeout(hold)

    def serve(conn):
        with conn:
            try:
                conn.sendall(payload)
                if then:
                    conn.sendall(then)
                time.sleep(hold)
            except OSError:
                pass

    def run():
        try:
            for _ in range(connections):
                conn, _ = srv.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()
        except OSError:
            pass
        srv.close()
    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}"


@pytest.mark.parametrize("name, after", [
    ("3 EiB frame", struct.pack("Q", 3 << 60) + b"\0" * 64),
    ("random bytes", bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8))),
    ("silence", b""),
])
def test_a_service_that_sends_a_handshake_and_then_garbage_is_one_line(name, after,
                                                                        monkeypatch):
    """A service that passes our handshake check and then sends what Dask cannot read
    (a frame announced at 3 EiB: Dask allocates what a length prefix says; random bytes;
    nothing) is named in one line, never a MemoryError traceback, an unexplained numpy
    message or an empty reason."""
    pytest.importorskip("distributed")
    import empirical.sweep._sweep as sw

    monkeypatch.setattr(sw, "CLIENT_TIMEOUT", 3.0)
    address = _service_for(20, _handshake(), hold=8.0, then=after)
    status, value = _client_within(address, 40)   # generous: a loaded machine is slow
    assert status == "error" and type(value) is ValueError, (name, status, value)
    text = str(value)
    assert address in text and "\n" not in text and not text.rstrip().endswith(":"), text


def test_a_closed_port_and_odd_addresses_are_one_line():
    pytest.importorskip("distributed")
    from empirical.sweep._sweep import _check_scheduler

    address = _closed_port()
    status, value = _client_within(address, 10)
    assert status == "error" and type(value) is ValueError
    assert f"no Dask scheduler answers at {address}" in str(value)
    for bad, word in [("tls://127.0.0.1:8786", "only tcp://"),
                      ("127.0.0.1", "not an address"),
                      ("tcp://127.0.0.1:70000", "out of range")]:
        with pytest.raises(ValueError, match=word):
            _check_scheduler(bad)


def test_the_handshake_size_limit():
    """A handshake of exactly HANDSHAKE_MAX_BYTES is read and accepted (after 0.3 s);
    one byte more is refused without reading it."""
    pytest.importorskip("distributed")
    from empirical.sweep._sweep import HANDSHAKE_MAX_BYTES, _check_scheduler

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)

    def late():
        conn, _ = srv.accept()
        with conn:
            time.sleep(0.3)
            conn.sendall(_handshake(HANDSHAKE_MAX_BYTES))
            time.sleep(1)
        srv.close()
    threading.Thread(target=late, daemon=True).start()
    _check_scheduler(f"tcp://127.0.0.1:{srv.getsockname()[1]}")
    over = _service(_handshake(HANDSHAKE_MAX_BYTES + 1), hold=3)
    with pytest.raises(ValueError, match="not a Dask scheduler.*at most"):
        _check_scheduler(over)


def test_a_real_scheduler_is_accepted():
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                           dashboard_address=":0")
    try:
        status, value = _client_within(cluster.scheduler_address, 30)
        assert status == "ok", value
        client, own = value
        assert own is None and client.status == "running"
        client.close()
    finally:
        cluster.close()


def test_cli_sweep_names_a_service_that_is_not_dask(tmp_path, capsys):
    """End to end: one line, exit 2, no store and no output."""
    pytest.importorskip("distributed")
    cfg = tmp_path / "c.toml"
    cfg.write_text('degrees = [1]\n[[groups]]\nbackbones = ["aspirin_L2_seed0"]\n')
    out = tmp_path / "o"
    address = _service(struct.pack("Q", 3 << 60))
    start = time.monotonic()
    assert main(["sweep", str(cfg), "--frames", "20", "--scheduler", address,
                 "--out", str(out), "--no-progress"]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("empirical: error: ") and "not a Dask scheduler" in err[-1]
    assert not out.exists() and not (tmp_path / "o.store").exists()


# -- the task store: damaged entries are recomputed -----------------------------------------------

def _entries(store):
    """One well-formed entry of each kind; returns ``{kind: key}``."""
    from empirical.sweep import content_key

    keys = {k: content_key(k, 1) for k in ("features", "equivariance", "probe", "run")}
    store.save("features", keys["features"], {"features": np.ones((4, 6), np.float32),
                                              "energies": np.zeros(4)},
               {"dtype": "float32", "scale": 1.0, "seconds": 0.1})
    store.save("equivariance", keys["equivariance"], {},
               {"rotation": 1e-7, "reflection": 1e-7, "seconds": 0.1})
    store.save("probe", keys["probe"], {"pred_s": np.zeros(3), "s_te": np.zeros(3),
                                        "train_mean": np.zeros(1)},
               {"name": "a", "eps": 0.1, "rmse": 1.0, "d": 1, "k": 2, "records": [],
                "sweep": [], "warnings": [], "seconds": 0.1})
    store.save("run", keys["run"], {}, {"result": {"x": 1}, "seconds": 0.1})
    return keys


def _stored_zip(path, members):
    """An uncompressed zip of raw ``{name: bytes}`` members at ``path``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    meta = _npy(np.array(json.dumps({"dtype": "float32", "scale": 1.0, "seconds": 0.1})))
    if how == "empty":
        path.write_bytes(b"")
    elif how == "random bytes":
        path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 700, np.uint8)))
    elif how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "one flipped bit":
        i = data.index(np.ones((4, 6), np.float32).tobytes()) + 9 if b"features" in data else len(data) // 3
        path.write_bytes(data[:i] + bytes([data[i] ^ 4]) + data[i + 1:])
    elif how == "a huge shape claimed":        # 8 TB claimed in a 16-byte member
        import io

        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                                   "shape": (10 ** 12,)})
        _stored_zip(path, {"a_features.npy": buf.getvalue() + bytes(16), "meta.npy": meta})
    elif how == "an object array":
        _stored_zip(path, {"a_features.npy": pickle.dumps([1]), "meta.npy": meta})
    elif how == "missing keys":
        _stored_zip(path, {"meta.npy": _npy(np.array(json.dumps({"other": 1})))})
    elif how == "meta not json":
        _stored_zip(path, {"a_features.npy": _npy(np.ones(2)),
                           "meta.npy": _npy(np.array("{not json"))})
    else:
        raise AssertionError(how)


_HOW = ["empty", "random bytes", "truncated", "one flipped bit", "a huge shape claimed",
        "an object array", "missing keys", "meta not json"]


@pytest.mark.parametrize("how", _HOW)
@pytest.mark.parametrize("kind", ["features", "equivariance", "probe", "run"])
def test_a_damaged_entry_is_missing_reported_and_replaceable(tmp_path, kind, how):
    """``has`` says False (so the task runs again), the damage is reported once, ``load``
    raises one-line ``ValueError`` naming the file (never EOFError, BadZipFile or a
    MemoryError), and saving the entry again repairs it."""
    pytest.importorskip("distributed")
    from empirical.sweep import TaskStore

    seen = []
    store = TaskStore(tmp_path / "s", on_damaged=lambda *a: seen.append(a))
    keys = _entries(store)
    key = keys[kind]
    path = store.path(kind, key)
    _damage(path, how)
    fresh = TaskStore(tmp_path / "s", on_damaged=lambda *a: seen.append(a))
    assert fresh.has(kind, key) is False and fresh.has(kind, key) is False
    assert len(seen) == 1 and seen[0][:2] == (kind, key) and fresh.damaged == [seen[0]]
    with pytest.raises(ValueError, match="damaged") as err:
        fresh.load(kind, key)
    assert type(err.value) is ValueError and str(path) in str(err.value)
    others = [k for k in keys if k != kind]
    assert all(fresh.has(k, keys[k]) for k in others)        # the rest is untouched
    again = TaskStore(tmp_path / "s2")
    good = _entries(again)
    shutil.copy(again.path(kind, good[kind]), path)          # the task's result, saved
    assert TaskStore(tmp_path / "s").has(kind, key)


def test_a_directory_where_an_entry_belongs_is_refused_not_replaced(tmp_path):
    """A directory at an entry's path is not this tool's: ``has`` refuses it in one line
    naming it (it was recomputed, then the rename onto it failed after the work with an
    error naming a temporary file), and it is left as it is."""
    pytest.importorskip("distributed")
    from empirical.sweep import TaskStore

    store = TaskStore(tmp_path / "s")
    key = _entries(store)["features"]
    path = store.path("features", key)
    path.unlink()
    path.mkdir()
    (path / "mine.txt").write_text("mine")
    with pytest.raises(ValueError, match="is a directory") as err:
        TaskStore(tmp_path / "s").has("features", key)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert (path / "mine.txt").read_text() == "mine"


def test_an_intact_entry_at_the_size_check_is_used(tmp_path):
    """An entry whose members fill the file exactly (as ``np.savez`` writes) passes; one
    byte claimed beyond the member is damage."""
    pytest.importorskip("distributed")
    from empirical.sweep import TaskStore

    store = TaskStore(tmp_path / "s")
    keys = _entries(store)
    arrays, meta = store.load("features", keys["features"])
    assert arrays["features"].shape == (4, 6) and meta["scale"] == 1.0
    assert store.has("features", keys["features"])
    path = store.path("features", keys["features"])
    members = {}
    with zipfile.ZipFile(path) as zf:
        for n in zf.namelist():
            members[n] = zf.read(n)
    members["a_features.npy"] = members["a_features.npy"][:-1]     # one byte short
    _stored_zip(path, members)
    assert not TaskStore(tmp_path / "s").has("features", keys["features"])


@pytest.fixture(scope="module")
def one_worker():
    pytest.importorskip("distributed")
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        yield client


def test_a_sweep_recomputes_damaged_entries_and_says_so(one_worker, tmp_path):
    """A tiny sweep; then a zero-byte feature chunk, a random-bytes probe fit and a
    truncated run entry: the rerun recomputes exactly those (and what depends on them),
    logs each, counts them in its timings, and gives the same results."""
    from empirical.sweep import TaskStore, parse_config, plan_sweep, sweep

    config = parse_config({"groups": [{"backbones": ["aspirin_L2_seed2"]}], "degrees": [1],
                           "lmax": 3, "n_boot": 40, "k_sweep": [], "chunk": 8,
                           "frames": 30})
    store = tmp_path / "store"
    first = sweep(config, store=store, client=one_worker, progress=False)
    (run,) = plan_sweep(config).runs
    (bb,) = run.backbones
    ts = TaskStore(store)
    ts.path("features", bb.chunks[0][0]).write_bytes(b"")
    ts.path("probe", bb.probe_keys[1]).write_bytes(os.urandom(300))
    path = ts.path("run", run.key)
    path.write_bytes(path.read_bytes()[:100])
    lines = []
    again = sweep(config, store=store, client=one_worker, progress=False, log=lines.append)
    assert again.timings["damaged_recomputed"] == {"features": 1, "equivariance": 0,
                                                   "probe": 1, "run": 1}
    assert again.timings["computed"] == {"features": 1, "equivariance": 0, "probe": 1,
                                         "run": 1}
    assert sum("is damaged" in line and "computing it again" in line for line in lines) == 3
    assert json.loads(again.to_json()) == json.loads(first.to_json())
    assert TaskStore(store).has("features", bb.chunks[0][0])
