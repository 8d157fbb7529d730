"""The backbone protocol and a measure-then-assert equivariance check (docs/method.md §2.2:
:func:`equivariance_error` measures, the caller decides what error is acceptable).

Required (:func:`check_protocol`): ``irreps_out`` (e3nn ``Irreps`` of the per-atom
features) and ``node_features(positions, numbers) -> (n_atoms, irreps_out.dim)``.

Optional, each used when present (docs/method.md §2.2):

``energy(positions, numbers)``
    Total energy in eV (a 0-d tensor); enables the injected-residual metric.
``dtype``
    The ``torch.dtype`` positions must have (:func:`empirical.diagnostic.model_dtype`).
``features_batch(positions, numbers, with_energy=True) -> (features, energies)``
    Many configurations of one molecule in one call: ``positions`` ``(B, n_atoms, 3)`` in
    the model's dtype and on its device, ``numbers`` ``(n_atoms,)`` (long, same device);
    returns ``features`` ``(B, n_atoms, irreps_out.dim)`` and ``energies`` ``(B,)`` (eV), or
    ``None`` when ``with_energy`` is False or the model has no energy. The diagnostic calls
    it under ``torch.no_grad()`` with ``batch_size`` configurations at a time (the object's
    ``batch_size`` attribute when it has one, else
    :data:`empirical.diagnostic.DEFAULT_CHUNK`); it must give what ``node_features`` and
    ``energy`` give one configuration at a time (to the dtype's precision). No forces.
``device`` and ``to(device)``
    Where the model runs (a ``torch.device``) and a method that moves it there and
    returns the backbone (``torch.nn.Module`` has both). ``diagnose(device=...)`` uses them.
``layers``, ``layer`` and ``at_layer(layer)``
    The names of the interaction layers whose per-atom features can be read, in forward
    order (``layers``, a tuple of str), the one this object reads (``layer``), and a
    backbone of the same model reading another (``at_layer`` takes an index into
    ``layers`` or a name; the model is shared, not copied). The per-layer profile
    (``empirical profile``) uses them; each layer's ``irreps_out`` sets its predicted
    ceiling ``d * L_layer``.

:func:`supports` tells which optional parts an object has.
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3

from ..runtime import default_dtype

__all__ = ["model_dtype", "model_device", "check_protocol", "equivariance_error", "EQUIVARIANCE_TOLERANCE",
           "equivariance_tolerance", "supports"]


def supports(backbone, part: str) -> bool:
    """Whether ``backbone`` has the optional protocol part ``part``: ``"energy"``,
    ``"batch"`` (``features_batch``), ``"device"`` (``to``) or ``"layers"``
    (``layers`` and ``at_layer``)."""
    if part == "energy":
        return callable(getattr(backbone, "energy", None))
    if part == "batch":
        return callable(getattr(backbone, "features_batch", None))
    if part == "device":
        return callable(getattr(backbone, "to", None))
    if part == "layers":
        return (callable(getattr(backbone, "at_layer", None))
                and isinstance(getattr(backbone, "layers", None), (tuple, list)))
    raise ValueError(f"unknown protocol part {part!r}: energy, batch, device or layers")

#: Largest equivariance error still counted as equivariant, per features dtype, relative
#: to the largest feature magnitude (at least 1). Used by the diagnostic (a backbone above
#: it is outside the theorem's premise) and by ``empirical.testing``.
EQUIVARIANCE_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


def equivariance_tolerance(dtype, largest_feature: float) -> float:
    """The absolute tolerance for features of ``dtype`` (a ``torch.dtype`` or its name,
    e.g. ``"float32"``) whose largest magnitude is ``largest_feature``."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return EQUIVARIANCE_TOLERANCE.get(dtype, 1e-4) * max(1.0, float(largest_feature))


def check_protocol(backbone) -> None:
    """Raise ``TypeError`` naming what is missing if ``backbone`` cannot be diagnosed."""
    irreps = getattr(backbone, "irreps_out", None)
    if irreps is None:
        raise TypeError(f"{type(backbone).__name__} has no irreps_out (e3nn Irreps of its "
                        "per-atom features)")
    try:
        o3.Irreps(irreps)
    except Exception:
        raise TypeError(f"irreps_out of {type(backbone).__name__} is not an e3nn Irreps: "
                        f"{irreps!r}") from None
    if not callable(getattr(backbone, "node_features", None)):
        raise TypeError(f"{type(backbone).__name__} has no node_features(positions, numbers)")


def equivariance_error(backbone, positions: torch.Tensor, numbers: torch.Tensor,
                       rotation: Optional[torch.Tensor] = None) -> float:
    """Max abs error of ``node_features(R x) - D(R) node_features(x)`` for one orthogonal
    ``R`` (a random rotation by default; pass ``-R`` for a roto-reflection), with ``D`` from
    ``irreps_out.D_from_matrix`` (parity included)."""
    check_protocol(backbone)
    irreps = o3.Irreps(backbone.irreps_out)
    dtype = positions.dtype
    if rotation is None:
        rotation = o3.rand_matrix(dtype=dtype)
    rotation = rotation.to(dtype)
    with default_dtype(torch.float64):   # e3nn builds its generators in the default dtype
        D = irreps.D_from_matrix(rotation.to("cpu", torch.float64)).to(dtype)
    with torch.no_grad():
        f_rot = backbone.node_features(positions @ rotation.T, numbers)
        f = backbone.node_features(positions, numbers)
    f_rot, f = torch.as_tensor(f_rot), torch.as_tensor(f)
    return float((f_rot - f @ D.to(f.device, f.dtype).T).abs().max())


def _module_dtype(module) -> Optional[torch.dtype]:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    for b in module.buffers():
        if b.is_floating_point():
            return b.dtype
    return None


def model_dtype(backbone) -> torch.dtype:
    """The dtype positions must have to reach ``backbone`` (see the module docstring).

    >>> class Wrapper:
    ...     def __init__(self): self.net = torch.nn.Linear(3, 3).double()
    >>> model_dtype(Wrapper())
    torch.float64
    """
    own = getattr(backbone, "dtype", None)
    if isinstance(own, torch.dtype):
        return own
    if isinstance(backbone, torch.nn.Module):
        found = _module_dtype(backbone)
        if found is not None:
            return found
    for value in vars(backbone).values() if hasattr(backbone, "__dict__") else ():
        if isinstance(value, torch.nn.Module):
            found = _module_dtype(value)
            if found is not None:
                return found
    return torch.get_default_dtype()


def model_device(backbone) -> torch.device:
    """Where ``backbone`` runs: its ``device`` attribute when it is a ``torch.device`` (or a
    device string), else the device of its (or a held module's) first parameter, else CPU."""
    own = getattr(backbone, "device", None)
    if isinstance(own, (torch.device, str)):
        return torch.device(own)
    modules = [backbone] if isinstance(backbone, torch.nn.Module) else []
    modules += [v for v in (vars(backbone).values() if hasattr(backbone, "__dict__") else ())
                if isinstance(v, torch.nn.Module)]
    for module in modules:
        for p in module.parameters():
            return p.device
    return torch.device("cpu")
