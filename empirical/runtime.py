"""Run plumbing shared by every command, below the stages (data, backbone, diagnostic, ...).

One home for what each stage and command needs the same way:

* provenance: :func:`versions` (the packages a result depends on), :func:`dataset_fingerprint`;
* random streams: :func:`stream` and the one registry of stream keys :data:`STREAMS`
  (docs/method.md §2.6: every random choice is drawn from ``[seed, key, ...]``);
* devices and dtypes: :func:`resolve_device`, :func:`place`, :func:`default_dtype`;
* progress on long work: :class:`Progress` (``tqdm``, the convention of SevenNet and MACE:
  it handles non-terminals, nested bars and notebooks);
* shared constants: :data:`SAMPLES_PER_COEFFICIENT`, :data:`FIT_UNITS`, and :func:`max_l`;
* :func:`tune_malloc` (glibc's allocator for CPU inference, :mod:`empirical._malloc`).
"""

from __future__ import annotations

import hashlib
import platform
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import numpy as np

from ._malloc import tune_malloc

__all__ = ["versions", "dataset_fingerprint", "STREAMS", "stream", "resolve_device", "place",
           "default_dtype", "Progress", "SAMPLES_PER_COEFFICIENT", "FIT_UNITS", "max_l",
           "tune_malloc", "VERSIONED_PACKAGES", "MAX_BYTES", "WorkLimitExceeded",
           "max_bytes"]

#: Distributions whose versions every result records (those installed).
VERSIONED_PACKAGES = ("numpy", "scipy", "sympy", "torch", "e3nn", "scikit-learn",
                      "spectral-ceilings", "nequip", "sevenn", "mace-torch")

#: The one registry of random-stream keys: a stream is ``[seed, STREAMS[name], ...]``.
#: The values are part of every recorded result (changing one changes the draws), so
#: they never change; a new stream takes a new value. Unique (tested).
STREAMS = {
    # the injected signal's coefficients (empirical.diagnostic: inject, signal)
    "coefficients": 1,
    # the diagnostic's plan (docs/method.md §2.6)
    "frames": 11, "split": 12, "rotations": 13, "cv": 14, "bootstrap": 15,
    # the C5 calibration (docs/method.md §3)
    "c5_data": 21, "c5_split": 22, "c5_rotations": 23, "c5_cv": 24, "c5_train": 25,
    # one model's (one sweep group's) own plan seed in survey, profile and sweep:
    # [seed, 31, the name's key] (docs/method.md §2.9-§2.11; empirical.survey.model_seed)
    "model": 31,
    # the probe-fit refits of the boundary cell (docs/method.md §2.6): refit j's split of
    # the configurations is [seed, 16, j], its cross-validation folds [seed, 16, j, 14]
    "refit": 16,
    # the equivariance check's configurations and rotations: [seed, 17, backbone index]
    # (docs/method.md §2.13)
    "equivariance": 17,
    # the derived samples the per-run check runs through the model: [seed, 18, index]
    "derivation_check": 18,
}

#: The probe's budget: at least this many training samples per polynomial coefficient
#: (``auto_k``, the capacity sweep and the controls' frame count all use it).
SAMPLES_PER_COEFFICIENT = 2

#: Progress units of one probe fit, relative to one configuration's features.
FIT_UNITS = 50

#: Memory one request may plan for, in bytes (``EMPIRICAL_MAX_BYTES`` raises it): the
#: default diagnose run plans for about 0.45 GB.
MAX_BYTES = 8 * 1024 ** 3


class WorkLimitExceeded(ValueError):
    """A request whose estimated memory is above :func:`max_bytes` (refused before work)."""


def max_bytes() -> int:
    """The memory limit of one request: ``EMPIRICAL_MAX_BYTES`` if set, else
    :data:`MAX_BYTES`; ``ValueError`` for a value that is not an integer."""
    import os

    raw = os.environ.get("EMPIRICAL_MAX_BYTES")
    if raw is None:
        return MAX_BYTES
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"EMPIRICAL_MAX_BYTES={raw!r} is not an integer") from None


def versions() -> Dict[str, str]:
    """``{"python": ..., package: version}`` for :data:`VERSIONED_PACKAGES` installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def dataset_fingerprint(dataset) -> str:
    """SHA-256 of a dataset's positions, numbers, energies and forces (their bytes)."""
    h = hashlib.sha256()
    for arr in (dataset.positions, dataset.numbers, dataset.energies, dataset.forces):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def stream(seed: int, *keys: int) -> int:
    """An integer seed for the random stream ``[seed, *keys]`` (numpy SeedSequence).

    >>> stream(0, STREAMS["frames"]) == stream(0, 11)
    True
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def max_l(irreps) -> int:
    """The highest degree ``l`` in ``irreps`` (anything ``e3nn.o3.Irreps`` reads); 0 if empty.

    >>> max_l("8x0e+4x1o+2x2e")
    2
    """
    from e3nn import o3

    irreps = o3.Irreps(irreps)
    return irreps.lmax if len(irreps) else 0     # e3nn's lmax refuses empty Irreps


@contextmanager
def default_dtype(dtype) -> Iterator[None]:
    """Set torch's default dtype inside the block and restore the previous one after it,
    on an exception too (e3nn builds its constants and generators in the default dtype)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def resolve_device(device):
    """``None`` (leave every backbone where it is), or the ``torch.device`` for ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``; ``ValueError`` naming the problem for anything else or for
    a CUDA device this machine does not have."""
    import torch

    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device: cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device is available here (torch "
                         f"{torch.__version__}{'' if torch.version.cuda else ', a CPU build'})")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                         "device(s)")
    return dev


def place(entries, device) -> None:
    """Move every backbone of ``entries`` (objects with ``name`` and ``backbone``, e.g.
    :class:`empirical.adapters.BackboneEntry`) to ``device`` (protocol ``to``); a backbone
    that cannot move and is elsewhere is refused (``ValueError``) before any work."""
    from .backbone import model_device, supports

    if device is None:
        return
    for entry in entries:
        name, obj = entry.name, entry.backbone
        if model_device(obj) == device:
            continue
        if not supports(obj, "device"):
            raise ValueError(f"backbone {name!r} cannot be moved to {device}: it has no "
                             "to(device) (see the backbone protocol)")
        moved = obj.to(device)
        if moved is not None and moved is not obj and model_device(obj) != device:
            raise ValueError(f"backbone {name!r}: to({device}) returned a new object; the "
                             "protocol's to(device) moves the backbone in place")


class Progress:
    """A progress bar for long work on stderr, through ``tqdm``.

    ``advance(n, label)`` adds ``n`` units of work and shows ``label``; ``enabled=None``
    shows the bar only when stderr is a terminal (tqdm's ``disable=None``), ``False``
    never (``--no-progress``). Use as a context manager or call :meth:`close`. The bar
    only reports: it changes no result."""

    def __init__(self, total: float, enabled: Optional[bool] = None, desc: str = "",
                 unit: str = "it", stream=None):
        from tqdm.auto import tqdm

        disable = None if enabled is None else not enabled
        self._bar = tqdm(total=max(float(total), 1e-9), disable=disable, desc=desc or None,
                         unit=unit, file=stream or sys.stderr, mininterval=0.5,
                         dynamic_ncols=True, leave=False,
                         bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    @property
    def enabled(self) -> bool:
        return not self._bar.disable

    def advance(self, n: float = 1.0, label: Optional[str] = None) -> None:
        if label is not None:
            self._bar.set_postfix_str(label, refresh=False)
        self._bar.update(n)

    def set_label(self, label: str) -> None:
        self._bar.set_postfix_str(label)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
