r"""MACE models as backbones of the diagnostic.

::

    from . import mace as mace_adapter
    bb = mace_adapter.load("runs/mace-aspirin/mace_aspirin.model", trusted=True)
    bb.irreps_out, bb.L, bb.layer, bb.layers   # 32x0e+32x1o+32x2e, 2, "interaction_0", (...)
    h = bb.node_features(positions, numbers)   # (n_atoms, irreps_out.dim)
    e = bb.energy(positions, numbers)          # MACE's total energy, eV
    empirical.diagnose(backbones=[bb], dataset="aspirin")

What the wrapper reads, on MACE's own machinery only (nothing of MACE is re-implemented):

* :func:`load` reads a model file written by MACE's training command ``mace_run_train``
  (``<name>.model``, also ``_stagetwo.model``: the whole ``torch.nn.Module``, pickled with
  ``torch.save``) with ``torch.load(..., weights_only=False)``, which is how MACE's own ASE
  calculator loads it. The file is code: it is opened only when ``trusted=True`` or an
  installed distribution lists it with its hash (:mod:`empirical.adapters._trust`). The TorchScript file
  ``<name>_compiled.model`` (no Python modules to read the layer irreps from) and the
  training checkpoints ``checkpoints/*.pt`` (state dicts, which need the run's
  hyperparameters to rebuild the model) are refused with a message naming the ``.model``
  file instead. :func:`from_model` wraps a ``mace.modules.MACE`` (or ``ScaleShiftMACE``,
  what ``mace_run_train --model MACE`` builds) already in memory.
* The input graph is built as MACE's ASE calculator builds it: ``mace.data.config_from_atoms``
  of an ``ase.Atoms`` (no cell, no periodicity), ``mace.data.AtomicData.from_config`` with
  the model's ``r_max`` (a buffer of the model), the model's ``atomic_numbers`` as the
  ``AtomicNumberTable`` and its ``heads``; several configurations are joined into one graph
  with ``mace.tools.torch_geometric.Batch.from_data_list``. As in the calculator, floating
  fields are then cast to the model's dtype; the positions field is the caller's tensor (cast
  to the model's dtype), so that the energy stays differentiable in the positions.
* The model runs as ``model(batch, training=False, compute_force=False)``: no force, no
  autograd graph unless the positions require grad.
* Features: MACE's output ``node_feats`` is the concatenation, over the interactions, of each
  interaction's per-atom features (the output of ``model.products[i]``: the symmetric
  contraction, its linear update and the residual). :attr:`MACEBackbone.layers` names them
  ``interaction_0``, ``interaction_1``, ...; the irreps of interaction ``i`` are
  ``model.products[i].linear.irreps_out`` (parity included, e.g. ``32x0e+32x1o+32x2e``), and
  the adapter checks at every call that the widths add up to the width of ``node_feats``. By
  default the layer read is the last interaction whose features carry ``l > 0``: MACE's last
  interaction is scalar-only (its ``hidden_irreps[0]``) unless the model was built with
  ``keep_last_layer_irreps``, so with two interactions that is ``interaction_0``.
* Energy: the model's ``energy`` output (the total energy: atomic reference energies ``E0``
  plus the interaction energy, eV).

Process state. ``import mace`` sets ``os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"``
for the whole process (``mace/__init__.py``; ``mace.calculators.mace`` does it again), after
which every ``torch.load`` that does not pass ``weights_only`` unpickles code. The adapter
imports mace, and unpickles a model file, only inside :func:`_preserved_process_state`, which
restores ``os.environ`` exactly (keys added are removed, keys changed are set back; this also
undoes the ``TORCHINDUCTOR_CACHE_DIR`` torch's inductor sets while mace's modules are
imported), torch's default dtype and the torch, numpy and ``random`` generator states. MACE's
modules keep nothing else process-wide that the adapter triggers (its training script sets the
default dtype and seeds, the adapter does not run it). Only the adapter's own entry points are
guarded: code that imports ``mace`` itself changes the environment as ``mace`` always does.

Outputs take the dtype of the positions given (so that ``irreps_out.D_from_matrix`` in the
same dtype applies to them); :attr:`MACEBackbone.dtype` is the model's parameter dtype, which
the diagnostic gives positions in. Outputs carry autograd history only when the positions
require grad (and grad is enabled); :func:`load` freezes the weights it loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch
from e3nn import o3

from ..runtime import max_l
from ._base import FrameworkBackbone, element_names
from ._entry import BackboneEntry
from ._framework import framework_version, preserved_process_state
from ._trust import UntrustedCheckpoint, require_trust

__all__ = ["load", "from_model", "from_spec", "available", "MACEBackbone", "MACEAdapterError",
           "MACEMissing", "PREFIX", "REQUIREMENT", "MISSING_MESSAGE", "UntrustedCheckpoint"]

#: The ``--backbones`` spec prefix (``mace:PATH``).
PREFIX = "mace"
#: The MACE versions this adapter is written against (tested with 0.3.16 beside e3nn 0.6).
REQUIREMENT = "mace-torch>=0.3,<0.4"
#: What the user is told when MACE is absent (or of another minor version). mace-torch pins
#: e3nn==0.4.4; this package needs e3nn>=0.5, so MACE goes in without its dependencies.
MISSING_MESSAGE = (
    "the mace adapter needs mace-torch 0.3 (tested with 0.3.16); it pins e3nn==0.4.4, so it "
    "goes in beside e3nn 0.6 without its dependencies: pip install 'spectral-ceilings[mace]' "
    "&& pip install --no-deps mace-torch==0.3.16")

_SUPPORTED = (0, 3)
#: Configurations per forward of :meth:`MACEBackbone.features_batch` in the diagnostic.
DEFAULT_BATCH_SIZE = 32


class MACEAdapterError(ValueError):
    """A MACE model or input the adapter cannot use (the message names the problem)."""


class MACEMissing(ImportError, MACEAdapterError):
    """mace-torch is not installed, cannot be imported, or is not version 0.3."""


# -- process state --------------------------------------------------------------------------


#: ``os.environ`` exactly, torch's default dtype and the generator states (module docstring).
_preserved_process_state = preserved_process_state


def _mace_version() -> str:
    """Import mace (process state preserved) and return its version; raise
    :class:`MACEMissing` otherwise."""
    return framework_version("mace", _SUPPORTED, MACEMissing, MISSING_MESSAGE,
                             label="mace-torch", guard=_preserved_process_state,
                             submodules=("data", "modules", "tools.torch_geometric"))


# -- the model ------------------------------------------------------------------------------


def _check_model(model) -> None:
    """Raise :class:`MACEAdapterError` unless ``model`` is a MACE energy model whose per-
    interaction features the adapter can read."""
    import mace.modules

    if not isinstance(model, mace.modules.MACE):
        raise MACEAdapterError(
            f"{type(model).__module__}.{type(model).__name__} is not a mace.modules.MACE model "
            "(MACE or ScaleShiftMACE, what mace_run_train --model MACE builds); dipole and "
            "polarizability models carry no per-atom node_feats output")
    for product in model.products:
        cueq = getattr(product, "cueq_config", None)
        if cueq is not None and getattr(cueq, "enabled", False):
            raise MACEAdapterError(
                "a cuEquivariance MACE model lays its features out differently: convert it "
                "back to e3nn with MACE's mace_cueq_to_e3nn first")
        if not isinstance(getattr(product, "linear", None), o3.Linear):
            raise MACEAdapterError(
                f"interaction {list(model.products).index(product)}: the product block's "
                "update is not an e3nn Linear, so its irreps cannot be read")


def _layer_irreps(model) -> List[o3.Irreps]:
    """Irreps of each interaction's per-atom features, in forward order."""
    return [o3.Irreps(str(product.linear.irreps_out)) for product in model.products]


