"""The content-keyed store under the feature cache and the sweep (docs/method.md §2.12):
every finished piece of work on disk under a content key, so that a rerun computes only
what is missing. One implementation and one directory: ``diagnose``, ``profile``,
``survey``, ``controls`` and ``sweep`` read and write the same store
(:mod:`empirical.cache`).

A key is the SHA-256 of what the task's output is a function of (:func:`content_key`):
the backbone's weights (its file's SHA-256, layer and irreps), the configurations it ran
on (the bytes of the positions, rotations and atomic numbers), the plan's every array
and option, the code's store version. Nothing in a key names a path or a time, so the
same work asked for twice (the same checkpoint in two groups, a rerun, a moved folder)
is done once.

Files are ``<kind>/<key[:2]>/<key>.npz``: numpy arrays and one JSON string, read with
``allow_pickle=False`` (the store never unpickles; a tampered file is at worst wrong
numbers, never code). Each is written atomically (:func:`empirical.io.atomic_path`),
so an interrupt leaves whole entries or none: a killed sweep loses at most the tasks
that were running.

An entry is checked before it is used (:meth:`TaskStore.has`): a zip of uncompressed
``.npy`` members whose sizes fit the file, each header's shape matching its member's
length, no object arrays, every member's CRC-32, and the arrays and JSON keys its kind
needs (:data:`REQUIRED`). An entry that fails (empty, truncated, random bytes, a flipped
bit) is damaged: it counts as missing, so the task is computed again and the entry
rewritten, and the store reports it (:attr:`TaskStore.damaged`, the ``on_damaged``
callback). A damaged entry is never used and never stops a sweep.

Least recently used: reading an entry sets its modification time to now, so the file's
time is its last use. :meth:`TaskStore.evict` removes the entries used longest ago until
the store fits a size; it never removes an entry this process has read or written (an
entry in use), nor anything that is not an entry this tool wrote (a file of the
pattern ``KIND/xx/KEY.npz``, or a stale temporary file of an interrupted write of one).
An entry removed by another process between ``has`` and ``load`` reads as missing
(:meth:`TaskStore.get`), so its work is done again: eviction never breaks a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from ..io import atomic_path

__all__ = ["TaskStore", "content_key", "STORE_VERSION", "MARKER", "DamagedEntry", "REQUIRED",
           "KINDS", "StoreInfo"]

#: Bumped whenever a task's output for the same inputs would change: old entries are
#: then simply never looked up again. (2: the feature cache; keys name the package
#: version, dtype and device kind.)
STORE_VERSION = 2
#: The file that marks a directory as a task store.
MARKER = "SPECTRAL_CEILINGS_STORE"
#: Kinds of entry.
KINDS = ("features", "equivariance", "probe", "run")
#: An entry's file name, and a temporary file of an interrupted write of one
#: (:func:`empirical.io.atomic_path`: ``.NAME.RANDOM.npz``).
_ENTRY = re.compile(r"^[0-9a-f]{64}\.npz$")
_PARTIAL = re.compile(r"^\.[0-9a-f]{64}\.npz\.[A-Za-z0-9_]+\.npz$")
#: A temporary file older than this (seconds) belongs to a write that died.
STALE_SECONDS = 3600.0
#: Arrays of each kind that must hold floats (of any other kind: plain numbers).
FLOATS: Dict[str, Set[str]] = {"features": {"features", "energies"},
                               "probe": {"pred_s", "pred_r", "s_te", "train_mean"}}
#: What each kind of entry must hold to be used: (array names, keys of its JSON part);
#: what the sweep reads back (``_chunk_from_entry``, ``_probe_from_entry``, assembly).
REQUIRED: Dict[str, Tuple[Set[str], Set[str]]] = {
    "features": ({"features"}, {"dtype", "scale", "seconds"}),
    "equivariance": (set(), {"rotation", "reflection"}),
    "probe": ({"pred_s", "s_te", "train_mean"},
              {"name", "eps", "rmse", "d", "k", "records", "sweep", "warnings", "seconds"}),
    "run": (set(), {"result", "seconds"}),
}


class DamagedEntry(ValueError):
    """A store entry that cannot be used as it is (see the module docstring)."""


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.dtype:
    """Check one ``.npy`` member from its header alone: not an object array, and the
    shape times the item size is exactly what the member holds (so nothing bigger than
    the file is ever allocated). Returns its dtype."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DamagedEntry(f"member {info.filename} has .npy version {version}")
        data = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if dtype.hasobject or f.tell() + data != info.file_size:
            raise DamagedEntry(f"member {info.filename}'s header ({shape}, {dtype}) does "
                               f"not match its {info.file_size} bytes")
    return dtype


