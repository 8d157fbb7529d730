r"""nequip 0.19 models as backbones of the diagnostic.

::

    from . import nequip as nequip_adapter
    bb = nequip_adapter.load("runs/.../best.ckpt")   # or a .nequip.zip package
    bb.irreps_out, bb.L, bb.origin       # 32x0e+...+32x2o, 2, "nequip 0.19.1: runs/..."
    h = bb.node_features(positions, numbers)         # (n_atoms, irreps_out.dim)
    e = bb.energy(positions, numbers)                # nequip's total energy, eV
    empirical.diagnose(backbones=[bb], dataset="aspirin")

What the wrapper does, on nequip's own machinery only (nothing of nequip is re-implemented):

* :func:`load` reads a checkpoint (``.ckpt``, written by ``nequip-train``) or a packaged
  model (``.nequip.zip``, written by ``nequip-package``) with
  ``nequip.model.saved_models.load_saved_model`` (eager mode), after
  ``nequip.utils.global_state.set_global_state()``, which nequip requires before it builds a
  model. That call sets process-wide state (torch's default dtype to float64, a global seed);
  :func:`load` restores the default dtype and the torch, numpy and ``random`` generator
  states afterwards (nequip's other one-time settings stay: e3nn optimization defaults, the
  TorchScript fusion strategy, torch.multiprocessing's sharing strategy).
  :func:`from_model` wraps a nequip ``GraphModel`` already in memory.
* The input graph of one configuration is built as nequip builds it for its ASE calculator:
  ``nequip.data.from_dict`` with positions (float64, nequip's data dtype; float32 positions
  are accepted and cast, differentiably) and atomic numbers, then nequip's
  ``ChemicalSpeciesToAtomTypeMapper`` (atomic numbers to the model's type indices, through
  the model's ``type_names``) and ``NeighborListTransform`` at the model's ``r_max`` (and its
  per-edge-type cutoffs, if it has them) from ``nequip.data.transforms``.
* Features: a forward hook on one interaction layer (``ConvNetLayer``) captures its output
  field ``node_features`` (``AtomicDataDict.NODE_FEATURES_KEY``), the per-atom features
  after the layer's gate nonlinearity (and residual update, if any); ``irreps_out`` is that
  layer's ``irreps_out["node_features"]``. By default the layer is the last one whose
  features still carry ``l > 0``: a NequIP GNN's final layer is scalar-only, so with
  ``num_layers`` layers it is layer ``num_layers - 2`` (``model.func.layer{n-2}_convnet``),
  whose features carry every ``l <= l_max`` the layer can reach. ``layer=`` picks another.
* Energy: the model's ``total_energy`` output (``AtomicDataDict.TOTAL_ENERGY_KEY``). While
  the wrapper runs the model, the force module's ``do_derivatives`` flag is switched off
  (and restored afterwards), so nequip does not take (and free) the gradient itself and the
  energy stays differentiable in the positions; ``-grad`` of it is nequip's force.

Outputs take the dtype of the positions given (so that ``irreps_out.D_from_matrix`` in the
same dtype applies to them); :meth:`NequIPBackbone.parameters` exposes the model's weights,
from which the diagnostic takes the model's dtype for its inputs. Outputs carry autograd
history only when the positions require grad (and grad is enabled): then with respect to the
positions, and for a model from :func:`from_model` also to its trainable weights; :func:`load`
freezes the weights it loads.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from e3nn import o3

from ..data import CHEMICAL_SYMBOLS

from ..runtime import default_dtype, max_l
from ._base import FrameworkBackbone
from ._entry import BackboneEntry
from ._framework import framework_version, preserved_process_state
from ._trust import UntrustedCheckpoint, require_trust

__all__ = ["load", "from_model", "from_spec", "available", "NequIPBackbone",
           "NequIPAdapterError", "NequIPMissing", "PREFIX", "REQUIREMENT", "MISSING_MESSAGE",
           "UntrustedCheckpoint"]

#: Spec prefix: ``--backbones nequip:PATH``.
PREFIX = "nequip"

#: The nequip versions this adapter is written against.
REQUIREMENT = "nequip>=0.19,<0.20"
#: What the user is told when nequip is absent (or of another minor version).
MISSING_MESSAGE = "the nequip adapter needs nequip 0.19: pip install 'spectral-ceilings[nequip]'"

_SUPPORTED = (0, 19)
_CONVNET = "ConvNetLayer"   # class name, not the class: a packaged model has its own copy


class NequIPAdapterError(ValueError):
    """A nequip model or input the adapter cannot use (the message names the problem)."""


class NequIPMissing(ImportError, NequIPAdapterError):
    """nequip is not installed, cannot be imported, or is not version 0.19."""


def _nequip_version() -> str:
    """Import nequip and return its version; raise :class:`NequIPMissing` otherwise."""
    return framework_version("nequip", _SUPPORTED, NequIPMissing, MISSING_MESSAGE)


def _preserved_global_state():
    """Restore torch's default dtype, the generator states and ``PL_GLOBAL_SEED`` after
    nequip's ``set_global_state`` (which seeds and sets float64); nequip's other one-time
    settings (TorchScript flags in ``os.environ``) stay, as nequip needs them."""
    return preserved_process_state(environ=("PL_GLOBAL_SEED",))


def _species_map(type_names: List[str], given: Optional[Dict[str, str]]) -> Dict[str, str]:
    """Chemical symbol -> model type name (nequip's ``chemical_species_to_atom_type_map``)."""
    if given is None:
        unknown = [t for t in type_names if t not in CHEMICAL_SYMBOLS[1:]]
        if unknown:
            raise NequIPAdapterError(
                f"the model's type names {type_names} are not all chemical symbols "
                f"({unknown} are not): give chemical_species_to_atom_type_map, e.g. "
                f"{{'C': {type_names[0]!r}, ...}}")
        return {t: t for t in type_names}
    out = {str(k): str(v) for k, v in dict(given).items()}
    for symbol, name in out.items():
        if symbol not in CHEMICAL_SYMBOLS[1:]:
            raise NequIPAdapterError(f"chemical_species_to_atom_type_map: {symbol!r} is not a "
                                     "chemical symbol")
        if name not in type_names:
            raise NequIPAdapterError(f"chemical_species_to_atom_type_map: {symbol!r} maps to "
                                     f"{name!r}, which is not one of the model's type names "
                                     f"{type_names}")
    return out


def _graph_model(model):
    """The ``GraphModel`` in ``model`` (itself, or the sole model of a ``ModuleDict``)."""
    if isinstance(model, torch.nn.ModuleDict):
        if len(model) != 1:
            raise NequIPAdapterError(f"the nequip ModuleDict holds {len(model)} models "
                                     f"({list(model.keys())}): pass one of them")
        model = next(iter(model.values()))
    if not getattr(model, "is_graph_model", False):
        raise NequIPAdapterError(f"{type(model).__name__} is not a nequip GraphModel (a model "
                                 "from a nequip builder, checkpoint or package)")
    if getattr(model, "is_compile_graph_model", False):
        raise NequIPAdapterError("a train-time compiled nequip model cannot be hooked: load it "
                                 "in eager mode (compile_mode='eager')")
    return model


def _node_field(module) -> Optional[o3.Irreps]:
    irreps = getattr(module, "irreps_out", None)
    if isinstance(irreps, dict) and irreps.get("node_features") is not None:
        return o3.Irreps(irreps["node_features"])
    return None


def _select_layer(model, layer):
    """``(name, module, irreps)`` of the interaction layer whose ``node_features`` are read."""
    convs = [(name, m) for name, m in model.named_modules() if type(m).__name__ == _CONVNET]
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise NequIPAdapterError(f"the model has no module named {layer!r}; its interaction "
                                     f"layers are {[n for n, _ in convs]}")
        module = modules[layer]
        irreps = _node_field(module)
        if irreps is None:
            raise NequIPAdapterError(f"module {layer!r} ({type(module).__name__}) does not "
                                     "output per-atom node_features")
        return layer, module, irreps
    if not convs:
        raise NequIPAdapterError("the model has no ConvNetLayer: the adapter reads the per-atom "
                                 "features of a NequIP GNN's interaction layers (models without "
                                 "per-atom l > 0 node features, such as Allegro, are not "
                                 "supported)")
    if layer is not None:
        try:
            name, module = convs[int(layer)]
        except (IndexError, ValueError, TypeError):
            raise NequIPAdapterError(f"layer {layer!r}: the model has {len(convs)} interaction "
                                     f"layers ({[n for n, _ in convs]})") from None
        return name, module, _node_field(module)
    for name, module in reversed(convs):
        irreps = _node_field(module)
        if irreps is not None and max_l(irreps) > 0:
            return name, module, irreps
    raise NequIPAdapterError("no interaction layer of the model carries l > 0 node features: "
                             "nothing to probe")


class NequIPBackbone(FrameworkBackbone):
    """A nequip model as a backbone (protocol of :mod:`empirical.backbone`).

    Build it with :func:`load` or :func:`from_model`. Attributes: ``model`` (the nequip
    ``GraphModel``), ``irreps_out``, ``L``, ``origin``, ``layer`` (name of the hooked
    module), ``type_names``, ``species_map`` (chemical symbol -> type name), ``r_max``,
    ``model_dtype``, ``nequip_version``, ``sha256`` (of the loaded file, or ``None``).
    """

    error = NequIPAdapterError
    framework = "nequip"

    def __init__(self, model, *, layer=None, chemical_species_to_atom_type_map=None,
                 type_names: Optional[Sequence[str]] = None, r_max: Optional[float] = None,
                 neighborlist_backend: Optional[str] = None, origin: Optional[str] = None,
                 sha256: Optional[str] = None):
        self.nequip_version = _nequip_version()
        from nequip.data import DEFAULT_NEIGHBORLIST_BACKEND
        from nequip.data.transforms import (ChemicalSpeciesToAtomTypeMapper,
                                            NeighborListTransform)

        model = _graph_model(model)
        metadata = dict(model.metadata)
        if type_names is None:
            if "type_names" not in metadata:
                raise NequIPAdapterError("the model carries no type_names: give type_names")
            type_names = str(metadata["type_names"]).split(" ")
        type_names = [str(t) for t in type_names]
        if "num_types" in metadata and len(type_names) != int(metadata["num_types"]):
            raise NequIPAdapterError(f"{len(type_names)} type names {type_names} for a model "
                                     f"of {metadata['num_types']} types")
        if r_max is None:
            if "r_max" not in metadata:
                raise NequIPAdapterError("the model carries no r_max: give r_max")
            r_max = float(metadata["r_max"])
        self.model = model
        self.type_names = type_names
        self.r_max = float(r_max)
        self.species_map = _species_map(type_names, chemical_species_to_atom_type_map)
        self.model_dtype = getattr(model, "model_dtype", None) or {
            "float32": torch.float32, "float64": torch.float64,
        }[metadata.get("model_dtype", "float64")]
        self.layer, self._layer_module, irreps = _select_layer(model, layer)
        self.irreps_out = o3.Irreps(irreps)
        self.L = max_l(self.irreps_out)
        self.origin = origin or (f"nequip {self.nequip_version}: python object "
                                 f"{type(model).__module__}.{type(model).__qualname__}")
        self.sha256 = sha256
        self._numbers_allowed = {CHEMICAL_SYMBOLS.index(s) for s in self.species_map}

        per_edge = metadata.get("per_edge_type_cutoff")
        neighbor_kwargs = {}
        if per_edge is not None:
            from nequip.nn.embedding.utils import cutoff_str_to_fulldict
            if isinstance(per_edge, str):
                per_edge = cutoff_str_to_fulldict(per_edge, type_names)
            neighbor_kwargs = {"per_edge_type_cutoff": per_edge, "type_names": type_names}
        self._type_mapper = ChemicalSpeciesToAtomTypeMapper(
            model_type_names=type_names, chemical_species_to_atom_type_map=self.species_map)
        self._neighbors = NeighborListTransform(
            r_max=self.r_max, backend=neighborlist_backend or DEFAULT_NEIGHBORLIST_BACKEND,
            **neighbor_kwargs)

    # -- protocol -------------------------------------------------------------------------

    def node_features(self, positions, numbers) -> torch.Tensor:
        """Per-atom features ``(n_atoms, irreps_out.dim)`` of the hooked layer for one
        configuration (positions ``(n_atoms, 3)`` in Angstrom, float32 or float64; numbers
        ``(n_atoms,)`` atomic numbers), in the positions' dtype."""
        pos, dtype = self._positions(positions)
        captured = {}

        def hook(module, inputs, output):
            captured["h"] = output["node_features"]

        handle = self._layer_module.register_forward_hook(hook)
        try:
            self._run(pos, numbers)
        finally:
            handle.remove()
        if "h" not in captured:
            raise NequIPAdapterError(f"layer {self.layer!r} did not run in the model's forward")
        return captured["h"].to(dtype)

    def energy(self, positions, numbers) -> torch.Tensor:
        """nequip's total energy (eV, a 0-d tensor in the positions' dtype), differentiable
        in ``positions``: ``-grad`` is nequip's force."""
        pos, dtype = self._positions(positions)
        out = self._run(pos, numbers)
        return out["total_energy"].reshape(()).to(dtype)

    def features_batch(self, positions, numbers, with_energy: bool = True):
        """Protocol batch path: ``positions`` ``(B, n_atoms, 3)`` -> features
        ``(B, n_atoms, irreps_out.dim)`` and energies ``(B,)`` (or ``None``), the ``B``
        configurations in one nequip batch (``AtomicDataDict.batched_from_list``)."""
        from nequip.data import AtomicDataDict

        pos = torch.as_tensor(positions)
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise NequIPAdapterError(f"positions must have shape (B, n_atoms, 3), got "
                                     f"{tuple(pos.shape)}")
        dtype = pos.dtype if pos.is_floating_point() else torch.float64
        captured = {}

        def hook(module, inputs, output):
            captured["h"] = output["node_features"]

        handle = self._layer_module.register_forward_hook(hook)
        try:
            with default_dtype(torch.float64), torch.no_grad():
                graphs = [self.graph(p, numbers) for p in pos]
                data = AtomicDataDict.batched_from_list(graphs)
                with self._energy_only():
                    out = self.model(data)
        finally:
            handle.remove()
        if "h" not in captured:
            raise NequIPAdapterError(f"layer {self.layer!r} did not run in the model's forward")
        h = captured["h"].to(dtype).reshape(pos.shape[0], pos.shape[1], -1)
        e = out["total_energy"].reshape(-1).to(dtype) if with_energy else None
        return h, e

    # -- layers and device ----------------------------------------------------------------

    @property
    def layers(self) -> tuple:
        """Names of the interaction layers (``ConvNetLayer``) with ``l > 0`` features."""
        return tuple(name for name, m in self.model.named_modules()
                     if type(m).__name__ == _CONVNET and _node_field(m) is not None
                     and max_l(_node_field(m)) > 0)

    def at_layer(self, layer) -> "NequIPBackbone":
        """The same model read at another interaction layer (an index into :attr:`layers`
        or a module name); the model is shared."""
        layers = self.layers
        if isinstance(layer, int) and not isinstance(layer, bool):
            if not -len(layers) <= layer < len(layers):
                raise NequIPAdapterError(f"layer {layer}: the model has {len(layers)} layers "
                                         f"with l > 0 features ({list(layers)})")
            layer = layers[layer]
        if layer == self.layer:
            return self
        view = copy.copy(self)
        view.layer, view._layer_module, irreps = _select_layer(self.model, layer)
        view.irreps_out = o3.Irreps(irreps)
        view.L = max_l(view.irreps_out)
        return view

    # -- helpers --------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """The model's dtype (nequip's ``model_dtype``)."""
        return self.model_dtype

    def __repr__(self) -> str:
        return (f"NequIPBackbone(irreps_out={self.irreps_out}, L={self.L}, layer={self.layer!r}, "
                f"type_names={self.type_names}, r_max={self.r_max}, origin={self.origin!r})")

    def _elements(self):
        return self._numbers_allowed, (f"type names {self.type_names}, species map "
                                       f"{self.species_map}")

    def graph(self, positions, numbers):
        """nequip's input dict for one configuration (float64 positions, type indices from
        the atomic numbers, neighbour list at ``r_max``), as the model receives it."""
        from nequip.data import from_dict

        pos, _ = self._positions(positions)
        nums = torch.from_numpy(self._numbers(numbers, pos.shape[0]))
        data = from_dict({"pos": pos.detach().cpu().to(torch.float64) if not pos.requires_grad
                          else pos.to(torch.float64), "atomic_numbers": nums.cpu()})
        data = self._neighbors(self._type_mapper(data))
        device = self.device
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in data.items()}

    @contextlib.contextmanager
    def _energy_only(self):
        """Eval mode, and the force module's ``do_derivatives`` off (nequip would otherwise
        differentiate the energy itself and free its graph); both restored afterwards."""
        modules = list(self.model.modules())
        flags = [(m, m.do_derivatives) for m in modules
                 if isinstance(getattr(m, "do_derivatives", None), bool)]
        modes = [(m, m.training) for m in modules]
        try:
            for m, _ in flags:
                m.do_derivatives = False
            self.model.eval()
            yield
        finally:
            for m, flag in flags:
                m.do_derivatives = flag
            for m, mode in modes:
                m.training = mode

    def _run(self, pos, numbers):
        # autograd history only where the positions ask for it (the weights of a frozen
        # backbone need none): cheaper, and the outputs convert to floats without warnings
        track = torch.is_grad_enabled() and pos.requires_grad
        with default_dtype(torch.float64), torch.set_grad_enabled(track):
            data = self.graph(pos, numbers)   # float64 positions: nequip's data dtype
            with self._energy_only():
                return self.model(data)


