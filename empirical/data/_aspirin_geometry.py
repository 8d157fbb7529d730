"""Starting geometry of aspirin (acetylsalicylic acid, C9H8O4) written down by hand.

Built in this file from standard bond lengths (aromatic C-C 1.39 A, C-H 1.08-1.09 A,
C-O 1.35-1.37 A, C=O 1.20-1.21 A, O-H 0.97 A, C-C single 1.48-1.50 A) on a planar benzene
ring, with the acetyl group turned out of the ring plane so that no two atoms start closer
than 2 A unless they are bonded or bonded to a common atom. It is only a starting point: generation optimizes it with
GFN2-xTB (the method of the MD) before anything else and checks that the optimized
structure still has exactly the bonds listed in :data:`BONDS`.

Atom order (fixed; the shipped dataset uses it):

====  =====  ===========================================
idx   label  role
====  =====  ===========================================
0     C1     ring C bearing the ester O (acetoxy)
1     C2     ring C bearing the carboxylic acid
2-5   C3-C6  ring CH carbons (C3 next to C2, C6 next to C1)
6     C7     carboxylic-acid C
7     O8     carboxylic-acid carbonyl O (C7=O8)
8     O9     carboxylic-acid hydroxyl O
9     O10    ester O (C1-O10-C11)
10    C11    acetyl carbonyl C
11    O12    acetyl carbonyl O (C11=O12)
12    C13    acetyl methyl C
13-16 H3-H6  ring H on C3..C6
17    H9     acid H on O9
18-20 H13    methyl H on C13
====  =====  ===========================================

The marked bond of the diagnostic (docs/method.md §2.3) is the carboxylic-acid C=O: atoms
(6, 7), C7 -> O8.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SYMBOLS", "LABELS", "BONDS", "MARKED_BOND", "initial_positions"]

SYMBOLS = ["C"] * 7 + ["O", "O", "O", "C", "O", "C"] + ["H"] * 8
LABELS = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "O8", "O9", "O10", "C11", "O12", "C13",
          "H3", "H4", "H5", "H6", "H9", "H13a", "H13b", "H13c"]
BONDS = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5),  # ring
         (1, 6), (6, 7), (6, 8), (8, 17),                 # carboxylic acid
         (0, 9), (9, 10), (10, 11), (10, 12),             # acetoxy
         (12, 18), (12, 19), (12, 20),                    # methyl H
         (2, 13), (3, 14), (4, 15), (5, 16)]              # ring H
MARKED_BOND = {"name": "carboxylic-acid C=O", "atoms": [6, 7], "labels": ["C7", "O8"]}


def _unit(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([np.cos(t), np.sin(t), 0.0])


def initial_positions() -> np.ndarray:
    """Hand-built Cartesian coordinates in Angstrom, shape (21, 3), in the order above."""
    pos = np.zeros((21, 3))
    ring_angle = [90.0 + 60.0 * k for k in range(6)]  # C1 at 90 deg, counter-clockwise
    for k, ang in enumerate(ring_angle):
        pos[k] = 1.39 * _unit(ang)
    for k, idx in zip(range(2, 6), range(13, 17)):     # ring H
        pos[idx] = pos[k] + 1.08 * _unit(ring_angle[k])
    pos[6] = pos[1] + 1.48 * _unit(150.0)              # C7
    pos[7] = pos[6] + 1.21 * _unit(90.0)               # O8 (=O)
    pos[8] = pos[6] + 1.35 * _unit(210.0)              # O9 (-OH)
    pos[17] = pos[8] + 0.97 * _unit(150.0)             # H9
    pos[9] = pos[0] + 1.37 * _unit(90.0)               # O10
    pos[10] = pos[9] + 1.36 * _unit(30.0)              # C11
    pos[11] = pos[10] + 1.20 * np.array([0.0, 0.5, np.sqrt(3) / 2])  # O12, out of plane
    pos[12] = pos[10] + 1.50 * _unit(0.0)              # C13
    axis = (pos[12] - pos[10]) / np.linalg.norm(pos[12] - pos[10])
    u = np.cross(axis, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    tilt = np.deg2rad(180.0 - 109.47)
    for i, psi in enumerate(np.deg2rad([60.0, 180.0, 300.0])):
        direction = np.cos(tilt) * axis + np.sin(tilt) * (np.cos(psi) * u + np.sin(psi) * v)
        pos[18 + i] = pos[12] + 1.09 * direction
    return pos
