"""The feature cache every command shares (docs/method.md §2.12).

A backbone's features and energies on a set of configurations under a set of rotations
are a function of the backbone's weights and code, those configurations and rotations,
the atoms read, the dtype and the device kind. :func:`features_key` hashes exactly that
(the configurations by the bytes of their positions and atomic numbers, which is finer
than a dataset fingerprint and its frame indices), so that ``diagnose``, ``profile``,
``survey``, ``controls`` and ``sweep`` reuse one another's work, and never reuse work
done on anything else.

Where it lives: ``--cache DIR``; else the environment variable
:data:`ENV_DIR` (a directory, or ``off``); else ``$XDG_CACHE_HOME/spectral-ceilings``
(an absolute ``XDG_CACHE_HOME`` only, as the XDG specification says); else
``~/.cache/spectral-ceilings``. ``--no-cache`` (or ``ENV_DIR=off``) runs without one. The
Python API runs without a cache unless given ``cache=``.

What it promises:

* an entry is checked before use (:class:`~empirical.cache.TaskStore`: CRC-32 of every
  member, shapes, kinds); one that fails is recomputed and rewritten, never trusted;
* entries are written atomically (a temporary file renamed into place), so two commands
  filling the same cache at once each find whole entries or none, and write the same
  bytes for the same key;
* a directory that cannot be created or written leaves the run correct: the run goes on
  without storing (and reads what it can), and says so once;
* at most :data:`DEFAULT_MAX_BYTES` (or :data:`ENV_MAX`): after a run, the entries used
  longest ago are evicted, never one the run itself used;
* every run records which entries it reused and which it wrote
  (:meth:`FeatureCache.record`, in each backbone's ``cache`` in results.json), so a
  result never silently depends on stale state.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._store import StoreInfo, TaskStore, content_key

__all__ = ["FeatureCache", "default_cache_dir", "resolve_cache_dir", "open_cache",
           "model_key", "features_key", "ENV_DIR", "ENV_MAX", "DEFAULT_MAX_BYTES",
           "CACHE_CHUNK", "parse_size", "max_bytes_from_env"]

#: The environment variable naming the cache directory (or ``off``).
ENV_DIR = "SPECTRAL_CEILINGS_CACHE"
#: The environment variable giving the size cap (bytes, or with a suffix K, M, G).
ENV_MAX = "SPECTRAL_CEILINGS_CACHE_MAX_BYTES"
#: The default size cap: 4 GiB (the headline run's features are about 15 MB).
DEFAULT_MAX_BYTES = 4 * 2 ** 30
#: Configurations per feature entry (the sweep's default task size, so that a sweep and a
#: diagnose on the same configurations write the same entries).
CACHE_CHUNK = 200


def parse_size(text: str) -> int:
    """``"4G"`` -> bytes (suffixes K, M, G, T: powers of 1024); ``ValueError`` otherwise."""
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if s and s[-1] in "KMGT":
        scale, s = 1024 ** ("KMGT".index(s[-1]) + 1), s[:-1]
    try:
        value = float(s)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (give bytes, or a number with K, M, G or "
                         "T)") from None
    if not np.isfinite(value):
        raise ValueError(f"not a size: {text!r} (not a finite number)")
    if value < 0:
        raise ValueError(f"not a size: {text!r} (a size is >= 0)")
    return int(value * scale)


def max_bytes_from_env() -> int:
    """The size cap :data:`ENV_MAX` sets (default :data:`DEFAULT_MAX_BYTES`); a
    ``ValueError`` naming the variable for a value that is not a size."""
    env = os.environ.get(ENV_MAX, "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(env)
    except ValueError as exc:
        raise ValueError(f"{ENV_MAX}: {exc}") from None


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spectral-ceilings`` (when set to an absolute path), else
    ``~/.cache/spectral-ceilings``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "spectral-ceilings"


def resolve_cache_dir(cache) -> Optional[Path]:
    """The directory a command's ``cache`` option names: ``False`` or ``"off"``: none;
    ``None`` or ``True``: :data:`ENV_DIR`, else :func:`default_cache_dir`; a path: it."""
    if cache is False or (isinstance(cache, str) and cache.strip().lower() == "off"):
        return None
    if cache is None or cache is True:
        env = os.environ.get(ENV_DIR, "").strip()
        if env.lower() == "off":
            return None
        return Path(env).expanduser() if env else default_cache_dir()
    if not str(cache).strip():
        raise ValueError("the cache directory is an empty path (give a directory, or turn "
                         "the cache off)")
    return Path(cache).expanduser()


def _source_digest(obj) -> List[str]:
    """SHA-256 of the source files that define ``obj``'s class and those of the torch
    modules it holds: a change of the model's code is a change of its features."""
    import torch

    classes = [type(obj)]
    if hasattr(obj, "__dict__"):
        classes += [type(v) for v in vars(obj).values() if isinstance(v, torch.nn.Module)]
    out = []
    for cls in dict.fromkeys(classes):
        try:
            path = inspect.getsourcefile(cls)
        except (TypeError, OSError):
            path = None
        if path and os.path.isfile(path):
            out.append(f"{cls.__module__}.{cls.__qualname__}:"
                       + hashlib.sha256(Path(path).read_bytes()).hexdigest())
        else:
            out.append(f"{cls.__module__}.{cls.__qualname__}")
    return out


