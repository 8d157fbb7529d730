"""Backbones (docs/method.md §2.2): a NequIP-style e3nn model, its training, and the protocol.

The backbone protocol: any object with

* ``irreps_out`` (e3nn ``Irreps`` of its per-atom features) and
* ``node_features(positions, numbers) -> Tensor[n_atoms, irreps_out.dim]`` (positions a
  float tensor ``(n_atoms, 3)`` in Angstrom, numbers an integer tensor ``(n_atoms,)``),
* optionally ``energy(positions, numbers)`` (a scalar in eV, differentiable in positions),
  which enables the injected-residual metric,

can be diagnosed. :func:`load` returns this package's checkpoints as such an object;
:func:`check_protocol` validates any candidate.
"""

from ._checkpoint import (CheckpointError, checkpoint_name, compress_checkpoint, load,
                          read_checkpoint, save_checkpoint, shipped, shipped_paths)
from ._gate_points import GatePointsBackbone
from ._model import (MAX_CHANNELS, MAX_L, MAX_LAYERS, Backbone, BackboneConfig, BackboneLayer,
                     estimate_size, hidden_irreps)
from ._protocol import (EQUIVARIANCE_TOLERANCE, check_protocol, equivariance_error,
                        equivariance_tolerance, model_device, model_dtype, supports)
from ._report import plot_learning_curves
from ._train import (MAX_BATCH_SIZE, MAX_EPOCHS, TrainSettings, dataset_statistics, evaluate,
                     train, training_bytes)

__all__ = ["GatePointsBackbone", "Backbone", "BackboneLayer", "BackboneConfig", "hidden_irreps",
           "load", "shipped", "save_checkpoint", "read_checkpoint", "CheckpointError", "train",
           "TrainSettings", "evaluate", "dataset_statistics", "check_protocol",
           "equivariance_error", "EQUIVARIANCE_TOLERANCE", "equivariance_tolerance", "supports",
           "model_dtype", "model_device", "compress_checkpoint", "checkpoint_name",
           "shipped_paths", "MAX_CHANNELS", "MAX_L", "MAX_LAYERS", "MAX_EPOCHS", "MAX_BATCH_SIZE",
           "estimate_size", "plot_learning_curves", "training_bytes"]
