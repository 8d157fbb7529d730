"""A second architecture family: e3nn's gate-points network (``gate_points_2101.Network``)
behind the backbone protocol, for the architecture control (docs/method.md §4).

Per-atom outputs ``channels x (0e + 1o + ... + Lp)`` (natural parity), node attributes the
species one-hot, ``layers`` gated convolutions with e3nn's own radial MLP, Gaussian radial
basis and smooth cutoff at ``r_max``; float32. Random-initialized from ``seed`` (no energy
head: ``energy`` is absent, so R2_inj is undefined for it).
"""

from __future__ import annotations

from typing import Sequence

import torch
from e3nn import o3

from ..checks import check_float, check_int
from ._model import MAX_CHANNELS, MAX_L, MAX_LAYERS, MAX_R_MAX, _check_species

__all__ = ["GatePointsBackbone"]


class GatePointsBackbone:
    """e3nn gate-points network features; see the module docstring."""

    def __init__(self, L: int = 2, channels: int = 16, layers: int = 2, r_max: float = 5.0,
                 species: Sequence[int] = (1, 6, 8), seed: int = 0,
                 num_neighbors: float = 16.0):
        from e3nn.nn.models.gate_points_2101 import Network

        # the same bounds as the NequIP-style backbone, checked before anything is built
        L = check_int("L", L, 1, MAX_L, " (the backbone's highest feature degree)")
        channels = check_int("channels", channels, 1, MAX_CHANNELS)
        layers = check_int("layers", layers, 1, MAX_LAYERS)
        check_float("r_max", r_max, high=MAX_R_MAX, positive=True)
        check_float("num_neighbors", num_neighbors, positive=True)
        self.species = _check_species(list(species))
        self.L = int(L)
        hidden = o3.Irreps([(channels, (l, p)) for l in range(L + 1) for p in (1, -1)])
        out = o3.Irreps([(channels // 2, (l, (-1) ** l)) for l in range(L + 1)])
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.net = Network(irreps_in=None, irreps_hidden=hidden, irreps_out=out,
                               irreps_node_attr=f"{len(self.species)}x0e",
                               irreps_edge_attr=o3.Irreps.spherical_harmonics(L),
                               layers=layers, max_radius=r_max, number_of_basis=8,
                               radial_layers=1, radial_neurons=32,
                               num_neighbors=num_neighbors, num_nodes=20.0,
                               reduce_output=False).to(torch.float32).eval()
        finally:
            torch.random.set_rng_state(state)
        self.irreps_out = self.net.irreps_out
        #: float32 whatever torch's default dtype was at construction
        self.dtype = torch.float32

    def node_features(self, positions: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        pos = torch.as_tensor(positions).to(torch.float32)
        idx = [self.species.index(int(n)) for n in numbers]
        z = torch.nn.functional.one_hot(torch.as_tensor(idx), len(self.species)).to(pos.dtype)
        return self.net({"pos": pos, "z": z})
