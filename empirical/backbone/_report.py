"""Learning curves of trained backbones (validation force and energy MAE per epoch),
drawn and written through :mod:`empirical.render` (one dpi, fixed PNG metadata: a rerun
writes the same bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from spanthm.io import atomic_write_bytes

from ..render import png_bytes, pyplot
from ._checkpoint import checkpoint_name, read_checkpoint

__all__ = ["plot_learning_curves", "learning_curves_png"]


def plot_learning_curves(checkpoints: Iterable, out_png) -> Path:
    """Plot validation force MAE (meV/A) and energy MAE (meV) per epoch for each checkpoint
    (its ``metadata.history``), log scale, one line per backbone; written atomically
    (:func:`spanthm.io.atomic_write_bytes`). Returns the path."""
    out = Path(out_png)
    atomic_write_bytes(out, learning_curves_png(checkpoints))
    return out


def learning_curves_png(checkpoints: Iterable) -> bytes:
    """The figure of :func:`plot_learning_curves` as PNG bytes (:func:`empirical.render.png_bytes`:
    the same checkpoints give the same bytes)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for path in checkpoints:
        blob = read_checkpoint(path)
        hist = blob["metadata"].get("history", [])
        if not hist:
            continue
        stem = checkpoint_name(path)
        label = f"{Path(path).parent.name if stem in ('backbone', 'last', 'best') else stem} (seed {blob['seed']})"
        epochs = [h["epoch"] for h in hist]
        axes[0].plot(epochs, [h["val_force_mae_meV_per_A"] for h in hist], label=label)
        axes[1].plot(epochs, [h["val_energy_mae_meV"] for h in hist], label=label)
    axes[0].set_ylabel("validation force MAE [meV/A]")
    axes[1].set_ylabel("validation energy MAE [meV]")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].axhline(30.0, color="k", ls="--", lw=0.8, label="goal 30 meV/A")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)