def from_model(model, *, type_names: Optional[Sequence[str]] = None,
               chemical_species_to_atom_type_map: Optional[Dict[str, str]] = None,
               r_max: Optional[float] = None, layer: Union[None, int, str] = None,
               neighborlist_backend: Optional[str] = None,
               origin: Optional[str] = None) -> NequIPBackbone:
    """Wrap a nequip model already in memory (a ``GraphModel`` from a nequip builder such as
    ``nequip.model.NequIPGNNModel``, or the ``ModuleDict`` a checkpoint holds).

    ``type_names`` and ``r_max`` default to the model's metadata; atomic numbers are mapped
    to types by ``chemical_species_to_atom_type_map`` (chemical symbol -> type name; default:
    the identity, which needs type names that are chemical symbols). ``layer``: the hooked
    interaction layer, an index into the model's ``ConvNetLayer`` modules or a module name
    (default: the last one with l > 0 features). ``origin`` is recorded as given (default
    ``"nequip <version>: python object <class>"``). The model itself is not changed
    (hooks, eval mode and flags are set only while it runs).

    Raises :class:`NequIPMissing` without nequip 0.19, :class:`NequIPAdapterError` (a
    ``ValueError``) for a model or map the adapter cannot use.
    """
    return NequIPBackbone(model, layer=layer, type_names=type_names, r_max=r_max,
                          chemical_species_to_atom_type_map=chemical_species_to_atom_type_map,
                          neighborlist_backend=neighborlist_backend, origin=origin)


