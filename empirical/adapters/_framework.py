"""What every adapter does around its framework, written once: import it and check its
version (:func:`framework_version`), and leave the process as it was found
(:func:`preserved_process_state`). Frameworks change process-wide state when imported or
when they build a model (nequip: float64 default dtype, a global seed and e3nn's
``jit_mode``; MACE:
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in ``os.environ``; SevenNet: the random state its
initialisation consumes)."""

from __future__ import annotations

import contextlib
import importlib
import os
import random
from typing import Callable, Iterable, Iterator, Sequence, Tuple, Type, Union

import numpy as np
import torch

__all__ = ["framework_version", "preserved_process_state"]


def framework_version(package: str, supported: Tuple[int, int], missing: Type[Exception],
                      message: str, *, label: str = "", submodules: Sequence[str] = (),
                      guard: Callable[[], contextlib.AbstractContextManager] = None,
                      import_errors: Tuple[Type[Exception], ...] = (ImportError,)) -> str:
    """Import ``package`` (and ``package.<submodule>`` for each of ``submodules``) inside
    ``guard()`` when given, and return its version; raise ``missing(message + reason)``
    when it is absent, fails to import (any of ``import_errors``) or is not version
    ``supported`` (major, minor). ``label`` names it in the message (default ``package``)."""
    label = label or package
    try:
        with (guard() if guard is not None else contextlib.nullcontext()):
            module = importlib.import_module(package)
            for sub in submodules:
                importlib.import_module(f"{package}.{sub}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == package:
            raise missing(message) from None
        raise missing(f"{message} (importing {package} failed: {exc})") from None
    except import_errors as exc:
        raise missing(f"{message} (importing {package} failed: {exc})") from None
    version = str(getattr(module, "__version__", ""))
    try:
        major_minor = tuple(int(x) for x in version.split(".")[:2])
    except ValueError:
        major_minor = ()
    if major_minor != tuple(supported):
        raise missing(f"{message} (found {label} {version or 'of unknown version'})")
    return version


@contextlib.contextmanager
def preserved_process_state(environ: Union[bool, Iterable[str]] = True) -> Iterator[None]:
    """Restore, on exit, torch's default dtype, e3nn's optimization settings, the torch
    (CPU, and CUDA when initialised), numpy and ``random`` generator states, and
    ``os.environ``: exactly (keys added removed,
    keys changed reset) when ``environ`` is True, only the named keys when it is a list of
    names (settings a framework must keep, such as nequip's TorchScript flags, stay)."""
    dtype = torch.get_default_dtype()
    torch_rng = torch.get_rng_state()
    cuda_rng = (torch.cuda.get_rng_state_all()
                if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    keys = None if environ is True else list(environ or ())
    saved = dict(os.environ) if keys is None else {k: os.environ.get(k) for k in keys}
    e3nn_opt = _e3nn_defaults()
    try:
        yield
    finally:
        _restore_e3nn_defaults(e3nn_opt)
        torch.set_default_dtype(dtype)
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)
        if keys is None:
            for key in set(os.environ) - set(saved):
                del os.environ[key]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            elif os.environ.get(key) != value:
                os.environ[key] = value


def _e3nn_defaults() -> dict:
    """A copy of e3nn's process-wide optimization settings (``jit_mode`` and the rest)."""
    import e3nn

    return dict(e3nn.get_optimization_defaults())


def _restore_e3nn_defaults(saved: dict) -> None:
    """Put e3nn's optimization settings back exactly. nequip's
    ``conditional_torchscript_mode`` restores only the legacy ``jit_script_fx`` flag, and
    e3nn maps ``jit_script_fx=True`` to ``jit_mode="script"``: after a nequip model was
    loaded, every e3nn module built later (a MACE model's spherical harmonics) held a
    ``torch.jit.script`` function, which cannot be copied or pickled. ``jit_mode`` is set
    last, since setting ``jit_script_fx`` rewrites it."""
    import e3nn

    rest = {k: v for k, v in saved.items() if k not in ("jit_script_fx", "jit_mode")}
    if rest:
        e3nn.set_optimization_defaults(**rest)
    if "jit_script_fx" in saved:
        e3nn.set_optimization_defaults(jit_script_fx=saved["jit_script_fx"])
    if "jit_mode" in saved:
        e3nn.set_optimization_defaults(jit_mode=saved["jit_mode"])

