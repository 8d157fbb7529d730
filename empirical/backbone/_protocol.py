"""The backbone protocol and a measure-then-assert equivariance check (STYLE: e3nn's split)."""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3

__all__ = ["check_protocol", "equivariance_error", "EQUIVARIANCE_TOLERANCE",
           "equivariance_tolerance"]

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
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
    try:
        D = irreps.D_from_matrix(rotation.to(torch.float64)).to(dtype)
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        f_rot = backbone.node_features(positions @ rotation.T, numbers)
        f = backbone.node_features(positions, numbers)
    f_rot, f = torch.as_tensor(f_rot), torch.as_tensor(f)
    return float((f_rot - f @ D.to(f.dtype).T).abs().max())