def load(path, *, trusted: bool = False,
         chemical_species_to_atom_type_map: Optional[Dict[str, str]] = None,
         layer: Union[None, int, str] = None, model_key: str = "sole_model",
         neighborlist_backend: Optional[str] = None) -> NequIPBackbone:
    """Load a nequip 0.19 checkpoint (``.ckpt``) or packaged model (``.nequip.zip``) with
    nequip's own loader (``load_saved_model``, eager mode) and wrap it (:func:`from_model`).

    ``path`` is a local file (a ``nequip:`` prefix is accepted and dropped); nequip.net model
    IDs are not fetched. ``model_key`` picks the model of a multi-model file. The wrapper's
    ``origin`` is ``"nequip <version>: <path as given>"`` and ``sha256`` the file's hash.

    Both formats are code: nequip unpickles a ``.ckpt`` (``weights_only=False``) and
    imports a ``.nequip.zip`` through ``torch.package``. The file is loaded only when
    ``trusted=True`` (CLI ``--trust-checkpoints``) or it is shipped inside an installed
    package (:mod:`empirical.adapters._trust`); otherwise :class:`UntrustedCheckpoint` (a
    ``ValueError``) is raised before the file is opened.

    Raises :class:`NequIPMissing` (an ``ImportError`` and ``ValueError``) with one message
    when nequip 0.19 is not installed; :class:`NequIPAdapterError` (a ``ValueError``) for a
    missing or unreadable file.
    """
    version = _nequip_version()
    text = str(path)
    if text.startswith("nequip:"):
        text = text[len("nequip:"):]
    if text.startswith("nequip.net:"):
        raise NequIPAdapterError(f"{text!r}: nequip.net models are not fetched here; download "
                                 "the package file and give its path")
    file = Path(text)
    if not file.is_file():
        from ..io import why_not_a_file
        raise NequIPAdapterError(f"cannot read nequip model {text!r}: {why_not_a_file(file)}")
    require_trust(file, trusted, f"nequip {version}")
    from nequip.model.saved_models import load_saved_model
    from nequip.utils.global_state import set_global_state

    try:
        with _preserved_global_state():
            set_global_state()
            model = load_saved_model(str(file), compile_mode="eager", model_key=model_key)
    except NequIPAdapterError:
        raise
    except Exception as exc:  # nequip raises assertion, key and runtime errors
        raise NequIPAdapterError(f"nequip {version} could not load {text!r}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    for p in model.parameters():   # a frozen backbone, as empirical.backbone.load gives
        p.requires_grad_(False)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return NequIPBackbone(model, layer=layer,
                          chemical_species_to_atom_type_map=chemical_species_to_atom_type_map,
                          neighborlist_backend=neighborlist_backend,
                          origin=f"nequip {version}: {file}", sha256=digest)


def from_spec(spec: str, *, trusted: bool = False) -> BackboneEntry:
    """The :class:`BackboneEntry` of ``--backbones nequip:PATH`` (``spec`` is ``PATH``):
    ``source`` ``"nequip <version>: <path as given>"``, the file's hash, and in ``extra``
    ``nequip_layer`` and ``parameters`` (the model's parameter count).

    The name is the file's stem; nequip-train names its checkpoints ``best`` / ``last``, so
    for those the run directory is put in front (``run-best``)."""
    obj = load(spec, trusted=trusted)
    path = Path(spec)
    base = path.name
    for suffix in (".nequip.zip", ".ckpt"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    name = f"{path.parent.name}-{base}" if base in ("best", "last") and path.parent.name else base
    return BackboneEntry(name=name, backbone=obj, source=obj.origin, sha256=obj.sha256,
                         extra={"nequip_layer": obj.layer,
                                "parameters": int(sum(p.numel() for p in obj.parameters()))})


def available() -> List[str]:
    """nequip ships no pretrained model in its package: nothing to list."""
    _nequip_version()
    return []
