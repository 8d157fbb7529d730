"""Backbone checkpoints: save, load, list the shipped ones.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``: plain tensors,
numbers, strings, lists and dicts only):

``format``      ``"empirical-backbone/1"``
``config``      :class:`~empirical.backbone._model.BackboneConfig` as a dict
``seed``        initialization seed; ``dtype`` ``"float32"`` or ``"float64"``
``state_dict``  model weights
``metadata``    training record: data source, splits (sizes, seed, indices), history per
                epoch, best epoch, validation and held-out test MAE, versions, hardware
``training``    only in resumable checkpoints (``last.pt``): optimizer, scheduler and RNG
                states, epoch counter

A file whose name ends in ``.xz`` is the same dict, xz-compressed (``lzma``, standard
library); :func:`read_checkpoint` decompresses it transparently. The shipped control
backbones are stored that way (:func:`compress_checkpoint`).
"""

from __future__ import annotations

import io
import json
import lzma
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..io import atomic_path
from ._model import Backbone, BackboneConfig

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "read_checkpoint", "load",
           "shipped", "shipped_paths", "SHIPPED_DIR", "ROLES", "checkpoint_name",
           "compress_checkpoint"]

FORMAT = "empirical-backbone/1"
SHIPPED_DIR = "shipped"
#: Roles of the shipped backbones -> their folder under :data:`SHIPPED_DIR`: the four L = 2
#: aspirin backbones that ``empirical diagnose`` pools by default, and the backbones that
#: only ``empirical controls`` reads (other widths, gates and L).
ROLES = {"diagnostic": "", "control": "controls"}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or is not a backbone checkpoint."""


def save_checkpoint(path, model: Backbone, metadata: dict, training: dict = None) -> Path:
    """Write a checkpoint atomically (temporary file + rename)."""
    path = Path(path)
    blob = {"format": FORMAT, "config": model.config.to_dict(), "seed": model.seed,
            "dtype": "float64" if model.dtype == torch.float64 else "float32",
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metadata": json.loads(json.dumps(metadata))}
    if training is not None:
        blob["training"] = training
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def checkpoint_name(path) -> str:
    """A checkpoint file's name without ``.pt`` / ``.pt.xz``."""
    name = Path(path).name
    for suffix in (".xz", ".pt"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    return name


def compress_checkpoint(src, dst) -> Path:
    """Write checkpoint ``src`` xz-compressed to ``dst`` (atomically), unchanged otherwise."""
    data = lzma.compress(Path(src).read_bytes(), preset=9)
    with atomic_path(Path(dst)) as tmp:
        Path(tmp).write_bytes(data)
    return Path(dst)


#: Largest decompressed ``.pt.xz`` read (bytes): the 128-channel control is 8.2 MB, so a
#: file expanding beyond this is not one of ours (a decompression bomb).
MAX_DECOMPRESSED = 256 * 1024 * 1024


def _read_xz(path: Path) -> bytes:
    """Decompress at most :data:`MAX_DECOMPRESSED` bytes; ``CheckpointError`` beyond."""
    with lzma.open(path) as fh:
        data = fh.read(MAX_DECOMPRESSED + 1)
    if len(data) > MAX_DECOMPRESSED:
        raise CheckpointError(f"{str(path)!r} expands to more than {MAX_DECOMPRESSED >> 20} MiB: "
                              "not a checkpoint of this package")
    return data


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict, validated. Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        from ..io import why_not_a_file
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {why_not_a_file(path)}")
    if path.suffix == ".xz":
        try:
            raw = _read_xz(path)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: it is corrupt "
                                  f"({type(exc).__name__})") from None
    try:
        if path.suffix == ".xz":
            blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        else:
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: it is corrupt or not a "
                              f"torch file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an {FORMAT} checkpoint")
    for key in ("config", "seed", "dtype", "state_dict", "metadata"):
        if key not in blob:
            raise CheckpointError(f"checkpoint {str(path)!r} lacks {key!r}")
    return blob


def _one_line(exc: Exception) -> str:
    """A state-dict mismatch names every tensor on its own line: keep the first, count the
    rest."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    details = [ln for ln in lines[1:] if ln.startswith(("size mismatch", "Missing", "Unexpected"))]
    if not details:
        return lines[0] if lines else type(exc).__name__
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{details[0].rstrip('.')}{more}: its config does not describe these weights"


def load(path, device: str = "cpu") -> Backbone:
    """Load a checkpoint as a frozen :class:`Backbone` in eval mode.

    ``path`` is a file or the name of a shipped backbone (see :func:`shipped`). The model's
    ``metadata`` attribute carries the training record.
    """
    names = shipped_paths() if not Path(str(path)).exists() else {}
    if str(path) in names:
        path = names[str(path)]
    blob = read_checkpoint(path)
    # every size of the config is checked (BackboneConfig) before any module is built
    try:
        config = BackboneConfig.from_dict(blob["config"])
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unusable config: {exc}") from None
    seed, dtype = blob["seed"], blob["dtype"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise CheckpointError(f"checkpoint {str(path)!r}: seed {str(seed)[:40]!r} is not an "
                              "integer in [0, 2^63)")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise CheckpointError(f"checkpoint {str(path)!r}: dtype {str(dtype)[:40]!r} is not one "
                              f"of {', '.join(_DTYPES)}")
    if not isinstance(blob["state_dict"], dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: state_dict is not a dict")
    try:
        model = Backbone(config, seed=seed, dtype=_DTYPES[dtype])
        model.load_state_dict(blob["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the backbone: "
                              f"{_one_line(exc)}") from None
    model.metadata = blob["metadata"]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def shipped_paths() -> Dict[str, str]:
    """Name -> path of every shipped backbone, from the file names alone (no file is
    read: :func:`shipped` opens each one, the xz-compressed controls included)."""
    base = Path(str(resources.files("empirical.backbone").joinpath(SHIPPED_DIR)))
    out = {}
    for folder in ROLES.values():
        for path in sorted([*(base / folder).glob("*.pt"), *(base / folder).glob("*.pt.xz")]):
            out[checkpoint_name(path)] = str(path)
    return out


def shipped(role: Optional[str] = None) -> List[Dict]:
    """The backbones shipped in the package: name, role, path, L, seed, channels,
    activation, training frames, epochs, held-out MAEs; sorted by role then name.

    ``role``: ``"diagnostic"`` (the four L = 2 aspirin backbones ``empirical diagnose``
    pools by default), ``"control"`` (the backbones of ``empirical controls``) or None (all).
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    base = Path(str(resources.files("empirical.backbone").joinpath(SHIPPED_DIR)))
    out = []
    for name, folder in ROLES.items():
        if role is not None and name != role:
            continue
        files = [*(base / folder).glob("*.pt"), *(base / folder).glob("*.pt.xz")]
        for path in sorted(files):
            blob = read_checkpoint(path)
            meta = blob["metadata"]
            test = meta.get("test", {})
            out.append({"name": checkpoint_name(path), "role": name, "path": str(path),
                        "L": blob["config"]["L"], "seed": blob["seed"],
                        "channels": blob["config"].get("channels"),
                        "activation": blob["config"].get("activation"),
                        "training_frames": meta.get("splits", {}).get("sizes", {}).get("train"),
                        "energy_mae_meV": test.get("energy_mae_meV"),
                        "energy_mae_meV_per_atom": test.get("energy_mae_meV_per_atom"),
                        "force_mae_meV_per_A": test.get("force_mae_meV_per_A"),
                        "epochs": meta.get("epochs_run"), "status": meta.get("status")})
    return out
