"""The public spectrum API: run one or all methods, compare them, judge the theorem.

Methods (``method=`` argument; every one returns ``dims[l] = dim(P ∩ H_l)`` for
``l = 0 .. max(S) * d + 2``):

``"exact"``
    certified exact projection (zonal witnesses + bounds), :mod:`spanthm._projection`;
``"rules"``
    Gaunt selection rules iterated over the factors, :mod:`spanthm._rules`;
``"weights"``
    natural-parity support of the abstract O(3) decomposition (weight counting),
    :mod:`spanthm._multiplicities`;
``"numeric"``
    floating-point least squares on a sphere quadrature, :mod:`spanthm._numeric`;
``"brute"``
    exact projection of every product onto every :math:`H_l` (slow; small instances);
``"all"``
    ``exact``, ``rules``, ``weights`` and ``numeric``; their dims must agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

from . import _limits, _multiplicities, _numeric, _projection, _rules, _validate

__all__ = [
    "SpectrumResult",
    "spectrum",
    "theorem_applies",
    "ceiling",
    "recoverable_degrees",
    "table",
    "ALL_METHODS",
]

ALL_METHODS = ("exact", "rules", "weights", "numeric")


@dataclass
class SpectrumResult:
    """Spectrum of :math:`P_d(S)` (or :math:`P_{=d}(S)`) with the theorem's verdict.

    Attributes
    ----------
    features : tuple of int
        ``S``, sorted.
    d : int
        Probe degree.
    exactly : bool
        ``True`` for :math:`P_{=d}(S)`.
    dims : dict
        ``l -> dim(P ∩ H_l)`` for ``l = 0 .. max(S) d + 2`` (from the first method run).
    ceiling : int
        Highest degree present.
    theorem : str
        ``"holds"``, ``"fails"`` (only for ``S = {0..L}``) or ``"not-applicable"``.
    boundary_multiplicity : int or None
        Multiplicity of :math:`V_{\\text{ceiling}}` in the abstract space
        (:func:`spanthm._multiplicities.abstract_features`); ``None`` if the spectrum is
        empty of that degree abstractly (never for a correct spectrum).
    methods : dict
        ``method -> "agree"`` or ``"disagree"`` (each method compared with the first).
    details : dict
        ``method -> `` the method's own result object (witnesses, singular values, ...).
    """

    features: tuple
    d: int
    exactly: bool
    dims: Dict[int, int]
    ceiling: int
    theorem: str
    boundary_multiplicity: Optional[int]
    methods: Dict[str, str]
    details: Dict[str, object] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    @property
    def degrees(self) -> List[int]:
        """Sorted degrees ``l`` with :math:`H_l \\subset P`."""
        return sorted(l for l, n in self.dims.items() if n)

    @property
    def agree(self) -> bool:
        return all(v == "agree" for v in self.methods.values())

    def to_dict(self) -> dict:
        """JSON form (the ``spanthm check --json`` contract).

        When the numeric method ran, an extra key ``numeric`` carries its singular values
        (``{"tol", "scale", "gap", "seed", "singular_values": {l: [...]}}``).
        """
        out = {
            "features": list(self.features),
            "d": self.d,
            "exactly": self.exactly,
            "degrees": self.degrees,
            "dims": {str(l): n for l, n in sorted(self.dims.items())},
            "ceiling": self.ceiling,
            "theorem": self.theorem,
            "boundary_multiplicity": self.boundary_multiplicity,
            "methods": dict(self.methods),
        }
        num = self.details.get("numeric")
        if num is not None:
            out["numeric"] = {
                "tol": num.tol, "scale": num.scale, "seed": num.seed,
                "gap": num.gap if num.gap != float("inf") else None,
                "singular_values": {str(l): v for l, v in num.singular_values.items()},
            }
        return out


def theorem_applies(features) -> bool:
    """Whether ``S = {0, 1, ..., L}`` for some ``L >= 1`` (the theorem's hypothesis)."""
    features = _validate.feature_set(features)
    return len(features) >= 2 and features == tuple(range(max(features) + 1))


def _dims_from_set(degrees: set, top: int) -> Dict[int, int]:
    return {l: (2 * l + 1 if l in degrees else 0) for l in range(top + 1)}


def _run(method: str, features: tuple, d: int, exactly: bool, seed: int):
    top = max(features) * d + 2
    if method == "exact":
        res = _projection.exact_spectrum(features, d, exactly)
        return res.dims, res
    if method == "rules":
        deg = _rules.gaunt_spectrum(features, d, exactly)
        return _dims_from_set(deg, top), sorted(deg)
    if method == "weights":
        deg = _multiplicities.weights_spectrum(features, d, exactly)
        return _dims_from_set(deg, top), sorted(deg)
    if method == "numeric":
        res = _numeric.numeric_spectrum(features, d, exactly, seed=seed)
        return res.dims, res
    if method == "brute":
        dims = _projection.brute_force_spectrum(features, d, exactly)
        return dims, dims
    raise ValueError(f"unknown method {method!r}")  # pragma: no cover (validated)


def spectrum(features, d: int, exactly: bool = False, method: str = "exact",
             seed: int = 0) -> SpectrumResult:
    r"""Which :math:`H_l` lie in :math:`P_d(S)`, and does the span theorem hold here?

    Parameters
    ----------
    features : collection of int
        Feature set ``S`` of distinct non-negative degrees (``range(L + 1)`` for the
        theorem's ``S = {0..L}``).
    d : int
        Probe degree ``>= 1``.
    exactly : bool, default False
        Products of exactly ``d`` features (:math:`P_{=d}(S)`) instead of at most ``d``.
    method : {"exact", "rules", "weights", "numeric", "brute", "all"}
        See the module docstring. With ``"all"`` the dims of every method are compared
        with the exact ones.
    seed : int
        Seed of the random elements used by ``"numeric"``.

    Returns
    -------
    SpectrumResult

    Raises
    ------
    ValueError, TypeError
        Bad feature set, degree or method.

    Notes
    -----
    The theorem "holds" for ``S = {0..L}`` when :math:`P_d(S) = H_0 + \dots + H_{dL}`
    exactly (every block full, nothing above), :math:`V_{dL}` has multiplicity 1 in the
    abstract symmetric power and nothing above :math:`dL` occurs there. For other ``S`` it
    is ``"not-applicable"`` and the ceiling is still reported.

    Examples
    --------
    >>> r = spectrum(range(3), 2)
    >>> r.degrees, r.ceiling, r.theorem, r.boundary_multiplicity
    ([0, 1, 2, 3, 4], 4, 'holds', 1)
    >>> spectrum({2}, 2, exactly=True, method="all").methods
    {'exact': 'agree', 'rules': 'agree', 'weights': 'agree', 'numeric': 'agree'}
    """
    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    if not isinstance(exactly, bool):
        raise TypeError(f"exactly must be a bool, got {exactly!r}")
    method = _validate.method(method)
    _limits.check_instance(features, d, method, exactly)   # bounded before any work
    names = ALL_METHODS if method == "all" else (method,)
    start = time.perf_counter()
    results: Dict[str, Dict[int, int]] = {}
    details: Dict[str, object] = {}
    for name in names:
        results[name], details[name] = _run(name, features, d, exactly, seed)
    reference = results[names[0]]
    methods = {name: ("agree" if dims == reference else "disagree")
               for name, dims in results.items()}

    present = [l for l, n in reference.items() if n]
    top_degree = max(present) if present else 0
    space = _multiplicities.abstract_features(features, exactly)
    mult = _multiplicities.multiplicities(space, d, "sym")
    boundary = mult.get(top_degree)
    verdict = "not-applicable"
    if theorem_applies(features):
        dL = max(features) * d
        full = all(reference[l] == (2 * l + 1 if l <= dL else 0) for l in reference)
        verdict = "holds" if (full and boundary == 1 and max(mult) == dL) else "fails"
    return SpectrumResult(
        features=features, d=d, exactly=exactly, dims=reference, ceiling=top_degree,
        theorem=verdict, boundary_multiplicity=boundary, methods=methods, details=details,
        seconds=time.perf_counter() - start,
    )


def ceiling(d: int, L: Optional[int] = None, features=None) -> int:
    """Highest harmonic degree a degree-``d`` probe of the features can reach.

    Give either ``L`` (features ``{0..L}``, ceiling ``d * L``) or ``features``.

    Examples
    --------
    >>> ceiling(2, L=2), ceiling(2, features={2}), ceiling(3, features={1, 3})
    (4, 4, 9)
    """
    return max(recoverable_degrees(d, L=L, features=features))


def recoverable_degrees(d: int, L: Optional[int] = None, features=None) -> List[int]:
    """Sorted degrees ``l`` with :math:`H_l \\subset P_d(S)`: what a degree-``d`` probe of
    one direction's features can recover (the prediction that ``empirical`` compares with).

    Examples
    --------
    >>> recoverable_degrees(2, L=2)
    [0, 1, 2, 3, 4]
    >>> recoverable_degrees(2, features={2})
    [0, 2, 4]
    """
    if (L is None) == (features is None):
        raise ValueError("give exactly one of L or features")
    if L is not None:
        features = range(_validate.degree_L(L) + 1)
    return spectrum(features, d).degrees


def table(Lmax: int, dmax: int, method: str = "exact", seed: int = 0) -> Iterator[SpectrumResult]:
    """One :class:`SpectrumResult` per instance ``S = {0..L}``, ``1 <= L <= Lmax``,
    ``1 <= d <= dmax``, in L-major order, yielded as each one is computed (the CLI prints
    rows as they arrive). Arguments are validated before the first instance runs.

    Examples
    --------
    >>> [(r.features[-1], r.d, r.ceiling) for r in table(2, 2)]
    [(1, 1, 1), (1, 2, 2), (2, 1, 2), (2, 2, 4)]
    """
    Lmax = _validate.degree_L(Lmax)
    dmax = _validate.probe_degree(dmax)
    method = _validate.method(method)
    if Lmax < 1:
        raise ValueError(f"Lmax must be >= 1, got {Lmax}")
    _limits.check_instance(Lmax, dmax, method)     # the largest instance, then the sum
    _limits.check_total((_limits.instance_cost(L, d, method) for L in range(1, Lmax + 1)
                         for d in range(1, dmax + 1)),
                        f"the table Lmax = {Lmax}, dmax = {dmax}, method {method}")
    return (spectrum(range(L + 1), d, method=method, seed=seed)
            for L in range(1, Lmax + 1) for d in range(1, dmax + 1))
