"""Write the shipped aspirin data as extended XYZ for MACE's trainer (``mace_run_train``).

::

    python examples/mace_aspirin/prepare.py                    # -> runs/mace-aspirin/data/
    python examples/mace_aspirin/prepare.py --train 500 --valid 100 --test 500 --seed 0

The shipped GFN2-xTB aspirin data (:func:`empirical.data.load`, ``"aspirin"``: positions in
Angstrom, energies in eV, forces in eV/Angstrom, the units MACE expects) is split with
:func:`empirical.data.make_splits` (seeded, random, non-overlapping; the frame indices of each
part are written to ``splits.json``) and each part is written with ASE's extxyz writer: the
energy under ``REF_energy`` in each frame's info line and the forces as the per-atom array
``REF_forces`` (MACE's default ``--energy_key`` / ``--forces_key``; names other than
``energy``/``forces`` keep ASE from taking them for calculator results). Molecules are not
periodic (``pbc=F``, no cell).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ase
import ase.io
import numpy as np

from empirical.data import load, make_splits

PARTS = ("train", "valid", "test")


def frames(dataset, indices):
    """ASE ``Atoms`` of the given frames, with ``REF_energy`` (info) and ``REF_forces``."""
    out = []
    for i in indices:
        atoms = ase.Atoms(numbers=dataset.numbers, positions=dataset.positions[i], pbc=False)
        atoms.info["REF_energy"] = float(dataset.energies[i])
        atoms.info["frame"] = int(i)
        atoms.arrays["REF_forces"] = np.asarray(dataset.forces[i], dtype=np.float64)
        out.append(atoms)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mace-aspirin/data"))
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--valid", type=int, default=100)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dataset = load("aspirin")
    splits = make_splits(len(dataset.positions),
                         {"train": args.train, "valid": args.valid, "test": args.test},
                         seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        path = args.out / f"{part}.xyz"
        ase.io.write(path, frames(dataset, splits[part]), format="extxyz")
        print(f"{path}: {splits.sizes[part]} frames")
    (args.out / "splits.json").write_text(json.dumps(
        {"dataset": dataset.metadata.get("source"), **splits.to_dict()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
