"""A one-line progress bar on stderr for long runs (no dependency)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``[#####.....]  42.0% 420/1000 features: backbone 2/4  ETA 1.3 min``.

    ``advance(n, label)`` adds ``n`` units of work; the bar redraws at most twice a second
    and only when enabled (``enabled=None``: when stderr is a terminal)."""

    def __init__(self, total: float, enabled=None, stream=None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.enabled = max(float(total), 1e-9), bool(enabled)
        self.done, self.label = 0.0, ""
        self.start = time.perf_counter()
        self.last = 0.0

    def advance(self, n: float = 1.0, label: str = None) -> None:
        self.done += n
        if label is not None:
            self.label = label
        self._draw()

    def set_label(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self.start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        self.stream.write(f"\r[{bar}] {100 * frac:5.1f}%  {self.label:<36.36s} "
                          f"{elapsed / 60:4.1f} min, ETA {eta / 60:4.1f} min ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.done = self.total
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
