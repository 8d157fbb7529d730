"""The adapter registry's own pieces: the ``native`` adapter (this package's checkpoints),
the typed :class:`BackboneEntry`, :func:`resolve_backbones`, and the base class every
framework backbone shares (:class:`FrameworkBackbone`). No other framework is needed."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from empirical import adapters
from empirical.adapters import BackboneEntry, resolve_backbones
from empirical.adapters._base import FrameworkBackbone
from empirical.backbone import Backbone, shipped_paths

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "aspirin_L2_seed0"


def _recorded(name: str) -> dict:
    """The committed reference run's record of shipped backbone ``name``."""
    payload = json.loads((ROOT / "docs/diagnose_aspirin/results.json").read_text())
    return next(b for b in payload["backbones"] if b["name"] == name)


# -- the native adapter --------------------------------------------------------------------

def test_shipped_name_records_what_the_reference_run_recorded():
    """A plain shipped name goes through the native adapter, and its entry carries exactly
    what docs/diagnose_aspirin/results.json records of it."""
    entry = resolve_backbones([SHIPPED])[0]
    assert isinstance(entry, BackboneEntry) and isinstance(entry.backbone, Backbone)
    record = _recorded(SHIPPED)
    keys = ("source", "sha256", "seed", "test_energy_mae_meV", "test_force_mae_meV_per_A")
    assert entry.info() == {k: record[k] for k in keys}
    assert list(entry.info()) == list(keys) and entry.extra == {}
    assert entry.source == f"shipped backbone {SHIPPED}"


def test_native_spec_is_the_plain_name():
    assert "native" in adapters.ADAPTERS and adapters.is_spec(f"native:{SHIPPED}")
    plain, prefixed = resolve_backbones([SHIPPED, f"native:{SHIPPED}"], names=["a", "b"])
    assert plain.info() == prefixed.info()
    assert adapters.adapter("native").available() == []


def test_user_checkpoint_is_recorded_as_given(tmp_path, monkeypatch):
    """A checkpoint path is recorded as the user typed it, never resolved to this machine's
    absolute path; ``native:PATH`` gives the same entry."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    shutil.copy(shipped_paths()[SHIPPED], tmp_path / "runs" / "mine.pt")
    for spec in ("runs/mine.pt", "native:runs/mine.pt", Path("runs/mine.pt")):
        entry = resolve_backbones([spec])[0]
        assert entry.name == "mine" and entry.source == "runs/mine.pt"
        assert not Path(entry.source).is_absolute() and str(tmp_path) not in entry.source
        assert entry.sha256 == hashlib.sha256(Path("runs/mine.pt").read_bytes()).hexdigest()
        assert entry.seed == 0 and entry.test_energy_mae_meV is not None


def test_native_from_model_and_unknown_names():
    native = adapters.adapter("native")
    model = native.load(SHIPPED)
    assert native.from_model(model) is model
    with pytest.raises(TypeError, match="not an empirical.backbone.Backbone"):
        native.from_model(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError):
        resolve_backbones(["native:no_such_backbone"])


# -- BackboneEntry and resolve_backbones ---------------------------------------------------

def test_entry_info_round_trips_with_extra_keys_in_order():
    entry = BackboneEntry(name="m", source="sevenn/x.pth (sevenn 0.13.0)", sha256="ab",
                          extra={"sevenn_layer": "3_equivariant_gate", "parameters": 7})
    info = entry.info()
    assert list(info) == ["source", "sha256", "seed", "test_energy_mae_meV",
                          "test_force_mae_meV_per_A", "sevenn_layer", "parameters"]
    back = BackboneEntry.from_info("m", info)
    assert back == entry and back.backbone is None
    assert entry.renamed("n").name == "n" and entry.renamed("n").extra == entry.extra
    with pytest.raises(AttributeError):
        entry.name = "other"           # frozen


def test_resolve_checks_names_protocol_and_objects():
    model = adapters.adapter("native").load(SHIPPED)
    entry = resolve_backbones([model])[0]
    assert entry.name == "Backbone_0" and entry.backbone is model
    assert entry.source == "python object empirical.backbone._model.Backbone"
    assert entry.info()["sha256"] is None and entry.seed == -1
    with pytest.raises(ValueError, match="two backbones are named"):
        resolve_backbones([SHIPPED, SHIPPED])
    with pytest.raises(ValueError, match="1 names for 2 backbones"):
        resolve_backbones([SHIPPED, model], names=["x"])
    with pytest.raises(ValueError, match="no backbones given"):
        resolve_backbones([])
    with pytest.raises(ValueError, match="cannot be diagnosed"):
        resolve_backbones([object()])


# -- the framework base class --------------------------------------------------------------

class _ToyError(ValueError):
    pass


class _Toy(FrameworkBackbone):
    error = _ToyError
    framework = "Toy"

    def __init__(self, model):
        self.model = model

    def _elements(self):
        return {1, 6}, "it knows H and C"


def test_framework_backbone_plumbing():
    bb = _Toy(torch.nn.Linear(3, 2).double())
    assert bb.device == torch.device("cpu") and bb.to("cpu") is bb and bb.eval() is bb
    assert bb.dtype == torch.float64 and len(list(bb.parameters())) == 2
    pos, dtype = bb._positions(torch.zeros(4, 3, dtype=torch.int64))
    assert pos.dtype == torch.float64 and dtype == torch.float64
    pos, dtype = bb._positions(torch.zeros(2, 4, 3, dtype=torch.float32), batched=True)
    assert pos.dtype == dtype == torch.float32
    with pytest.raises(_ToyError, match=r"shape \(n_atoms, 3\), got \(4, 2\)"):
        bb._positions(torch.zeros(4, 2))
    with pytest.raises(_ToyError, match=r"shape \(B, n_atoms, 3\)"):
        bb._positions(torch.zeros(4, 3), batched=True)
    assert bb._numbers(torch.tensor([6, 1]), 2).tolist() == [6, 1]
    with pytest.raises(_ToyError, match="1 atomic numbers for 2 atoms"):
        bb._numbers([6], 2)
    with pytest.raises(_ToyError, match=r"\[8\] \(O\) are not elements of the Toy model "
                                        r"\(it knows H and C\)"):
        bb._numbers([6, 8], 2)
    empty = _Toy(torch.nn.Identity())
    assert empty.device == torch.device("cpu")
    with pytest.raises(_ToyError, match="no floating-point parameters"):
        empty.dtype
    empty.fallback_dtype = torch.float32
    assert empty.dtype == torch.float32


def test_recorded_sources_are_never_absolute():
    """Every source the registry records for what this environment can load without a
    download names no path of this machine."""
    specs = [SHIPPED, *adapters.available()]
    for entry in resolve_backbones(specs[:2]):
        path = entry.source.split(": ", 1)[-1].split(" (")[0]
        assert not Path(path).is_absolute(), entry.source
        assert str(Path.home()) not in entry.source and str(ROOT) not in entry.source
