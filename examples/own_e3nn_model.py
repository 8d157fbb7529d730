"""Diagnose your own e3nn model: e3nn's gate-points network wrapped in the two protocol methods.

Any object with ``irreps_out`` (e3nn Irreps of its per-atom features) and
``node_features(positions, numbers) -> Tensor (n_atoms, irreps_out.dim)`` can be diagnosed;
``energy(positions, numbers)`` is optional (it enables R2_inj). Here the model is e3nn's own
``gate_points_2101.Network`` (random-initialized, seeded; load your trained weights instead),
whose per-atom outputs carry l <= 2, so a degree-d probe should stop at l = 2d.

    python examples/own_e3nn_model.py [--frames 1000]
"""

import argparse

import torch
from e3nn import o3
from e3nn.nn.models.gate_points_2101 import Network

import empirical

SPECIES = [1, 6, 8]


class GatePoints:
    """The wrapper a user writes: irreps_out + node_features (+ energy if the model has one)."""

    def __init__(self, net: Network):
        self.net, self.irreps_out = net.eval(), net.irreps_out

    def node_features(self, positions: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        pos = positions.to(torch.float32)                     # the network's dtype
        z = torch.nn.functional.one_hot(torch.as_tensor(
            [SPECIES.index(int(n)) for n in numbers]), len(SPECIES)).to(pos.dtype)
        return self.net({"pos": pos, "z": z})


def build(seed: int = 0) -> GatePoints:
    torch.manual_seed(seed)
    net = Network(irreps_in=None, irreps_hidden="16x0e+16x0o+8x1e+8x1o+8x2e+8x2o",
                  irreps_out="8x0e+8x1o+8x2e", irreps_node_attr=f"{len(SPECIES)}x0e",
                  irreps_edge_attr=o3.Irreps.spherical_harmonics(2), layers=2, max_radius=5.0,
                  number_of_basis=8, radial_layers=1, radial_neurons=32, num_neighbors=16.0,
                  num_nodes=21, reduce_output=False)
    return GatePoints(net)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    result = empirical.diagnose(backbones=[build()], names=["gate-points"], dataset="aspirin",
                                degrees=(1, 2), frames=args.frames, n_boot=200, k_sweep=())
    for d, s in sorted(result.summaries.items()):
        print(f"d={d}: predicted ceiling {s.ceiling}, measured {s.measured_ceiling}, "
              f"rho {[None if v is None else round(v, 2) for _, v in sorted(s.rho.items())]}")
    result.save("runs/own_e3nn_model")