def _select_layer(layers: Sequence[str], irreps: Sequence[o3.Irreps], layer) -> int:
    if layer is None:
        for index in reversed(range(len(layers))):
            if max_l(irreps[index]) > 0:
                return index
        raise MACEAdapterError(f"no interaction of the MACE model carries l > 0 features "
                               f"({', '.join(f'{n}: {i}' for n, i in zip(layers, irreps))}): "
                               "nothing to probe")
    if isinstance(layer, str) and not layer.lstrip("-").isdigit():
        if layer not in layers:
            raise MACEAdapterError(f"the MACE model has no layer {layer!r}; its layers are "
                                   f"{list(layers)}")
        return list(layers).index(layer)
    try:
        index = int(layer)
        return range(len(layers))[index]
    except (IndexError, ValueError, TypeError):
        raise MACEAdapterError(f"layer {layer!r}: the MACE model has {len(layers)} interaction "
                               f"layers ({list(layers)})") from None


def _pick_head(heads: List[str], head: Optional[str]) -> str:
    """The readout head, as MACE's calculator picks it."""
    if head is not None:
        if head not in heads:
            raise MACEAdapterError(f"head {head!r}: the MACE model's heads are {heads}")
        return head
    if len(heads) == 1:
        return heads[0]
    default = [h for h in heads if h.lower() == "default"]
    if not default:
        raise MACEAdapterError(f"the MACE model has heads {heads} and none is 'default': "
                               "give head=")
    return default[0]


