"""Helpers for anyone's test suite: hypothesis strategies and assertions on theorem instances.

Like ``e3nn.util.test.assert_equivariant``, these are meant to be called from a model
developer's own tests::

    from hypothesis import given
    from spanthm.testing import instances, assert_methods_agree, assert_theorem_instance

    def test_quadratic_probe_of_l2_features():
        assert_theorem_instance(L=2, d=2)            # spectrum {0..4}, boundary multiplicity 1

    @given(instances(max_degree=4, max_d=3))
    def test_methods_agree(instance):
        features, d, exactly = instance
        assert_methods_agree(features, d, exactly=exactly)

Every assertion raises ``AssertionError`` whose message names the instance and what differed.
Needs ``hypothesis`` for the strategies (the ``test`` extra).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from ._spectrum import spectrum

__all__ = ["feature_sets", "probe_degrees", "instances", "assert_theorem_instance",
           "assert_spectrum", "assert_methods_agree"]


def _st():
    try:
        from hypothesis import strategies
    except ImportError:  # pragma: no cover - the test extra is missing
        raise ImportError("spanthm.testing strategies need hypothesis: "
                          "pip install 'spectral-ceilings[test]'") from None
    return strategies


def feature_sets(max_degree: int = 6, max_size: int = 4, min_size: int = 1):
    """Non-empty sets of distinct degrees in ``0..max_degree``, as sorted tuples."""
    st = _st()
    return st.sets(st.integers(0, max_degree), min_size=min_size, max_size=max_size).map(
        lambda s: tuple(sorted(s)))


def probe_degrees(max_d: int = 4):
    """Probe degrees ``1..max_d``."""
    return _st().integers(1, max_d)


def instances(max_degree: int = 6, max_d: int = 4, max_size: int = 4, exactly=None):
    """``(features, d, exactly)`` triples; ``exactly`` drawn unless fixed."""
    st = _st()
    flag = st.booleans() if exactly is None else st.just(bool(exactly))
    return st.tuples(feature_sets(max_degree, max_size), probe_degrees(max_d), flag)


def _name(features, d, exactly) -> str:
    kind = "P_={d}".format(d=d) if exactly else f"P_{d}"
    return f"{kind}(S = {{{', '.join(map(str, features))}}})"


def assert_theorem_instance(L: int, d: int, method: str = "exact") -> None:
    """The span theorem holds exactly for ``S = {0..L}`` and ``d``: the spectrum is
    ``{0, ..., dL}`` with every degree in full, nothing above, boundary multiplicity one."""
    features = tuple(range(L + 1))
    r = spectrum(features, d, method=method)
    expected = list(range(d * L + 1))
    problems = []
    if r.degrees != expected:
        problems.append(f"degrees {r.degrees}, expected {expected}")
    if r.theorem != "holds":
        problems.append(f"theorem verdict {r.theorem!r}")
    if r.boundary_multiplicity != 1:
        problems.append(f"boundary multiplicity {r.boundary_multiplicity}, expected 1")
    if problems:
        raise AssertionError(f"span theorem instance L = {L}, d = {d} "
                             f"({_name(features, d, False)}, method {method}): "
                             + "; ".join(problems))


def assert_spectrum(features: Iterable[int], d: int, expected_degrees: Sequence[int],
                    exactly: bool = False, method: str = "exact") -> None:
    """The degrees ``l`` with ``H_l`` in the probe space are exactly ``expected_degrees``."""
    features = tuple(sorted(features))
    r = spectrum(features, d, exactly=exactly, method=method)
    expected = sorted(int(l) for l in expected_degrees)
    if r.degrees != expected:
        missing = sorted(set(expected) - set(r.degrees))
        extra = sorted(set(r.degrees) - set(expected))
        raise AssertionError(f"{_name(features, d, exactly)} (method {method}): spectrum "
                             f"{r.degrees}, expected {expected}; missing {missing}, "
                             f"unexpected {extra}")


def assert_methods_agree(features: Iterable[int], d: int, exactly: bool = False,
                         methods: Optional[Sequence[str]] = None) -> None:
    """The exact, rules, weights and numeric methods give the same dims (``method="all"``),
    or, with ``methods``, the listed ones give the same degrees."""
    features = tuple(sorted(features))
    if methods is None:
        r = spectrum(features, d, exactly=exactly, method="all")
        bad = {m: v for m, v in r.methods.items() if v != "agree"}
        if bad:
            raise AssertionError(f"{_name(features, d, exactly)}: methods disagree: {bad}; "
                                 f"exact dims {r.dims}")
        return
    results = {m: spectrum(features, d, exactly=exactly, method=m).degrees for m in methods}
    if len({tuple(v) for v in results.values()}) > 1:
        raise AssertionError(f"{_name(features, d, exactly)}: methods disagree: {results}")