def _read_entry(path: Path, kind: str, arrays: bool = True) -> Tuple[Dict[str, np.ndarray],
                                                                      Dict]:
    """``(arrays, meta)`` of the entry at ``path``, checked (the module docstring);
    :class:`DamagedEntry` naming the first problem. ``arrays=False``: the arrays'
    headers are checked but their data not read (``{}`` is returned for them)."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise DamagedEntry("an empty file")
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > size:
                raise DamagedEntry("its members claim more bytes than the file has")
            if len({i.filename for i in infos}) != len(infos):
                raise DamagedEntry("two members share a name")
            dtypes = {}
            for info in infos:
                if (info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1
                        or not info.filename.endswith(".npy")):
                    raise DamagedEntry(f"member {info.filename!r} is not a plain .npy")
                dtypes[info.filename[:-4]] = _member_header(zf, info)
            names = set(dtypes)
            for name, dt in dtypes.items():
                if name != "meta" and dt.kind not in "biuf":
                    raise DamagedEntry(f"member {name} holds {dt}, not plain numbers")
                if name[2:] in FLOATS.get(kind, ()) and dt.kind != "f":
                    raise DamagedEntry(f"member {name} holds {dt}, not floats")
            if "meta" not in names:
                raise DamagedEntry("no meta member")
            with zf.open("meta.npy") as f:
                text = np.lib.format.read_array(f, allow_pickle=False)
            if text.dtype.kind != "U" or text.shape != ():
                raise DamagedEntry("its meta member is not a string")
            meta = json.loads(str(text))
            out = {}
            if arrays:
                for name in sorted(n for n in names if n.startswith("a_")):
                    with zf.open(f"{name}.npy") as f:
                        out[name[2:]] = np.lib.format.read_array(f, allow_pickle=False)
    except DamagedEntry:
        raise
    except Exception as exc:        # noqa: BLE001 - any file we cannot read is damaged
        # (OSError, zipfile's and numpy's errors, a header numpy cannot parse, JSON nested
        # past the recursion limit, ...): never a traceback, never trusted
        raise DamagedEntry(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    want_arrays, want_keys = REQUIRED[kind]
    have = {n[2:] for n in names if n.startswith("a_")}
    if not isinstance(meta, dict) or not want_keys <= set(meta) or not want_arrays <= have:
        raise DamagedEntry(f"it lacks what a {kind} entry holds")
    if kind == "features":
        # a float32 model's output is stored as float32, anything else as float64
        want = "float32" if meta.get("dtype") in ("float32", "float16", "bfloat16") \
            else "float64"
        if str(dtypes["a_features"]) != want:
            raise DamagedEntry(f"its features are {dtypes['a_features']}, its meta says "
                               f"{meta.get('dtype')!r}")
    return out, meta


def _own_file(path: Path) -> bool:
    """A regular file, not a symbolic link."""
    return path.is_file() and not path.is_symlink()


def _feed(h, value) -> None:
    """Feed ``value`` into hash ``h`` unambiguously (type-tagged, length-prefixed)."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"nd{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    elif isinstance(value, dict):
        h.update(f"dict{len(value)}".encode())
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}".encode())
        for v in value:
            _feed(h, v)
    elif value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        text = repr(value.item() if isinstance(value, (np.integer, np.floating)) else value)
        h.update(f"{type(value).__name__}{len(text)}:{text}".encode())
    elif hasattr(value, "__dataclass_fields__"):
        h.update(type(value).__name__.encode())
        _feed(h, {k: getattr(value, k) for k in value.__dataclass_fields__})
    else:
        raise TypeError(f"cannot key a {type(value).__name__}")


def content_key(kind: str, *parts) -> str:
    """SHA-256 hex of ``kind``, :data:`STORE_VERSION`, the package version and ``parts``
    (arrays, numbers, strings, dicts, lists, dataclasses such as a plan)."""
    from spanthm import __version__

    h = hashlib.sha256(f"spectral-ceilings/{__version__}/{STORE_VERSION}/{kind}".encode())
    _feed(h, list(parts))
    return h.hexdigest()


