"""glibc's allocator, set for torch inference on the CPU (docs/method.md §2.11).

By default glibc adapts its mmap threshold: after the first large block is freed, blocks
of that size come from the heap and are reused. Setting any of its ``MALLOC_*_``
variables switches that adaptation off, and Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_``
for every worker it spawns. Every intermediate tensor above 128 KiB is then a fresh
``mmap`` and page faults on first touch: a forward pass of our backbone took 14 ms per
aspirin configuration in a Dask worker against 7.5 ms in a plain process (measured,
one thread). :func:`tune_malloc` sets the two thresholds explicitly (mmap above 32 MiB,
trim above 256 MiB of free heap), which gives back the reuse (5.4 ms in either process).
It changes no number: only where memory comes from. It is called once per process by the
``empirical`` command and by the sweep's worker tasks; elsewhere it is left to the caller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks above this are mmap-ed (glibc's ceiling for the setting on 64-bit: 32 MiB).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before it is returned to the system.
TRIM_THRESHOLD = 256 * 1024 * 1024

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds once per process (see the module docstring);
    ``True`` when they were set, ``False`` off glibc (nothing to do)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):     # musl and other libcs: no mallopt
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
