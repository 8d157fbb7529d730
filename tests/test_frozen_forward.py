"""The frozen forward pass (``torch.no_grad``: the per-path weights, edge chunks and
per-configuration neighbour search of ``_EdgeTensorProduct.forward_frozen`` and
``Backbone._edges``) gives what the autograd path gives (docs/method.md §2.2)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.backbone import Backbone, BackboneConfig, load, shipped_paths
from empirical.backbone import _model
from empirical.data import load as load_dataset


def _both(model, pos, nums, batch):
    with torch.enable_grad():
        h1, e1 = model.features_and_energy(pos, nums, batch)
    with torch.no_grad():
        h2, e2 = model.features_and_energy(pos, nums, batch)
    return h1.detach(), e1.detach(), h2, e2


def test_shipped_backbones_are_bit_identical_frozen_and_with_autograd():
    data = load_dataset("aspirin")
    model = load(shipped_paths()["aspirin_L2_seed0"])
    m, n = 8, data.n_atoms
    pos = torch.tensor(data.positions[:m].reshape(-1, 3), dtype=torch.float32)
    nums = torch.tensor(np.tile(data.numbers, m), dtype=torch.long)
    batch = torch.arange(m).repeat_interleave(n)
    h1, e1, h2, e2 = _both(model, pos, nums, batch)
    assert torch.equal(h1, h2) and torch.equal(e1, e2)


@settings(max_examples=12, deadline=None)
@given(L=st.integers(1, 3), seed=st.integers(0, 1000), m=st.integers(1, 5),
       shuffled=st.booleans(), chunk=st.sampled_from([64, 2 ** 19]))
def test_frozen_pass_equals_the_autograd_pass(L, seed, m, shuffled, chunk):
    """Random models of L = 1..3 in float64, batches of 1..5 configurations, the batch
    vector in order (per-configuration neighbour search) or shuffled (all pairs), edges in
    tiny chunks or one."""
    old = _model.EDGE_CHUNK_FLOATS
    _model.EDGE_CHUNK_FLOATS = chunk
    try:
        model = Backbone(BackboneConfig(L=L, channels=4, layers=2), seed=seed,
                         dtype=torch.float64)
        rng = np.random.default_rng(seed)
        n = 6
        pos = torch.tensor(rng.normal(scale=1.5, size=(m * n, 3)))
        nums = torch.tensor(rng.choice([1, 6, 8], size=m * n))
        batch = torch.arange(m).repeat_interleave(n)
        if shuffled:
            batch = batch[torch.tensor(rng.permutation(m * n))]
        h1, e1, h2, e2 = _both(model, pos, nums, batch)
        assert torch.allclose(h1, h2, rtol=1e-10, atol=1e-10)
        assert torch.allclose(e1, e2, rtol=1e-10, atol=1e-10)
    finally:
        _model.EDGE_CHUNK_FLOATS = old