def _state_digest(obj) -> Optional[str]:
    """SHA-256 of the parameters and buffers of ``obj`` (a torch module, or an object
    holding some as attributes), or ``None`` when it holds none."""
    import torch

    modules = [obj] if isinstance(obj, torch.nn.Module) else []
    if hasattr(obj, "__dict__"):
        modules += [v for v in vars(obj).values() if isinstance(v, torch.nn.Module)]
    if not modules:
        return None
    h = hashlib.sha256()
    for module in modules:
        for name, t in sorted(module.state_dict().items()):
            if not isinstance(t, torch.Tensor):
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_key(backbone, sha256: Optional[str] = None) -> Optional[str]:
    """The content key of a backbone's identity, or ``None`` when it has none (its
    features are then never cached): the checkpoint's SHA-256 when it came from a file,
    else the SHA-256 of its parameters and buffers; with its ``irreps_out``, layer and
    parity, its dtype and device kind, the source files of its classes and the versions
    of the installed frameworks (:func:`empirical.runtime.versions`)."""
    from ..backbone import model_device, model_dtype
    from ..runtime import versions

    identity = sha256 or _state_digest(backbone)
    if identity is None:
        return None
    facts = {"irreps_out": str(getattr(backbone, "irreps_out", "")),
             "layer": str(getattr(backbone, "layer", None)),
             "parity": getattr(backbone, "parity", None) is not False,
             "dtype": str(model_dtype(backbone)),
             "device": model_device(backbone).type}
    return content_key("backbone", identity, facts, _source_digest(backbone), versions())


def features_key(model: str, positions: np.ndarray, rotations: np.ndarray,
                 numbers: np.ndarray, atoms: Sequence[int], with_energy: bool = True) -> str:
    """The key of one feature entry: the features ``[h_atoms...]`` (and energies) of
    backbone ``model`` (:func:`model_key`) on ``positions[i] @ rotations[i].T``."""
    return content_key("features", model, np.asarray(positions, dtype=np.float64),
                       np.asarray(rotations, dtype=np.float64),
                       np.asarray(numbers).astype(np.int64), [int(a) for a in atoms],
                       bool(with_energy))