class MACEBackbone(FrameworkBackbone):
    """A MACE model as a backbone (protocol of :mod:`empirical.backbone`).

    Build it with :func:`load` or :func:`from_model`. Attributes: ``model``, ``irreps_out``,
    ``L``, ``layer`` (the name read, one of ``layers``), ``layers`` (``interaction_0``, ...),
    ``layer_irreps`` (the irreps of each), ``origin``, ``sha256`` (of the loaded file, or
    ``None``), ``r_max``, ``atomic_numbers`` (the model's elements), ``heads``, ``head``,
    ``mace_version``, ``batch_size`` (configurations per forward in the diagnostic).
    """

    error = MACEAdapterError
    framework = "MACE"

    def __init__(self, model, *, layer: Union[None, int, str] = None, head: Optional[str] = None,
                 origin: Optional[str] = None, sha256: Optional[str] = None,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        self.mace_version = _mace_version()
        _check_model(model)
        from mace import tools

        self.model = model
        self.layers: Tuple[str, ...] = tuple(f"interaction_{i}" for i in range(len(model.products)))
        self.layer_irreps: Tuple[o3.Irreps, ...] = tuple(_layer_irreps(model))
        index = _select_layer(self.layers, self.layer_irreps, layer)
        self.layer = self.layers[index]
        self.irreps_out = self.layer_irreps[index]
        self.L = max_l(self.irreps_out)
        start = sum(irreps.dim for irreps in self.layer_irreps[:index])
        self._slice = slice(start, start + self.irreps_out.dim)
        self._width = sum(irreps.dim for irreps in self.layer_irreps)
        self.r_max = float(model.r_max)
        self.atomic_numbers = tuple(int(z) for z in model.atomic_numbers)
        self.z_table = tools.AtomicNumberTable(list(self.atomic_numbers))
        self.heads = [str(h) for h in (getattr(model, "heads", None) or ["Default"])]
        self.head = _pick_head(self.heads, head)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise MACEAdapterError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.origin = origin or (f"mace-torch {self.mace_version}: python object "
                                 f"{type(model).__module__}.{type(model).__qualname__}")
        self.sha256 = sha256

    # -- protocol -------------------------------------------------------------------------

    def node_features(self, positions, numbers) -> torch.Tensor:
        """Per-atom features ``(n_atoms, irreps_out.dim)`` of the layer read, for one
        configuration (positions ``(n_atoms, 3)`` in Angstrom, numbers ``(n_atoms,)``
        atomic numbers), in the positions' dtype."""
        pos, dtype = self._positions(positions, batched=False)
        out = self._run(pos.unsqueeze(0), numbers)
        return self._features(out, 1)[0].to(dtype)

    def energy(self, positions, numbers) -> torch.Tensor:
        """MACE's total energy (eV, a 0-d tensor in the positions' dtype), differentiable in
        ``positions``: ``-grad`` is MACE's force."""
        pos, dtype = self._positions(positions, batched=False)
        out = self._run(pos.unsqueeze(0), numbers)
        return out["energy"].reshape(()).to(dtype)

    def features_batch(self, positions, numbers, with_energy: bool = True):
        """Features ``(B, n_atoms, irreps_out.dim)`` and energies ``(B,)`` (eV; ``None``
        when ``with_energy`` is False) of ``B`` configurations ``(B, n_atoms, 3)`` of one
        molecule, in one batched MACE graph and one forward; in the positions' dtype."""
        pos, dtype = self._positions(positions, batched=True)
        out = self._run(pos, numbers)
        feats = self._features(out, pos.shape[0]).to(dtype)
        return feats, (out["energy"].reshape(-1).to(dtype) if with_energy else None)

    def at_layer(self, layer: Union[int, str]) -> "MACEBackbone":
        """A backbone reading interaction ``layer`` (index into :attr:`layers` or a name) of
        the same model (shared, not copied)."""
        return MACEBackbone(self.model, layer=layer, head=self.head, origin=self.origin,
                            sha256=self.sha256, batch_size=self.batch_size)

    # -- helpers --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"MACEBackbone(irreps_out={self.irreps_out}, L={self.L}, layer={self.layer!r}, "
                f"layers={self.layers}, r_max={self.r_max}, "
                f"atomic_numbers={self.atomic_numbers}, origin={self.origin!r})")

    def _elements(self):
        return set(self.atomic_numbers), (f"it knows {self.atomic_numbers}: "
                                          f"{element_names(self.atomic_numbers)}")

    def graph(self, positions, numbers) -> dict:
        """MACE's input dict for configurations ``(B, n_atoms, 3)`` (or one ``(n_atoms, 3)``)
        as the model receives it: one batched graph at the model's ``r_max`` (see the module
        docstring), on the model's device, floats in the model's dtype."""
        import ase
        from mace import data as mace_data
        from mace.tools import torch_geometric

        pos = torch.as_tensor(positions)
        if pos.ndim == 2:
            pos = pos.unsqueeze(0)
        nums = self._numbers(numbers, pos.shape[1])
        device, dtype = self.device, self.dtype
        coords = pos.detach().to("cpu", torch.float64).numpy()
        graphs = []
        for frame in coords:
            config = mace_data.config_from_atoms(ase.Atoms(numbers=nums, positions=frame),
                                                 head_name=self.head)
            graphs.append(mace_data.AtomicData.from_config(
                config, z_table=self.z_table, cutoff=self.r_max, heads=self.heads))
        batch = torch_geometric.Batch.from_data_list(graphs).to_dict()
        data = {}
        for key, value in batch.items():
            if torch.is_tensor(value):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            data[key] = value
        # the caller's positions (same values): the energy stays differentiable in them. MACE
        # calls requires_grad_ on this field, so a tensor not requiring grad is copied first.
        flat = pos.reshape(-1, 3).to(device=device, dtype=dtype)
        data["positions"] = flat if flat.requires_grad else flat.clone()
        return data

    @contextlib.contextmanager
    def _eval_mode(self):
        modes = [(m, m.training) for m in self.model.modules()]
        try:
            self.model.eval()
            yield
        finally:
            for m, mode in modes:
                m.training = mode

    def _run(self, pos, numbers) -> dict:
        # autograd history only where the positions ask for it
        track = torch.is_grad_enabled() and pos.requires_grad
        with torch.set_grad_enabled(track):
            data = self.graph(pos, numbers)
            with self._eval_mode():
                return self.model(data, training=False, compute_force=False)

    def _features(self, out, n_configs: int) -> torch.Tensor:
        feats = out["node_feats"]
        if feats.shape[-1] != self._width:
            raise MACEAdapterError(
                f"MACE's node_feats has width {feats.shape[-1]}, but the interactions' irreps "
                f"({', '.join(str(i) for i in self.layer_irreps)}) add up to {self._width}: "
                "this model's features cannot be split per interaction")
        return feats[:, self._slice].reshape(n_configs, -1, self.irreps_out.dim)


