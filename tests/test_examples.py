"""The examples run: a user's own e3nn model wrapped in the two protocol methods."""

import importlib.util
from pathlib import Path

import torch

from empirical.backbone import check_protocol, equivariance_error
from empirical.data import load as load_data
from empirical.diagnostic import diagnose

ROOT = Path(__file__).resolve().parents[1]


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_e3nn_model_example_is_diagnosable():
    example = _example("own_e3nn_model")
    model = example.build(seed=0)
    check_protocol(model)
    data = load_data("aspirin")
    pos = torch.tensor(data.positions[0])
    num = torch.tensor(data.numbers)
    rot = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    assert equivariance_error(model, pos, num, rot) < 1e-4
    assert equivariance_error(model, pos, num, -rot) < 1e-4
    res = diagnose(backbones=[model], names=["gate-points"], dataset=data, degrees=(1,),
                   lmax=3, frames=200, n_boot=20, k_sweep=(), progress=False).to_dict()
    s = res["summary"]["1"]
    assert s["ceiling"] == 2
    assert s["rho"]["3"] is not None and abs(s["rho"]["3"]) < 0.3      # blind above dL
    assert res["backbones"][0]["equivariance_error"]["rotation"] < 1e-4
