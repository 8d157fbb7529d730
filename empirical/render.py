"""One rendering module for every report (diagnose, profile, survey, sweep, C5, controls,
compare, training curves): numbers, intervals, Markdown tables, and PNG figures.

Every report writes a missing value the same way (:data:`MISSING`, ``"undefined"``: a
value that was not measured, or that has no value, such as the correlation of a constant
prediction), and every PNG the same way (:func:`png_bytes`: one :data:`DPI`, fixed
metadata :data:`PNG_METADATA`, so a rerun writes the same bytes).
"""

from __future__ import annotations

import io
from typing import Optional, Sequence

__all__ = ["MISSING", "DPI", "PNG_METADATA", "num", "interval", "with_interval", "table",
           "pyplot", "png_bytes"]

#: How every report writes a value that is absent or undefined.
MISSING = "undefined"
#: Resolution of every PNG the package writes.
DPI = 110
#: PNG text chunks: none. matplotlib would otherwise write its version ("Software"), and a
#: figure with a date would differ between runs; with this a rerun is byte-identical.
PNG_METADATA = {"Software": None}


def num(x, decimals: int = 3, signed: bool = False) -> str:
    """``x`` with ``decimals`` decimals (a leading ``+`` with ``signed``), :data:`MISSING`
    for ``None``; a value that rounds to zero is written without a minus sign.

    >>> num(0.91234), num(-0.0001), num(None), num(0.5, 1, signed=True)
    ('0.912', '0.000', 'undefined', '+0.5')
    """
    if x is None:
        return MISSING
    x = float(x)
    if round(x, decimals) == 0:
        x = 0.0
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def interval(ci, decimals: int = 3) -> str:
    """``[low, high]`` of an interval (an :class:`~empirical.diagnostic.statistics.Interval`
    or a pair), ``[undefined]`` when it or a bound is absent.

    >>> interval((0.1, 0.25)), interval(None), interval((None, 0.2))
    ('[0.100, 0.250]', '[undefined]', '[undefined]')
    """
    bounds = _bounds(ci)
    if bounds is None:
        return f"[{MISSING}]"
    return f"[{num(bounds[0], decimals)}, {num(bounds[1], decimals)}]"


def with_interval(x, ci, decimals: int = 3) -> str:
    """``x [low, high]``; :data:`MISSING` alone when ``x`` is absent.

    >>> with_interval(0.5, (0.4, 0.6), 2), with_interval(None, (0.4, 0.6))
    ('0.50 [0.40, 0.60]', 'undefined')
    """
    if x is None:
        return MISSING
    return f"{num(x, decimals)} {interval(ci, decimals)}"


def _bounds(ci) -> Optional[tuple]:
    if ci is None:
        return None
    if hasattr(ci, "low") and hasattr(ci, "high"):
        low, high = ci.low, ci.high
    else:
        if len(ci) != 2:
            return None
        low, high = ci
    if low is None or high is None:
        return None
    return low, high


def table(header: Sequence[str], rows: Sequence[Sequence[object]],
          align: Optional[str] = None) -> str:
    """A Markdown table; ``align`` one character per column (``l``, ``r``, ``c``), default
    left. Cells are written with ``str`` (format numbers with :func:`num` first).

    >>> print(table(["l", "rho"], [[4, num(0.913)]], align="rr"))
    | l | rho |
    | ---: | ---: |
    | 4 | 0.913 |
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"{len(align)} alignments for {len(header)} columns")
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(str(h) for h in header) + " |",
             "| " + " | ".join(marks[a] for a in align) + " |"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under {len(header)} columns")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed), with
    matplotlib's default style restored: a figure must not depend on what another library
    set in this process (importing MACE sets ``font.size`` to 8), or a rerun would not be
    byte-identical. Our figures set what they need explicitly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcdefaults()
    return plt


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes (:data:`DPI`, :data:`PNG_METADATA`: byte-identical across
    reruns); the figure is closed, on an error too."""
    plt = pyplot()
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
        return buf.getvalue()
    finally:
        plt.close(fig)
