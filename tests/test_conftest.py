"""The shared fixtures and the guard of ``conftest.py``: a planted offender is caught."""

from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import rotation, toy_dataset, wigner_D

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

PLANTED = '''
import torch

from empirical.runtime import default_dtype


def test_leaves_float64_behind():
    torch.set_default_dtype(torch.float64)


def test_sets_and_restores():
    with default_dtype(torch.float64):
        assert torch.get_default_dtype() == torch.float64


def test_after_the_offender_runs_in_the_dtype_it_found():
    assert torch.get_default_dtype() == torch.float32
'''


def test_a_test_that_leaves_the_default_dtype_changed_fails_by_name(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_planted=PLANTED)
    before = torch.get_default_dtype()
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    assert torch.get_default_dtype() == before
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaves_float64_behind*",
        "*test_planted.py::test_leaves_float64_behind left torch's default dtype "
        "torch.float64 (it was torch.float32)*"])


def test_aspirin_is_shared_and_read_only(aspirin, request):
    assert aspirin is request.getfixturevalue("aspirin")
    assert aspirin.n_atoms == 21 and aspirin.formula == "C9H8O4"
    with pytest.raises(ValueError, match="read-only"):
        aspirin.positions[0, 0, 0] = 1.0


def test_helpers():
    data = toy_dataset(n=10, atoms=5, seed=3)
    assert data.positions.shape == (10, 5, 3) and data.metadata["marked_bond"]["atoms"] == [0, 1]
    R = rotation(4)
    assert torch.equal(R, rotation(4)) and torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype))
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)
    D = wigner_D("1x1o", R)
    assert D.dtype == torch.float64 and torch.get_default_dtype() == torch.float32
    np.testing.assert_allclose(D.numpy(), R.numpy(), atol=1e-12)     # a vector rotates by R
