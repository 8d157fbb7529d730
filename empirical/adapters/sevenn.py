r"""SevenNet (sevenn 0.13) models as backbones of the diagnostic.

::

    from . import sevenn as sevenn_adapter
    bb = sevenn_adapter.load("7net-0")             # pretrained, shipped in the sevenn wheel
    bb.irreps_out, bb.L, bb.layer        # 128x0e+64x1e+32x2e, 2, "3_equivariant_gate"
    h = bb.node_features(positions, numbers)       # (n_atoms, irreps_out.dim)
    e = bb.energy(positions, numbers)              # SevenNet's total energy, eV
    h, e = bb.features_batch(pos_b, numbers)       # (B, n_atoms, dim), (B,): one graph
    mf = sevenn_adapter.load("7net-mf-0", modal="PBE")   # multi-fidelity: modal required
    empirical.diagnose(backbones=["sevenn:7net-0"], dataset="aspirin")

What the wrapper does, on sevenn's own machinery only (nothing of SevenNet is
re-implemented):

* :func:`load` resolves a pretrained name (``7net-0``, ``7net-0_22may2024``, ``7net-l3i5``,
  ``7net-mf-0``, ...) with ``sevenn.util.pretrained_name_to_path``, sevenn's own name -> path
  logic, while ``sevenn.util.download_checkpoint`` is replaced by a function that refuses:
  a name whose checkpoint is not in the wheel (``7net-omat``, ``7net-omni``, ``7net-mf-ompa``,
  ...) fails with one message instead of being downloaded. Any other argument is a path to
  a SevenNet checkpoint. The checkpoint is read by ``sevenn.util.load_checkpoint``
  (``SevenNetCheckpoint``, which unpickles it: ``torch.load(weights_only=False)``) and the
  model built by its ``build_model()`` (plain e3nn, no accelerator). The checkpoints shipped
  inside the sevenn package are installed files and load without more; any other file needs
  ``trusted=True`` (:mod:`empirical.adapters._trust`), checked before the file is opened.
  Building the model initialises its modules randomly before the checkpoint's weights are
  loaded: :func:`load` restores the torch / numpy / ``random`` generator states, torch's
  default dtype (the model is built under float32, SevenNet's dtype, whatever the caller's
  default) and the environment variables afterwards. :func:`from_model` wraps an
  ``AtomGraphSequential`` already in memory.
* The input graph of a configuration is built as ``SevenNetCalculator`` builds it:
  ``sevenn.train.dataload.unlabeled_atoms_to_graph`` on an ``ase.Atoms`` (no cell, no
  periodicity; sevenn's neighbour list at the model's cutoff, matscipy when installed) and
  ``AtomGraphData.from_numpy_dict``. The edge vectors are then recomputed in torch from the
  given positions, ``pos[edge_index[1]] - pos[edge_index[0]]``, as sevenn's ``EdgePreprocess``
  and its torch-sim interface do, so that outputs are differentiable in the positions.
  Several configurations go into one graph through torch_geometric's ``Collater``, as
  sevenn's batched inference (torch-sim interface) does; the model runs in sevenn's batch
  mode (``set_is_batch_data(True)``, restored afterwards for a model that was not in it).
  Multi-fidelity models read the modal from each graph's ``data_modality``, as the
  calculator sets it.
* The model is an ``AtomGraphSequential`` (a sequence of modules acting on a data dict).
  The wrapper runs it as its ``forward`` does (``_preprocess``, then each module in turn),
  skipping the force/stress module (``force_output``, a module of
  ``sevenn.nn.force_output``): nothing differentiates the energy. When no energy is asked
  for (``features_batch(..., with_energy=False)``), the sequence stops after the read layer.
* Features: the output ``x`` (``KEY.NODE_FEATURE``) of one interaction block's last module,
  its ``EquivariantGate`` (``<i>_equivariant_gate``); ``irreps_out`` is that gate's
  ``gate.irreps_out``. ``layers`` lists every block's gate in forward order. By default the
  layer is the last one whose features still carry ``l > 0``: SevenNet's last block is
  scalar-only (``4_equivariant_gate`` of 7net-0: ``128x0e``), so for 7net-0 it is
  ``3_equivariant_gate`` (``128x0e+64x1e+32x2e``).
* Energy: the model's ``inferred_total_energy`` (``KEY.PRED_TOTAL_ENERGY``), per-species
  shift and scale included: what ``SevenNetCalculator`` returns as ``energy``.

Parity: every shipped SevenNet model is built with ``is_parity: False`` (an SO(3) model):
its edge spherical harmonics are declared even (``1x1e``), so every irrep label is ``e``
and the features are equivariant under rotations only; a roto-reflection ``-R`` does not
act on them as ``irreps_out.D_from_matrix(-R)`` (nor as any parity assignment). ``parity``
says which kind a model is (``False`` for these).

Outputs take the dtype of the positions given (float64 positions give float64 outputs of
the float32 model); ``dtype`` is the model's (float32), in which the diagnostic hands
positions over. Outputs carry autograd history only when the positions require grad (and
grad is enabled): then with respect to the positions (``-grad`` of the energy is SevenNet's
force). :func:`load` freezes the weights it loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from e3nn import o3

from ..runtime import default_dtype, max_l
from ._base import FrameworkBackbone
from ._entry import BackboneEntry
from ._framework import framework_version, preserved_process_state
from ._trust import UntrustedCheckpoint, is_installed_file, require_trust, site_relative

__all__ = ["load", "from_model", "from_spec", "available", "SevenNetBackbone",
           "SevenNetAdapterError", "SevenNetMissing", "SevenNetNotShipped", "PREFIX",
           "REQUIREMENT", "MISSING_MESSAGE", "DEFAULT_BATCH_SIZE", "UntrustedCheckpoint"]

#: Spec prefix (``--backbones sevenn:7net-0``).
PREFIX = "sevenn"
#: The sevenn versions this adapter is written against.
REQUIREMENT = "sevenn>=0.13,<0.14"
#: What the user is told when sevenn is absent (or of another minor version).
MISSING_MESSAGE = "the sevenn adapter needs sevenn 0.13: pip install 'spectral-ceilings[sevenn]'"

#: Configurations per forward pass (one graph) in :meth:`SevenNetBackbone.features_batch`.
#: Measured (bench/bench_sevenn.py, docs/adapters/sevenn.md): on CPU a SevenNet forward of one
#: 21-atom molecule is already large (its convolutions materialise ~12 kB per edge, ~4 MB
#: per configuration per tensor), so batching saves only Python overhead and more than a
#: few configurations per graph push the working set out of cache and into fresh pages.
DEFAULT_BATCH_SIZE = 4

_SUPPORTED = (0, 13)
_GATE = "EquivariantGate"
_FORCE_MODULE = "sevenn.nn.force_output"
#: The modal :func:`available` lists for a multi-fidelity model, when it has it.
_PREFERRED_MODAL = "PBE"
_resolve_lock = threading.Lock()
#: Concurrent runs of one model (``SevenNetBackbone._model_mode``): id -> (count, saved).
_mode_lock = threading.Lock()
_mode_users: Dict[int, tuple] = {}


class SevenNetAdapterError(ValueError):
    """A SevenNet model, name or input the adapter cannot use (the message names it)."""


class SevenNetMissing(ImportError, SevenNetAdapterError):
    """sevenn is not installed, cannot be imported, or is not version 0.13."""


class SevenNetNotShipped(SevenNetAdapterError):
    """A pretrained name whose checkpoint is not in the sevenn wheel (it would need a
    download, which this package never starts)."""


def _sevenn_version() -> str:
    """Import sevenn and return its version; raise :class:`SevenNetMissing` otherwise
    (sevenn raises ValueError for an old e3nn)."""
    return framework_version("sevenn", _SUPPORTED, SevenNetMissing, MISSING_MESSAGE,
                             import_errors=(ImportError, ValueError))


#: torch's default dtype, the generator states (SevenNet's initialisation consumes the
#: torch one) and ``os.environ``, restored after loading.
_preserved_global_state = preserved_process_state


class _DownloadRefused(Exception):
    def __init__(self, path, url):
        super().__init__(path)
        self.path, self.url = path, url


def _pretrained_names() -> List[str]:
    from sevenn.util import get_available_pretrained_models
    return list(get_available_pretrained_models())


def _lookup(name: str) -> Tuple[Optional[str], Optional[str]]:
    """``(path, None)`` where sevenn's ``pretrained_name_to_path`` finds ``name``'s
    checkpoint on disk, ``(None, url)`` where it would download it (it does not: the download
    function is replaced for the call). Raises ``ValueError`` for a name sevenn does not know,
    ``FileNotFoundError`` for a shipped checkpoint missing from the installation."""
    import sevenn.util as sevenn_util

    def refuse(path, url):
        raise _DownloadRefused(path, url)

    with _resolve_lock:
        original = sevenn_util.download_checkpoint
        sevenn_util.download_checkpoint = refuse
        try:
            return str(sevenn_util.pretrained_name_to_path(name)), None
        except _DownloadRefused as exc:
            return None, str(exc.url)
        finally:
            sevenn_util.download_checkpoint = original


def _pretrained_path(name: str) -> str:
    """sevenn's path for a pretrained ``name``, without a download: raises
    :class:`SevenNetNotShipped` for a checkpoint that sevenn would fetch, and
    :class:`SevenNetAdapterError` for a name sevenn does not know."""
    try:
        path, url = _lookup(name)
    except FileNotFoundError as exc:
        raise SevenNetAdapterError(f"{name!r}: the sevenn installation lacks its checkpoint "
                                   f"{exc}") from None
    except ValueError:
        raise SevenNetAdapterError(
            f"{name!r} is neither a file nor a SevenNet pretrained name (names: "
            f"{', '.join(_pretrained_names())}; shipped in this wheel: "
            f"{', '.join(_shipped_names()) or 'none'})") from None
    if path is None:
        raise SevenNetNotShipped(
            f"{name!r}: this SevenNet checkpoint is not shipped in the sevenn wheel (sevenn "
            f"would download it from {url}) and is not fetched here; download it yourself "
            f"and pass its path (with trusted=True). Shipped here: "
            f"{', '.join(_shipped_names()) or 'none'}")
    return path


@lru_cache(maxsize=None)
def _shipped_names_cached(version: str) -> Tuple[str, ...]:
    out = []
    for name in _pretrained_names():
        try:
            path, _ = _lookup(name)
        except (ValueError, FileNotFoundError):
            continue
        if path is not None and is_installed_file(path):
            out.append(name)
    return tuple(out)


def _shipped_names() -> List[str]:
    """The pretrained names whose checkpoints are files inside the installed sevenn."""
    try:
        return list(_shipped_names_cached(_sevenn_version()))
    except SevenNetMissing:
        return []


def _resolve(name_or_path) -> Tuple[Path, str, bool]:
    """``(file, display name, is a pretrained name)`` for a name or a path."""
    text = str(name_or_path)
    if text.startswith(PREFIX + ":"):
        text = text[len(PREFIX) + 1:]
    if not text:
        raise SevenNetAdapterError("empty SevenNet model name")
    file = Path(text)
    if file.is_file():     # named after the file, like MACE's: a name never holds a path
        return file, f"sevenn-{file.name}", False
    if file.exists():
        raise SevenNetAdapterError(f"{text!r} is not a file (a SevenNet checkpoint)")
    looks_like_path = os.sep in text or text.endswith((".pth", ".pt", ".ckpt"))
    if looks_like_path:
        raise SevenNetAdapterError(f"cannot read SevenNet checkpoint {text!r}: no such file")
    return Path(_pretrained_path(text)), text.lower(), True


@lru_cache(maxsize=None)
def _modal_map_of(path: str, mtime: float) -> Tuple[str, ...]:
    from sevenn.util import load_checkpoint
    with _preserved_global_state():
        config = load_checkpoint(path).config
    modal_map = config.get("_modal_map") or {}
    return tuple(modal_map)


def _canonical_modal(modal: Optional[str], available: Sequence[str],
                     name: Optional[str] = None) -> Optional[str]:
    """The model's own spelling of ``modal`` (case-insensitive, as sevenn documents it)."""
    if not available:
        if modal is not None:
            raise SevenNetAdapterError(f"modal {modal!r} given, but the model is not "
                                       "multi-fidelity (it has no modals)")
        return None
    if modal is None or str(modal) == "":
        raise SevenNetAdapterError(f"this multi-fidelity SevenNet model needs a modal: one "
                                   f"of {list(available)} (modal=..., or the spec "
                                   f"{name or 'NAME'}@{_default_modal(available)})")
    if modal in available:
        return str(modal)
    matches = [m for m in available if m.lower() == str(modal).lower()]
    if len(matches) == 1:
        return matches[0]
    raise SevenNetAdapterError(f"unknown modal {modal!r}: the model's modals are "
                               f"{list(available)}")


