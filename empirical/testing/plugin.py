"""pytest fixtures of :mod:`empirical.testing`; in a ``conftest.py``::

    pytest_plugins = ["empirical.testing.plugin"]

Fixtures: ``spectral_ceiling`` (the function), ``assert_spectral_ceiling``,
``assert_equivariant_features`` and ``aspirin`` (the shipped dataset, loaded once per
session).
"""

import pytest


@pytest.fixture
def spectral_ceiling():
    from . import spectral_ceiling as f
    return f


@pytest.fixture
def assert_spectral_ceiling():
    from . import assert_spectral_ceiling as f
    return f


@pytest.fixture
def assert_equivariant_features():
    from . import assert_equivariant_features as f
    return f


@pytest.fixture(scope="session")
def aspirin():
    from ..data import load
    return load("aspirin")