class FeatureCache:
    """The shared cache of one command (module docstring).

    Parameters
    ----------
    root : the directory (created when missing, marked as ours)
    max_bytes : the size cap (default :data:`ENV_MAX`, else :data:`DEFAULT_MAX_BYTES`)
    log : called with one line for what a user must know (a damaged entry recomputed, a
        directory that cannot be written)

    A directory that cannot be created or written does not stop the run: the cache then
    reads what it can and stores nothing (:attr:`problem` says why).
    """

    def __init__(self, root, max_bytes: Optional[int] = None,
                 log: Optional[Callable[[str], None]] = None):
        self.root = Path(root)
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self.max_bytes = int(max_bytes_from_env() if max_bytes is None else max_bytes)
        self.problem: Optional[str] = None
        self._lock = threading.Lock()
        self._reused: List[str] = []
        self._written: List[str] = []
        self._damaged = 0
        self.store: Optional[TaskStore] = None
        try:
            self.store = TaskStore(self.root, on_damaged=self._on_damaged)
        except OSError as exc:
            self._disable(f"cannot be created or written ({type(exc).__name__}: "
                          f"{exc.strerror or exc})")
            try:
                # a read-only cache of ours: read it, store nothing
                self.store = TaskStore(self.root, self._on_damaged, readonly=True)
            except (OSError, ValueError):
                self.store = None
        self.writable = self.problem is None

    def _disable(self, why: str) -> None:
        if self.problem is None:
            self.problem = f"the feature cache {why}: features are computed and not stored"
            self.log(f"cache: {self.root} {why}; running without storing features")

    def _on_damaged(self, kind: str, key: str, reason: str) -> None:
        with self._lock:
            self._damaged += 1
        self.log(f"cache: the {kind} entry {key[:12]} is damaged ({reason}); computing it "
                 "again")

    def get(self, kind: str, key: str) -> Optional[Tuple[Dict[str, np.ndarray], Dict]]:
        """A usable entry, or ``None`` (missing, damaged, removed meanwhile)."""
        if self.store is None:
            return None
        try:
            found = self.store.get(kind, key)
        except OSError:
            return None
        if found is not None:
            with self._lock:
                self._reused.append(f"{kind}/{key}")
        return found

    def reject(self, kind: str, key: str, reason: str) -> None:
        """An entry that passed the store's checks but does not fit what its reader asked
        for (a shape, a missing array): reported and counted as damaged, no longer listed
        as reused; its work is done again and the entry rewritten."""
        with self._lock:
            name = f"{kind}/{key}"
            if name in self._reused:
                self._reused.remove(name)
        if self.store is not None:
            self.store.forget(kind, key)
        self._on_damaged(kind, key, reason)

    def put(self, kind: str, key: str, arrays: Dict[str, Optional[np.ndarray]],
            meta: Dict) -> bool:
        """Store an entry (atomically); ``False`` when the cache cannot be written."""
        if self.store is None or not self.writable:
            return False
        try:
            self.store.save(kind, key, arrays, meta)
        except OSError as exc:
            self.writable = False
            self._disable(f"cannot be written ({type(exc).__name__}: {exc.strerror or exc})")
            return False
        with self._lock:
            self._written.append(f"{kind}/{key}")
        return True

    def mark(self) -> Tuple[int, int]:
        """A position in the record (:meth:`since`)."""
        with self._lock:
            return len(self._reused), len(self._written)

    def since(self, mark: Tuple[int, int]) -> Dict:
        """What was reused and written after ``mark``: ``{"reused": [...], "written":
        [...]}`` (``KIND/KEY``), for one backbone's record."""
        with self._lock:
            return {"reused": list(self._reused[mark[0]:]),
                    "written": list(self._written[mark[1]:])}

    def record(self) -> Dict:
        """What this command did with the cache (results.json; no path: the directory is
        the user's own): counts, the damaged entries recomputed, and any problem."""
        with self._lock:
            return {"used": self.store is not None, "reused": len(self._reused),
                    "written": len(self._written), "damaged_recomputed": self._damaged,
                    "problem": self.problem}

    def close(self) -> Tuple[int, int]:
        """Evict down to the cap (never an entry this command used). ``(removed, bytes)``."""
        if self.store is None or not self.writable:
            return 0, 0
        try:
            return self.store.evict(self.max_bytes)
        except OSError:
            return 0, 0

    def info(self) -> StoreInfo:
        if self.store is None:
            return StoreInfo(entries={}, bytes={}, oldest_use=None, newest_use=None)
        return self.store.info()


def open_cache(cache=None, log: Optional[Callable[[str], None]] = None,
               max_bytes: Optional[int] = None) -> Optional[FeatureCache]:
    """The :class:`FeatureCache` a ``cache`` option names (:func:`resolve_cache_dir`), or
    ``None`` for none. A :class:`FeatureCache` is returned as it is."""
    if isinstance(cache, FeatureCache):
        return cache
    root = resolve_cache_dir(cache)
    return None if root is None else FeatureCache(root, max_bytes=max_bytes, log=log)