def _default_modal(available: Sequence[str]) -> str:
    return _PREFERRED_MODAL if _PREFERRED_MODAL in available else sorted(available)[0]


def _gates(model) -> List[Tuple[str, torch.nn.Module]]:
    return [(name, m) for name, m in model._modules.items() if type(m).__name__ == _GATE]


def _gate_irreps(module) -> o3.Irreps:
    return o3.Irreps(module.gate.irreps_out)


def _select_layer(gates, layer) -> int:
    """Index into ``gates`` of the layer whose features are read."""
    names = [n for n, _ in gates]
    if isinstance(layer, str):
        if layer not in names:
            raise SevenNetAdapterError(f"the model has no interaction layer {layer!r}; its "
                                       f"layers are {names}")
        return names.index(layer)
    if layer is not None:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not -len(names) <= int(layer) < len(names):
            raise SevenNetAdapterError(f"layer {layer!r}: the model has {len(names)} "
                                       f"interaction layers ({names})")
        return int(layer) % len(names)
    for i in reversed(range(len(gates))):
        if max_l(_gate_irreps(gates[i][1])) > 0:
            return i
    raise SevenNetAdapterError("no interaction layer of the model carries l > 0 features: "
                               "nothing to probe")


def _is_parity_model(model) -> Optional[bool]:
    """True for an O(3) model (edge harmonics of an odd vector), False for SO(3)."""
    embedding = model._modules.get("edge_embedding")
    spherical = getattr(embedding, "spherical", None)
    irreps_in = getattr(spherical, "irreps_in", None)
    if irreps_in is None:
        return None
    return o3.Irreps(irreps_in) == o3.Irreps("1x1o")


