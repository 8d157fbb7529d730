"""What every framework backbone shares, written once: :class:`FrameworkBackbone`.

A framework adapter (nequip, SevenNet, MACE) wraps the framework's ``torch.nn.Module`` as
``self.model`` and implements the backbone protocol's model-specific part (``irreps_out``,
``node_features``, ``energy``, ``features_batch``, ``layers``/``at_layer``). The plumbing
around the model is the same for all of them and lives here: ``device`` and ``to``
(the model moves in place, so every :meth:`at_layer` view follows), ``parameters`` (the
diagnostic reads the model's dtype from them), ``eval`` (the adapters set eval mode only
while the model runs), ``dtype``, and the input checks ``_positions`` and ``_numbers``,
which raise the adapter's own error class (:attr:`FrameworkBackbone.error`).
"""

from __future__ import annotations

from typing import AbstractSet, Optional, Tuple, Type

import numpy as np
import torch

from ..data import CHEMICAL_SYMBOLS

__all__ = ["FrameworkBackbone", "element_names"]


def element_names(numbers) -> str:
    """``"C, H, O"``: the chemical symbols of atomic ``numbers`` (the number itself where it
    names no element)."""
    return ", ".join(CHEMICAL_SYMBOLS[z] if 0 < z < len(CHEMICAL_SYMBOLS) else str(z)
                     for z in numbers)


class FrameworkBackbone:
    """Base class of the framework adapters' backbones (see the module docstring).

    A subclass sets ``self.model`` (the framework's module) and the class attributes
    :attr:`error` and :attr:`framework`, and implements :meth:`_elements` (the atomic
    numbers the model knows, with their description for a message).
    """

    #: The adapter's error class (a ``ValueError``), raised for input it cannot use.
    error: Type[ValueError] = ValueError
    #: The framework's name in messages (``"MACE"``).
    framework: str = "framework"
    #: The dtype :attr:`dtype` reports for a model without floating-point parameters
    #: (``None``: such a model is refused with :attr:`error`).
    fallback_dtype: Optional[torch.dtype] = None

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (CPU for a model without parameters)."""
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device) -> "FrameworkBackbone":
        """Move the model to ``device`` in place (every :meth:`at_layer` view shares it)."""
        self.model.to(device)
        return self

    def parameters(self):
        """The model's parameters (the diagnostic reads the model's dtype from them)."""
        return self.model.parameters()

    def eval(self) -> "FrameworkBackbone":
        """Nothing to do: the adapter sets eval mode only while the model runs."""
        return self

    @property
    def dtype(self) -> torch.dtype:
        """The model's parameter dtype: positions reach the model in it."""
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        if self.fallback_dtype is not None:
            return self.fallback_dtype
        raise self.error(f"the {self.framework} model has no floating-point parameters")

    def _positions(self, positions, batched: bool = False) -> Tuple[torch.Tensor, torch.dtype]:
        """``(positions as a floating tensor, the dtype outputs take)``: the caller's dtype,
        float64 for integer positions; :attr:`error` unless the shape is ``(n_atoms, 3)``
        (``(B, n_atoms, 3)`` when ``batched``)."""
        pos = torch.as_tensor(positions)
        dtype = pos.dtype if pos.is_floating_point() else torch.float64
        if pos.ndim != (3 if batched else 2) or pos.shape[-1] != 3:
            shape = "(B, n_atoms, 3)" if batched else "(n_atoms, 3)"
            raise self.error(f"positions must have shape {shape}, got {tuple(pos.shape)}")
        if not pos.is_floating_point():
            pos = pos.to(torch.float64)
        return pos, dtype

    def _elements(self) -> Tuple[AbstractSet[int], str]:
        """The atomic numbers the model knows and how a message describes them."""
        raise NotImplementedError

    def _numbers(self, numbers, n_atoms: int) -> np.ndarray:
        """The atomic numbers of ``n_atoms`` atoms as an int64 array; :attr:`error` for
        another count or an element the model does not know."""
        nums = torch.as_tensor(numbers).detach().to("cpu", torch.long).reshape(-1).numpy()
        if nums.shape[0] != n_atoms:
            raise self.error(f"{nums.shape[0]} atomic numbers for {n_atoms} atoms")
        known, described = self._elements()
        unknown = sorted({int(z) for z in nums.tolist()} - set(known))
        if unknown:
            raise self.error(f"atomic numbers {unknown} ({element_names(unknown)}) are not "
                             f"elements of the {self.framework} model ({described})")
        return nums