# -- entry points ---------------------------------------------------------------------------


def from_model(model, *, layer: Union[None, int, str] = None, head: Optional[str] = None,
               origin: Optional[str] = None,
               batch_size: int = DEFAULT_BATCH_SIZE) -> MACEBackbone:
    """Wrap a MACE model already in memory (``mace.modules.MACE`` or ``ScaleShiftMACE``).

    ``layer``: the interaction read, an index into :attr:`MACEBackbone.layers` or a name
    (``"interaction_0"``; default: the last one with l > 0 features). ``head``: the readout
    head of a multi-head model (default: the only one, else the one named ``default``).
    ``origin`` is recorded as given (default ``"mace-torch <version>: python object
    <class>"``). The model is not changed (eval mode is set only while it runs).

    Raises :class:`MACEMissing` without mace-torch 0.3, :class:`MACEAdapterError` (a
    ``ValueError``) for a model the adapter cannot use.
    """
    return MACEBackbone(model, layer=layer, head=head, origin=origin, batch_size=batch_size)


def _is_torchscript(file: Path) -> bool:
    """Whether ``file`` is a TorchScript archive (``torch.jit.save``), read from the zip's
    directory only (nothing is unpickled)."""
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def load(path, *, trusted: bool = False, layer: Union[None, int, str] = None,
         device: Union[str, torch.device] = "cpu", head: Optional[str] = None,
         batch_size: int = DEFAULT_BATCH_SIZE) -> MACEBackbone:
    """Load a MACE model file written by ``mace_run_train`` (``<name>.model``, a pickled
    module) and wrap it (:func:`from_model`); ``device`` is where it is mapped and runs.

    ``path`` is a local file (a ``mace:`` prefix is accepted and dropped). The wrapper's
    ``origin`` is ``"mace-torch <version>: <path as given>"`` and ``sha256`` the file's hash.

    The file is pickled code: it is loaded only when ``trusted=True`` (CLI
    ``--trust-checkpoints``) or an installed distribution lists it with its hash in its
    RECORD (:mod:`empirical.adapters._trust`); otherwise :class:`UntrustedCheckpoint` (a
    ``ValueError``) is raised before the file is opened.

    Raises :class:`MACEMissing` (an ``ImportError`` and ``ValueError``) when mace-torch 0.3
    is not installed; :class:`MACEAdapterError` (a ``ValueError``) for a missing or unreadable
    file, a TorchScript ``_compiled.model``, a training checkpoint (state dict) or a model
    the adapter cannot use.
    """
    version = _mace_version()
    text = str(path)
    if text.startswith(f"{PREFIX}:"):
        text = text[len(PREFIX) + 1:]
    file = Path(text)
    if not file.is_file():
        from ..io import why_not_a_file
        raise MACEAdapterError(f"cannot read MACE model {text!r}: {why_not_a_file(file)}")
    require_trust(file, trusted, f"MACE (mace-torch {version})")
    if _is_torchscript(file):
        raise MACEAdapterError(
            f"{text}: a TorchScript MACE model (mace_run_train's _compiled.model) cannot be "
            "read per interaction; load the .model file written beside it")
    try:
        with _preserved_process_state():
            model = torch.load(file, map_location=device, weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors
        raise MACEAdapterError(f"mace-torch {version} could not load {text!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
    if isinstance(model, dict):
        keys = ", ".join(sorted(str(k) for k in model)[:6])
        raise MACEAdapterError(
            f"{text} holds a dict ({keys}), a MACE training checkpoint or state dict, which "
            "needs the run's hyperparameters to rebuild the model; load the .model file "
            "mace_run_train writes (<name>.model)")
    if not isinstance(model, torch.nn.Module):
        raise MACEAdapterError(f"{text} holds a {type(model).__name__}, not a MACE model")
    for p in model.parameters():   # a frozen backbone, as empirical.backbone.load gives
        p.requires_grad_(False)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return MACEBackbone(model.eval(), layer=layer, head=head, batch_size=batch_size,
                        origin=f"mace-torch {version}: {file}", sha256=digest)


def from_spec(spec: str, *, trusted: bool = False) -> BackboneEntry:
    """The :class:`BackboneEntry` of ``--backbones mace:SPEC``: ``SPEC`` is the path of a
    ``.model`` file, optionally followed by ``@LAYER`` (an index or ``interaction_<i>``)
    when no file of that whole name exists. ``name`` is ``mace-<file stem>`` (plus
    ``@LAYER`` when given); the entry records the source (``"mace-torch <version>: <path
    as given>"``), the file's hash and, in ``extra``, the model."""
    path, layer = spec, None
    if not Path(spec).is_file() and "@" in spec:
        path, layer = spec.rsplit("@", 1)
    bb = load(path, trusted=trusted, layer=layer)
    stem = Path(path).name
    for suffix in (".model", ".pt", ".pth"):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
            break
    name = f"mace-{stem}" + (f"@{layer}" if layer is not None else "")
    return BackboneEntry(
        name=name, backbone=bb, source=bb.origin, sha256=bb.sha256,
        extra={"framework": f"mace-torch {bb.mace_version}",
               "model_class": type(bb.model).__name__,
               "layers": {n: str(i) for n, i in zip(bb.layers, bb.layer_irreps)},
               "r_max": bb.r_max, "atomic_numbers": list(bb.atomic_numbers), "head": bb.head})


def available() -> List[str]:
    """Specs loadable here without a download: none (MACE ships no weights in this package;
    foundation models are downloads)."""
    return []