class SevenNetBackbone(FrameworkBackbone):
    """A SevenNet model as a backbone (protocol of :mod:`empirical.backbone`).

    Build it with :func:`load` or :func:`from_model`. Attributes: ``model`` (sevenn's
    ``AtomGraphSequential``), ``irreps_out``, ``L``, ``layer`` (name of the read gate),
    ``layers`` (every interaction block's gate, in forward order), ``modal`` (``None`` for a
    single-fidelity model), ``modals``, ``r_max`` (the cutoff), ``parity`` (False: SO(3)
    model), ``origin``, ``sha256`` (of the loaded file, or ``None``), ``name`` (the spec
    name), ``sevenn_version``, ``batch_size`` (configurations per graph).
    """

    error = SevenNetAdapterError
    framework = "SevenNet"
    fallback_dtype = torch.float32     # SevenNet's checkpoints are float32

    def __init__(self, model, *, modal: Optional[str] = None, layer=None,
                 origin: Optional[str] = None, sha256: Optional[str] = None,
                 name: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE):
        self.sevenn_version = _sevenn_version()
        from sevenn.nn.sequential import AtomGraphSequential

        if not isinstance(model, AtomGraphSequential):
            raise SevenNetAdapterError(f"{type(model).__name__} is not a SevenNet model (an "
                                       "AtomGraphSequential from a checkpoint's build_model())")
        if not model.type_map:
            raise SevenNetAdapterError("the SevenNet model carries no type_map (atomic number "
                                       "-> type index)")
        if not float(model.cutoff) > 0:
            raise SevenNetAdapterError("the SevenNet model carries no cutoff")
        gates = _gates(model)
        if not gates:
            raise SevenNetAdapterError("the model has no EquivariantGate: the adapter reads the "
                                       "per-atom features at the end of SevenNet's "
                                       "interaction blocks")
        self.model = model
        self.modals = tuple(model.modal_map or ())
        self.modal = _canonical_modal(modal, self.modals, name)
        self.layers = tuple(n for n, _ in gates)
        index = _select_layer(gates, layer)
        self.layer = self.layers[index]
        self._gate = gates[index][1]
        self.irreps_out = _gate_irreps(self._gate)
        self.L = max_l(self.irreps_out)
        self.r_max = float(model.cutoff)
        self.parity = _is_parity_model(model)
        self.type_map = {int(z): int(i) for z, i in model.type_map.items()}
        self.origin = origin or (f"sevenn {self.sevenn_version}: python object "
                                 f"{type(model).__module__}.{type(model).__qualname__}")
        self.sha256 = sha256
        self.name = name
        #: Whether the diagnostic may split batches over threads. Concurrent calls are
        #: correct (no hooks; the model's modes are set and restored under a per-model
        #: count; tested), but splitting measured slower than torch's intra-op threads on
        #: two idle cores (bench/bench_sevenn.py: 49 against 63 conf/s; two graphs' per-edge
        #: intermediates at once outgrow the cache, 6500 page faults per configuration), so
        #: it is not offered. Set it True to try on a machine with more cache per core.
        self.thread_safe = False
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise SevenNetAdapterError(f"batch_size must be >= 1, got {batch_size!r}")
        self._skip = frozenset(n for n, m in model._modules.items()
                               if type(m).__module__ == _FORCE_MODULE)

    # -- protocol -------------------------------------------------------------------------

    def node_features(self, positions, numbers) -> torch.Tensor:
        """Per-atom features ``(n_atoms, irreps_out.dim)`` of the read layer for one
        configuration (positions ``(n_atoms, 3)`` in Angstrom, float32 or float64; numbers
        ``(n_atoms,)`` atomic numbers), in the positions' dtype."""
        pos, dtype = self._positions(positions, batched=False)
        features, _ = self._forward(pos[None], numbers, with_energy=False)
        return features[0].to(dtype)

    def energy(self, positions, numbers) -> torch.Tensor:
        """SevenNet's total energy (eV, a 0-d tensor in the positions' dtype),
        differentiable in ``positions`` (``-grad`` is SevenNet's force)."""
        pos, dtype = self._positions(positions, batched=False)
        _, energies = self._forward(pos[None], numbers, with_energy=True)
        return energies[0].to(dtype)

    def features_batch(self, positions, numbers, with_energy: bool = True):
        """Features ``(B, n_atoms, irreps_out.dim)`` and total energies ``(B,)`` (eV; ``None``
        when ``with_energy`` is False) of ``B`` configurations of one molecule (positions
        ``(B, n_atoms, 3)``, numbers ``(n_atoms,)``), ``batch_size`` configurations per graph
        (one forward pass each); in the positions' dtype. No forces are computed."""
        pos, dtype = self._positions(positions, batched=True)
        feats, energies = [], []
        for start in range(0, pos.shape[0], self.batch_size):
            f, e = self._forward(pos[start:start + self.batch_size], numbers,
                                 with_energy=with_energy)
            feats.append(f)
            energies.append(e)
        features = torch.cat(feats).to(dtype)
        return features, (torch.cat(energies).to(dtype) if with_energy else None)

    def at_layer(self, layer) -> "SevenNetBackbone":
        """A backbone of the same model (shared, not copied) reading ``layer`` (an index into
        ``layers`` or a name)."""
        return SevenNetBackbone(self.model, modal=self.modal, layer=layer, origin=self.origin,
                                sha256=self.sha256, name=self.name, batch_size=self.batch_size)

    # -- helpers --------------------------------------------------------------------------

    def __repr__(self) -> str:
        modal = f", modal={self.modal!r}" if self.modal else ""
        return (f"SevenNetBackbone(irreps_out={self.irreps_out}, L={self.L}, "
                f"layer={self.layer!r}{modal}, r_max={self.r_max}, origin={self.origin!r})")

    def _elements(self):
        return set(self.type_map), (f"it knows {len(self.type_map)} elements, Z in "
                                    f"{sorted(self.type_map)}")

    def graph(self, positions, numbers):
        """sevenn's input graph of ``B`` configurations ``(B, n_atoms, 3)`` (or one,
        ``(n_atoms, 3)``) as the model receives it: one ``AtomGraphData`` per configuration
        from sevenn's graph builder, collated into one batch, edge vectors from the
        positions (differentiable), on the positions' device."""
        from sevenn import _keys as KEY
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.loader.dataloader import Collater
        import ase

        pos = torch.as_tensor(positions)
        if pos.ndim == 2:
            pos = pos[None]
        n_conf, n_atoms, _ = pos.shape
        if n_conf == 0:
            raise SevenNetAdapterError("no configurations")
        nums = self._numbers(numbers, n_atoms)
        host = pos.detach().to("cpu", torch.float64).numpy()
        graphs = []
        for i in range(n_conf):
            atoms = ase.Atoms(numbers=nums, positions=host[i])
            graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.r_max))
            if self.modal is not None:
                graph[KEY.DATA_MODALITY] = self.modal
            graphs.append(graph)
        batch = Collater([], follow_batch=None, exclude_keys=None)(graphs)
        device = pos.device
        batch = batch.to(device)
        flat = pos.reshape(-1, 3)
        edge_index = batch[KEY.EDGE_IDX]
        if edge_index.shape[1] == 0:
            raise SevenNetAdapterError(f"no atom pair within the SevenNet cutoff "
                                       f"{self.r_max} A: the model sees no neighbours")
        edge_vec = flat[edge_index[1]] - flat[edge_index[0]]
        model_dtype = self.dtype
        batch[KEY.EDGE_VEC] = edge_vec.to(model_dtype)
        batch[KEY.POS] = flat.to(model_dtype)
        return batch

    @contextlib.contextmanager
    def _model_mode(self):
        """Eval mode and sevenn's batch mode while the model runs, restored when the last
        concurrent user of the model is done (several threads may run one model at once:
        ``thread_safe``; the count is per model, shared by every :meth:`at_layer` view)."""
        model = self.model
        with _mode_lock:
            count, saved = _mode_users.get(id(model), (0, None))
            if count == 0:
                saved = ([(m, m.training) for m in model.modules()], model.is_batch_data)
                model.eval()
                if not saved[1]:
                    model.set_is_batch_data(True)
            _mode_users[id(model)] = (count + 1, saved)
        try:
            yield
        finally:
            with _mode_lock:
                count, saved = _mode_users[id(model)]
                if count == 1:
                    del _mode_users[id(model)]
                    modes, batch_mode = saved
                    if not batch_mode:
                        model.set_is_batch_data(False)
                    for m, mode in modes:
                        m.training = mode
                else:
                    _mode_users[id(model)] = (count - 1, saved)

    def _forward(self, pos, numbers, *, with_energy: bool):
        """(features ``(B, n_atoms, dim)``, energies ``(B,)`` or None) in the model's dtype."""
        from sevenn import _keys as KEY

        track = torch.is_grad_enabled() and pos.requires_grad
        n_conf, n_atoms, _ = pos.shape
        features = None
        with torch.set_grad_enabled(track), self._model_mode():
            data = self.graph(pos, numbers)
            data = self.model._preprocess(data)
            for name, module in self.model._modules.items():
                if name in self._skip:
                    continue
                data = module(data)
                if name == self.layer:
                    features = data[KEY.NODE_FEATURE]
                    if not with_energy:
                        break
            if features is None:
                raise SevenNetAdapterError(f"layer {self.layer!r} did not run in the model")
            energies = data[KEY.PRED_TOTAL_ENERGY].reshape(n_conf) if with_energy else None
        return features.reshape(n_conf, n_atoms, -1), energies


