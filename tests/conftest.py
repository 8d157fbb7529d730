"""Shared test settings and fixtures.

* hypothesis profiles sized for a 2-core CI machine (``HYPOTHESIS_PROFILE``);
* ``aspirin``: the shipped aspirin dataset, loaded once per session;
* a guard on every test: one that leaves torch's default dtype changed fails, by name
  (set it with ``empirical.runtime.default_dtype``, which restores it).

Plain helper functions shared by several files live in ``_helpers.py``.
"""

import os
import sys

# One OpenMP thread for tblite (set before it is first imported): reproducible MD in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the CLI's default feature cache lives in the user's cache directory: tests never write
# there (a test of the cache names its own directory, or sets these itself)
os.environ["SPECTRAL_CEILINGS_CACHE"] = "off"

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def aspirin():
    """The shipped aspirin dataset (``empirical.data.load("aspirin")``), loaded once: a
    ``Dataset`` is frozen and its arrays are read-only, so the tests share it."""
    from empirical.data import load

    return load("aspirin")


def _torch_default_dtype():
    """Torch's default dtype, or ``None`` while torch is not imported (nothing can have
    changed it then, and the guard does not import torch for tests that never use it)."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.get_default_dtype()


@pytest.fixture(autouse=True)
def _default_dtype_restored(request):
    """Fail the test that leaves torch's default dtype other than it found it (and put the
    dtype back, so that the tests after it run as they would alone)."""
    before = _torch_default_dtype()
    yield
    after = _torch_default_dtype()
    if before is None and after is not None:
        import torch

        before = torch.float32                    # torch's own default, set at its import
    if after != before:
        sys.modules["torch"].set_default_dtype(before)
        pytest.fail(f"{request.node.nodeid} left torch's default dtype {after} (it was "
                    f"{before}): use empirical.runtime.default_dtype", pytrace=False)
