"""The sweep's task store (docs/method.md §2.11): every finished task on disk under a
content key, so that a rerun computes only what is missing.

A key is the SHA-256 of what the task's output is a function of (:func:`content_key`):
the backbone's weights (its file's SHA-256, layer and irreps), the configurations it ran
on (the bytes of the positions, rotations and atomic numbers), the plan's every array
and option, the code's store version. Nothing in a key names a path or a time, so the
same work asked for twice (the same checkpoint in two groups, a rerun, a moved folder)
is done once.

Files are ``<kind>/<key[:2]>/<key>.npz``: numpy arrays and one JSON string, read with
``allow_pickle=False`` (the store never unpickles; a tampered file is at worst wrong
numbers, never code). Each is written atomically (:func:`empirical._io.atomic_path`),
so an interrupt leaves whole entries or none: a killed sweep loses at most the tasks
that were running.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .._io import atomic_path

__all__ = ["TaskStore", "content_key", "STORE_VERSION", "MARKER"]

#: Bumped whenever a task's output for the same inputs would change: old entries are
#: then simply never looked up again.
STORE_VERSION = 1
#: The file that marks a directory as a task store.
MARKER = "SPECTRAL_CEILINGS_STORE"
#: Kinds of entry.
KINDS = ("features", "equivariance", "probe", "run")


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
    """SHA-256 hex of ``kind``, :data:`STORE_VERSION` and ``parts`` (arrays, numbers,
    strings, dicts, lists, dataclasses such as a plan)."""
    h = hashlib.sha256(f"spectral-ceilings/{STORE_VERSION}/{kind}".encode())
    _feed(h, list(parts))
    return h.hexdigest()


class TaskStore:
    """A directory of finished tasks: ``has``, ``save``, ``load`` by kind and key."""

    def __init__(self, root):
        self.root = Path(root)
        marker = self.root / MARKER
        if self.root.exists():
            if not self.root.is_dir():
                raise ValueError(f"store {self.root} exists and is not a directory")
            if any(self.root.iterdir()) and not marker.is_file():
                raise ValueError(f"store {self.root} holds files but is not a sweep's task "
                                 "store: give an empty or new directory")
        self.root.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            with atomic_path(marker) as tmp:
                tmp.write_text(f"spectral-ceilings task store, version {STORE_VERSION}\n")

    def path(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown store kind {kind!r}")
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a store key: {key!r}")
        return self.root / kind / key[:2] / f"{key}.npz"

    def has(self, kind: str, key: str) -> bool:
        return self.path(kind, key).is_file()

    def save(self, kind: str, key: str, arrays: Dict[str, Optional[np.ndarray]],
             meta: Dict) -> None:
        """Write one entry atomically: ``arrays`` (``None`` values are left out) and a
        JSON-able ``meta``."""
        payload = {f"a_{k}": np.asarray(v) for k, v in arrays.items() if v is not None}
        payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
        with atomic_path(self.path(kind, key), suffix=".npz") as tmp:
            np.savez(tmp, **payload)

    def load(self, kind: str, key: str) -> Tuple[Dict[str, np.ndarray], Dict]:
        """``(arrays, meta)`` of an entry (``ValueError`` for a damaged file)."""
        path = self.path(kind, key)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k[2:]: z[k] for k in z.files if k.startswith("a_")}
                meta = json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"store entry {path} is damaged ({exc}): delete it and rerun") \
                from None
        return arrays, meta

    def load_meta(self, kind: str, key: str) -> Dict:
        """The JSON part of an entry alone (its arrays are not read)."""
        path = self.path(kind, key)
        try:
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"store entry {path} is damaged ({exc}): delete it and rerun") \
                from None

    def count(self, kind: str) -> int:
        folder = self.root / kind
        return sum(1 for _ in folder.glob("*/*.npz")) if folder.is_dir() else 0
