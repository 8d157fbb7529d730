"""Plain helpers shared by several test files (fixtures live in ``conftest.py``).

Import them as ``from _helpers import toy_dataset``: pytest puts ``tests/`` on the path.
"""

from __future__ import annotations

import json
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from empirical.data import Dataset
from empirical.runtime import default_dtype


def toy_dataset(n: int = 600, atoms: int = 4, seed: int = 0, marked=(0, 1)) -> Dataset:
    """Random small 'molecules': an invariant energy (the sum of pair distances) plus noise;
    the marked pair (atoms 0 and 1) never coincides."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(scale=1.2, size=(n, atoms, 3))
    pos[:, 1] = pos[:, 0] + rng.normal(size=(n, 3))
    d = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    energies = d.sum(axis=(1, 2)) / 2 + rng.normal(scale=0.05, size=n)
    return Dataset(positions=pos, numbers=np.array([6, 8] + [1] * (atoms - 2)),
                   energies=energies, forces=np.zeros_like(pos),
                   metadata={"source": "toy", "marked_bond": {"atoms": list(marked)}})


class WritesAFile:
    """Unpickling this runs ``open(marker, "w").write("ran")``: a stand-in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def crafted_pickle(path, marker, **entries) -> Path:
    """Write at ``path`` (parents created) a pickled checkpoint dict whose ``state_dict``
    writes ``marker`` when unpickled, beside ``entries``. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": WritesAFile(marker), **entries}))
    return path


@dataclass
class SavedPayload:
    """A stand-in for the result of one ``empirical reproduce`` step: :meth:`save` writes
    ``payload`` as the step's ``results.json`` (one file set)."""

    payload: dict
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.payload)

    def save(self, folder, overwrite: bool = False) -> None:
        from empirical.io import write_file_set

        write_file_set(folder, {"results.json": json.dumps(self.payload).encode()},
                       overwrite=overwrite)


@contextmanager
def dask_client(**cluster_options) -> Iterator:
    """A ``distributed.Client`` of a ``LocalCluster(**cluster_options)`` (no dashboard),
    both closed after the block."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(dashboard_address=":0", **cluster_options)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def rotation(seed: int) -> torch.Tensor:
    """A Haar-random rotation matrix (float64), the same for the same ``seed``."""
    return torch.tensor(Rotation.random(random_state=seed).as_matrix(), dtype=torch.float64)


def wigner_D(irreps, matrix: torch.Tensor) -> torch.Tensor:
    """e3nn's representation matrix of ``irreps`` at ``matrix`` (float64: e3nn builds its
    generators in the default dtype, set here for the call and restored after it); a
    float32 ``matrix`` is read in float64."""
    from e3nn import o3

    with default_dtype(torch.float64):
        return o3.Irreps(irreps).D_from_matrix(matrix.to(torch.float64))
