"""Deterministic, seeded, non-overlapping splits of a dataset's frames.

Named parts (default ``train``, ``validation``, ``test``, ``probe``), given as fractions of
the frames or as counts. ``strategy="random"`` permutes the frames with
``numpy.random.default_rng(seed)``; ``strategy="contiguous"`` cuts the frames in order
(blocks of consecutive MD frames, which keeps time-correlated neighbours on one side of a
split; the seed is then unused). Each part's indices are sorted. A :class:`Splits` is
recorded in every output that uses it (:meth:`Splits.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Union

import numpy as np

from ._dataset import DataError

__all__ = ["Splits", "make_splits", "DEFAULT_FRACTIONS"]

DEFAULT_FRACTIONS = {"train": 0.4, "validation": 0.1, "test": 0.1, "probe": 0.4}
STRATEGIES = ("random", "contiguous")


@dataclass(frozen=True)
class Splits:
    """Frame indices per named part; ``seed``, ``strategy`` and ``sizes`` as used."""

    n_frames: int
    seed: int
    strategy: str
    indices: Dict[str, np.ndarray]

    @property
    def sizes(self) -> Dict[str, int]:
        return {k: int(v.size) for k, v in self.indices.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.indices[name]

    def to_dict(self) -> dict:
        """JSON form: ``{"n_frames", "seed", "strategy", "sizes", "indices": {name: [...]}}``."""
        return {"n_frames": self.n_frames, "seed": self.seed, "strategy": self.strategy,
                "sizes": self.sizes,
                "indices": {k: [int(i) for i in v] for k, v in self.indices.items()}}


def make_splits(n_frames: int, sizes: Mapping[str, Union[int, float]] = None, seed: int = 0,
                strategy: str = "random") -> Splits:
    """Split ``n_frames`` frames into non-overlapping named parts.

    Parameters
    ----------
    n_frames : int
        Number of frames.
    sizes : mapping name -> int or float
        Counts (ints) or fractions of ``n_frames`` (floats in (0, 1]); all of one kind.
        Fractions are floored; at least one frame per part. Default
        :data:`DEFAULT_FRACTIONS`. Frames left over belong to no part.
    seed : int
        Seed of the permutation (``strategy="random"``).
    strategy : {"random", "contiguous"}

    Raises
    ------
    DataError
        Sizes that do not fit, are not positive, or mix counts and fractions.

    Examples
    --------
    >>> s = make_splits(10, {"train": 5, "test": 3}, seed=1)
    >>> s.sizes, len(set(s["train"]) & set(s["test"]))
    ({'train': 5, 'test': 3}, 0)
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise DataError(f"cannot split {n_frames!r} frames")
    if strategy not in STRATEGIES:
        raise DataError(f"split strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise DataError(f"split seed must be an integer, got {seed!r}")
    sizes = dict(DEFAULT_FRACTIONS if sizes is None else sizes)
    if not sizes:
        raise DataError("no split parts given")
    kinds = {isinstance(v, (float, np.floating)) for v in sizes.values()}
    if len(kinds) > 1:
        raise DataError(f"split sizes mix counts and fractions: {sizes}")
    counts = {}
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DataError(f"split size of {name!r} must be a number, got {v!r}")
        if isinstance(v, (float, np.floating)):
            if not 0 < v <= 1:
                raise DataError(f"split fraction of {name!r} must lie in (0, 1], got {v}")
            counts[name] = max(1, int(np.floor(v * n_frames)))
        else:
            if v < 1:
                raise DataError(f"split count of {name!r} must be >= 1, got {v}")
            counts[name] = int(v)
    if sum(counts.values()) > n_frames:
        raise DataError(f"split sizes {counts} need {sum(counts.values())} frames, "
                        f"only {n_frames} exist")
    order = (np.random.default_rng(seed).permutation(n_frames) if strategy == "random"
             else np.arange(n_frames))
    out, start = {}, 0
    for name, c in counts.items():
        idx = np.sort(order[start:start + c])
        idx.setflags(write=False)
        out[name] = idx
        start += c
    return Splits(n_frames=int(n_frames), seed=int(seed), strategy=strategy, indices=out)