class TaskStore:
    """A directory of finished tasks: ``has``, ``save``, ``load`` by kind and key.

    ``on_damaged(kind, key, reason)`` is called once for each damaged entry found (see
    the module docstring); :attr:`damaged` lists them as ``(kind, key, reason)``.
    :attr:`used` holds every entry this object read or wrote (never evicted by it)."""

    def __init__(self, root, on_damaged: Optional[Callable[[str, str, str], None]] = None,
                 readonly: bool = False):
        self.root = Path(root)
        self.on_damaged = on_damaged or (lambda kind, key, reason: None)
        self.damaged: List[Tuple[str, str, str]] = []
        self._usable: Dict[Tuple[str, str], bool] = {}
        self.used: Set[Tuple[str, str]] = set()
        marker = self.root / MARKER
        if readonly:
            if not _own_file(marker):
                raise ValueError(f"store {self.root} is not a spectral-ceilings cache")
            return
        if self.root.exists():
            if not self.root.is_dir():
                raise ValueError(f"store {self.root} exists and is not a directory")
            if any(self.root.iterdir()) and not _own_file(marker):
                raise ValueError(f"store {self.root} holds files but is not a spectral-"
                                 "ceilings cache or task store: give an empty or new "
                                 "directory")
        self.root.mkdir(parents=True, exist_ok=True)
        if marker.is_symlink():
            raise ValueError(f"store {self.root}: its {MARKER} is a symbolic link, not a "
                             "file this tool wrote: give another directory")
        if not marker.is_file():
            with atomic_path(marker) as tmp:
                tmp.write_text("spectral-ceilings feature cache and task store: every "
                               "KIND/xx/KEY.npz here was written by this tool\n")

    def path(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown store kind {kind!r}")
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a store key: {key!r}")
        return self.root / kind / key[:2] / f"{key}.npz"

    def foreign(self, kind: str, key: str) -> bool:
        """Whether the entry's place is not one this tool writes: its kind folder, its
        ``xx`` folder or the entry itself is a symbolic link. Such an entry is neither
        read nor written (nothing behind a link is ever trusted, touched or replaced)."""
        path = self.path(kind, key)
        return any(p.is_symlink() for p in (path.parent.parent, path.parent, path))

    def has(self, kind: str, key: str) -> bool:
        """Whether the entry is there and usable: checked in full (every member read,
        its CRC-32 verified) the first time it is asked for, then remembered. A damaged
        entry is reported and counts as missing, so its task is computed again."""
        known = self._usable.get((kind, key))
        if known is not None:
            return known
        path = self.path(kind, key)
        if self.foreign(kind, key):
            self._usable[(kind, key)] = False
            return False
        if not path.exists():
            return False
        if not path.is_file():
            # a directory (or a device) where an entry belongs was not written by this
            # tool: it is neither read nor replaced
            raise ValueError(f"store entry {path} is "
                             f"{'a directory' if path.is_dir() else 'not a regular file'}: "
                             "the store holds only files this tool wrote; remove it, or "
                             "give another --store")
        try:
            _read_entry(path, kind)
            usable = True
        except DamagedEntry as exc:
            if str(exc).startswith("FileNotFoundError"):
                return False        # removed meanwhile (another process evicted it)
            usable = False
            self.damaged.append((kind, key, str(exc)))
            self.on_damaged(kind, key, str(exc))
        self._usable[(kind, key)] = usable
        if usable:
            self._touch(kind, key)
        return usable

    def forget(self, kind: str, key: str) -> None:
        """Drop what :meth:`has` remembered of an entry (its reader found it unfit): the
        next :meth:`has` checks the file again."""
        self._usable.pop((kind, key), None)

    def _touch(self, kind: str, key: str) -> None:
        """Mark an entry used now (its modification time: the LRU order)."""
        self.used.add((kind, key))
        try:
            os.utime(self.path(kind, key))
        except OSError:
            pass        # read-only store, or removed meanwhile: the order is a hint

    def get(self, kind: str, key: str) -> Optional[Tuple[Dict[str, np.ndarray], Dict]]:
        """``(arrays, meta)`` of a usable entry, or ``None`` when it is missing, damaged
        (reported as by :meth:`has`) or removed meanwhile by another process."""
        if not self.has(kind, key):
            return None
        try:
            return _read_entry(self.path(kind, key), kind)
        except DamagedEntry as exc:
            self._usable[(kind, key)] = False
            if not str(exc).startswith("FileNotFoundError"):
                self.damaged.append((kind, key, str(exc)))
                self.on_damaged(kind, key, str(exc))
            return None

    def save(self, kind: str, key: str, arrays: Dict[str, Optional[np.ndarray]],
             meta: Dict) -> None:
        """Write one entry atomically (replacing a damaged one): ``arrays`` (``None``
        values are left out) and a JSON-able ``meta``."""
        if self.foreign(kind, key):
            return          # a link where an entry belongs: not ours to replace
        payload = {f"a_{k}": np.asarray(v) for k, v in arrays.items() if v is not None}
        payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
        with atomic_path(self.path(kind, key), suffix=".npz") as tmp:
            np.savez(tmp, **payload)
        self._usable[(kind, key)] = True
        self.used.add((kind, key))

    def load(self, kind: str, key: str) -> Tuple[Dict[str, np.ndarray], Dict]:
        """``(arrays, meta)`` of an entry (``ValueError`` for a damaged file)."""
        path = self.path(kind, key)
        try:
            return _read_entry(path, kind)
        except DamagedEntry as exc:
            raise ValueError(f"store entry {path} is damaged ({exc}): delete it and rerun") \
                from None

    def load_meta(self, kind: str, key: str) -> Dict:
        """The JSON part of an entry alone (its arrays' data are not read)."""
        path = self.path(kind, key)
        try:
            return _read_entry(path, kind, arrays=False)[1]
        except DamagedEntry as exc:
            raise ValueError(f"store entry {path} is damaged ({exc}): delete it and rerun") \
                from None

    def count(self, kind: str) -> int:
        return sum(1 for _ in self._entries(kind))

    def _entries(self, kind: str):
        """``(path, key)`` of every entry file of ``kind`` this tool could have written."""
        folder = self.root / kind
        if not folder.is_dir() or folder.is_symlink():
            return
        for sub in sorted(folder.iterdir()):
            if not (len(sub.name) == 2 and sub.is_dir() and not sub.is_symlink()):
                continue
            for f in sorted(sub.iterdir()):
                if _ENTRY.match(f.name) and f.name.startswith(sub.name) and f.is_file() \
                        and not f.is_symlink():
                    yield f, f.name[:-4]

    def _partials(self, older_than: float):
        """Temporary files of writes that died more than ``older_than`` seconds ago."""
        now = time.time()
        for kind in KINDS:
            folder = self.root / kind
            if not folder.is_dir() or folder.is_symlink():
                continue
            for sub in folder.iterdir():
                if len(sub.name) != 2 or not sub.is_dir() or sub.is_symlink():
                    continue
                for f in sub.iterdir():
                    try:
                        if _PARTIAL.match(f.name) and f.is_file() and not f.is_symlink() \
                                and now - f.stat().st_mtime > older_than:
                            yield f
                    except OSError:
                        continue

    def info(self) -> "StoreInfo":
        """What the store holds: entries and bytes per kind, the oldest and newest use."""
        counts, sizes, times = {}, {}, []
        for kind in KINDS:
            n = b = 0
            for f, _ in self._entries(kind):
                try:
                    st = f.stat()
                except OSError:
                    continue
                n, b = n + 1, b + st.st_size
                times.append(st.st_mtime)
            counts[kind], sizes[kind] = n, b
        return StoreInfo(entries=counts, bytes=sizes,
                         oldest_use=min(times) if times else None,
                         newest_use=max(times) if times else None)

    def evict(self, max_bytes: int) -> Tuple[int, int]:
        """Remove the entries used longest ago (never one in :attr:`used`) until the
        entries' bytes are at most ``max_bytes``; and temporary files of writes that died
        (older than :data:`STALE_SECONDS`). Returns ``(entries removed, bytes freed)``."""
        rows = []
        for kind in KINDS:
            for f, key in self._entries(kind):
                try:
                    st = f.stat()
                except OSError:
                    continue
                rows.append((st.st_mtime, st.st_size, kind, key, f))
        total = sum(r[1] for r in rows)
        removed = freed = 0
        for _, size, kind, key, f in sorted(rows, key=lambda r: (r[0], r[3])):
            if total <= max_bytes:
                break
            if (kind, key) in self.used:
                continue
            try:
                f.unlink()
            except OSError:
                continue
            self._usable.pop((kind, key), None)
            total, removed, freed = total - size, removed + 1, freed + size
        for f in self._partials(STALE_SECONDS):
            try:
                f.unlink()
            except OSError:
                pass
        return removed, freed

    def clear(self) -> Tuple[int, int]:
        """Remove every entry and stale temporary file this tool wrote (nothing else: a
        foreign file stays, and so do the folders that hold one; nothing behind a
        symbolic link is followed). Returns ``(entries, bytes)`` removed; :attr:`failed`
        lists ``(path, reason)`` of entries that could not be removed."""
        removed = freed = 0
        self.failed: List[Tuple[str, str]] = []
        for kind in KINDS:
            for f, key in list(self._entries(kind)):
                try:
                    size = f.stat().st_size
                    f.unlink()
                except OSError as exc:
                    self.failed.append((str(f), exc.strerror or str(exc)))
                    continue
                removed, freed = removed + 1, freed + size
            folder = self.root / kind
            if folder.is_dir() and not folder.is_symlink():
                for sub in folder.iterdir():
                    if len(sub.name) == 2 and sub.is_dir() and not sub.is_symlink():
                        try:
                            sub.rmdir()          # only when empty
                        except OSError:
                            pass
                try:
                    folder.rmdir()
                except OSError:
                    pass
        for f in self._partials(STALE_SECONDS):     # a fresh one may be a live write
            try:
                f.unlink()
            except OSError:
                pass
        self._usable.clear()
        return removed, freed


@dataclass(frozen=True)
class StoreInfo:
    """:meth:`TaskStore.info`: entries and bytes per kind, oldest and newest use (epoch
    seconds, or ``None`` for an empty store)."""

    entries: Dict[str, int]
    bytes: Dict[str, int]
    oldest_use: Optional[float]
    newest_use: Optional[float]

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())