def from_model(model, *, modal: Optional[str] = None, layer: Union[None, int, str] = None,
               origin: Optional[str] = None,
               batch_size: int = DEFAULT_BATCH_SIZE) -> SevenNetBackbone:
    """Wrap a SevenNet model already in memory (an ``AtomGraphSequential``, e.g. from
    ``sevenn.util.model_from_checkpoint`` or ``SevenNetCalculator(...).model``).

    ``modal``: required for a multi-fidelity model (one of its ``modal_map`` keys, any
    case), refused for another. ``layer``: the read gate, an index into ``layers`` or a name
    (default: the last one with l > 0 features). ``origin`` is recorded as given. The model
    itself is not changed (eval mode and sevenn's batch-data flag are set only while it
    runs; its weights keep their ``requires_grad``).

    Raises :class:`SevenNetMissing` without sevenn 0.13, :class:`SevenNetAdapterError` (a
    ``ValueError``) for a model, modal or layer the adapter cannot use.
    """
    return SevenNetBackbone(model, modal=modal, layer=layer, origin=origin,
                            batch_size=batch_size)


def load(name_or_path, *, modal: Optional[str] = None, layer: Union[None, int, str] = None,
         trusted: bool = False, device="cpu",
         batch_size: int = DEFAULT_BATCH_SIZE) -> SevenNetBackbone:
    """Load a SevenNet pretrained model by name or a SevenNet checkpoint by path, with
    sevenn's own loader, and wrap it (see the module docstring).

    ``name_or_path``: a pretrained name (``7net-0``, ``7net-0_22may2024``, ``7net-l3i5``,
    ``7net-mf-0``; sevenn's spelling, any case; a ``sevenn:`` prefix is dropped) whose
    checkpoint ships in the sevenn wheel, or a checkpoint file. Names that sevenn would
    download (``7net-omat``, ``7net-omni``, ``7net-mf-ompa``, ...) raise
    :class:`SevenNetNotShipped`. ``modal``: required for a multi-fidelity model such as
    ``7net-mf-0`` (``'PBE'`` or ``'R2SCAN'``). ``layer``: see :func:`from_model`.
    ``device``: where the model runs (default CPU).

    A checkpoint is pickled code (sevenn loads it with ``torch.load(weights_only=False)``):
    it is opened only when an installed distribution lists it, with its hash, in its RECORD
    (the pretrained models; :mod:`empirical.adapters._trust`) or ``trusted=True`` (CLI ``--trust-checkpoints``); otherwise
    :class:`UntrustedCheckpoint` (a ``ValueError``) is raised before the file is opened. (A
    name whose checkpoint sevenn itself downloaded earlier, to ``~/.cache/sevennet``, is such
    an other file.) The backbone's ``origin`` is :func:`_origin` (no absolute path of this
    machine), ``sha256`` the file's hash.

    Raises :class:`SevenNetMissing` (an ``ImportError`` and ``ValueError``) when sevenn 0.13
    is not installed; :class:`SevenNetAdapterError` (a ``ValueError``) for an unknown name,
    a missing or unreadable file, a missing or unknown modal.
    """
    version = _sevenn_version()
    file, name, _ = _resolve(name_or_path)
    require_trust(file, trusted, f"SevenNet (sevenn {version})")
    from sevenn.util import load_checkpoint

    try:
        with _preserved_global_state(), default_dtype(torch.float32):
            checkpoint = load_checkpoint(str(file))
            # a missing or unknown modal is refused before the model is built
            _canonical_modal(modal, tuple(checkpoint.config.get("_modal_map") or ()), name)
            model = checkpoint.build_model()
    except SevenNetAdapterError:
        raise
    except Exception as exc:  # sevenn raises key, assertion, pickle and runtime errors
        raise SevenNetAdapterError(f"sevenn {version} could not load {str(file)!r}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    for p in model.parameters():   # a frozen backbone, as empirical.backbone.load gives
        p.requires_grad_(False)
    model.eval()
    model.set_is_batch_data(True)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    backbone = SevenNetBackbone(model, modal=modal, layer=layer,
                                origin=_origin(file, version), sha256=digest,
                                name=name, batch_size=batch_size)
    return backbone.to(device)


def _origin(file: Path, version: str) -> str:
    """Where a checkpoint came from, in terms a reader has: a file of an installed package
    relative to its site directory, with sevenn's version
    (``sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth
    (sevenn 0.13.0)``); any other file as the user gave it (``sevenn 0.13.0: PATH``)."""
    installed = site_relative(file)
    if installed is not None:
        return f"{installed} (sevenn {version})"
    return f"sevenn {version}: {file}"


def _split_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``(name or path, modal)`` of ``NAME``, ``NAME@MODAL`` or ``PATH``."""
    text = str(spec)
    if text.startswith(PREFIX + ":"):
        text = text[len(PREFIX) + 1:]
    if Path(text).is_file() or "@" not in text:
        return text, None
    base, modal = text.rsplit("@", 1)
    if not base or not modal:
        raise SevenNetAdapterError(f"{spec!r}: expected NAME, NAME@MODAL or a path")
    return base, modal


def from_spec(spec: str, *, trusted: bool = False) -> BackboneEntry:
    """The :class:`BackboneEntry` of the text after ``sevenn:`` in ``--backbones``:
    ``7net-0``, ``7net-mf-0@PBE`` (modal after ``@``) or a checkpoint path.

    ``name``: the pretrained name in lower case (``7net-0``), with ``@MODAL`` in the
    model's spelling for a multi-fidelity model (``7net-mf-0@PBE``), or the path as given.
    ``source``: :func:`_origin`; ``sha256`` of the checkpoint; in ``extra``
    ``sevenn_layer``, ``sevenn_modal``, ``sevenn_parity`` (False: an SO(3) model) and
    ``parameters`` (the model's parameter count).
    """
    base, modal = _split_spec(spec)
    backbone = load(base, modal=modal, trusted=trusted)
    name = backbone.name + (f"@{backbone.modal}" if backbone.modal else "")
    return BackboneEntry(
        name=name, backbone=backbone, source=backbone.origin, sha256=backbone.sha256,
        extra={"sevenn_layer": backbone.layer, "sevenn_modal": backbone.modal,
               "sevenn_parity": backbone.parity,
               "parameters": int(sum(p.numel() for p in backbone.parameters()))})


def available() -> List[str]:
    """The specs loadable here without a download and without ``trusted``: the pretrained
    models whose checkpoints ship in the installed sevenn wheel, a multi-fidelity one with
    its PBE modal (else its first); empty without sevenn 0.13."""
    try:
        _sevenn_version()
    except SevenNetMissing:
        return []
    out = []
    for name in _shipped_names():
        path = _pretrained_path(name)
        modals = _modal_map_of(path, os.path.getmtime(path))
        out.append(f"{name}@{_default_modal(modals)}" if modals else name)
    return out
