"""spanthm's public face: ``__all__`` is derived from the lazy exports, and every name in it
resolves (docs/method.md §6: packages meet only at their public faces)."""

import importlib

import spanthm


def test_all_and_the_lazy_exports_cannot_disagree():
    assert set(spanthm.__all__) == set(spanthm._EXPORTS) | {"__version__", "harmonics"}
    assert len(spanthm.__all__) == len(set(spanthm.__all__))


def test_every_public_name_resolves_where_the_exports_say():
    for name in spanthm.__all__:
        assert getattr(spanthm, name) is not None, name
    for name, module in spanthm._EXPORTS.items():
        home = importlib.import_module(module, "spanthm")
        assert getattr(spanthm, name) is getattr(home, name), name
    assert set(spanthm.__all__) <= set(dir(spanthm))
