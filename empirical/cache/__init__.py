"""The feature cache every command shares, and the content-keyed store under it
(docs/method.md §2.12).

::

    _store   content keys -> checked, atomic ``.npz`` entries (LRU order, eviction, clear)
    _cache   FeatureCache: where the cache lives, what a key names, what a run reused

``empirical cache info`` and ``empirical cache clear`` are :func:`cache_info` and
:meth:`TaskStore.clear` on :func:`resolve_cache_dir`.
"""

from ._cache import (CACHE_CHUNK, DEFAULT_MAX_BYTES, ENV_DIR, ENV_MAX, FeatureCache,
                     default_cache_dir, features_key, max_bytes_from_env, model_key, open_cache,
                     parse_size,
                     resolve_cache_dir)
from ._store import KINDS, MARKER, STORE_VERSION, DamagedEntry, StoreInfo, TaskStore, content_key

__all__ = ["FeatureCache", "TaskStore", "StoreInfo", "DamagedEntry", "content_key",
           "features_key", "model_key", "open_cache", "default_cache_dir",
           "resolve_cache_dir", "parse_size", "max_bytes_from_env", "CACHE_CHUNK", "DEFAULT_MAX_BYTES", "ENV_DIR",
           "ENV_MAX", "KINDS", "MARKER", "STORE_VERSION"]
