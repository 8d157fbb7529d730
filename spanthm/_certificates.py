r"""Certificates: the exact evidence for one instance, as JSON, for an independent checker.

Schema ``spanthm-certificate/1`` (all rationals as strings ``"p/q"`` or ``"p"``)::

    {
      "schema": "spanthm-certificate/1",
      "instance": {"features": [0, 1, 2], "d": 2, "exactly": false},
      "lmax": 6,                       # degrees 0..lmax are decided, lmax = max(S) d + 2
      "present": [                     # one exact witness per present degree
        {"l": 4, "factors": [2, 2], "coefficient": "18/35"}, ...],
      "absent": [                      # one proof per absent degree
        {"l": 5, "reason": "degree", "bound": 4}, ...],
      "dims": {"0": 1, ..., "6": 0},   # dim(P ∩ H_l)
      "multiplicities": {"space": [0, 1, 2],        # abstract space Sym^d(V_space)
                         "sym": {"0": 2, ...},      # SO(3) multiplicities in Sym^d
                         "tensor": {"0": 5, ...}},  # and in the d-fold tensor power
      "ceiling": 4, "theorem": "holds", "boundary_multiplicity": 1,
      "conventions": {...}, "generator": {...}
    }

A witness says: the zonal product :math:`\prod_i P_{k_i}(z)` (Legendre polynomials,
:math:`P_k(1) = 1`, ``factors`` = the :math:`k_i`, empty for the constant) equals
:math:`\sum_j c_j P_j(z)` with :math:`c_l` = ``coefficient`` != 0, so by rotation
invariance :math:`H_l \subset P` (proofs/span_theorem.md, Lemma 1). An absence says: every
generating product lies outside :math:`H_l` by its degree (``"degree"``: ``l > bound``, the
largest degree of any product), its parity (``"parity"``) or per product by degree, parity
or orthogonality (``"bounds"``).

:func:`spanthm.verify.verify_certificate` re-checks every claim without importing this
module or any other part of spanthm.
"""

from __future__ import annotations

import platform
from pathlib import Path

import sympy

from . import _limits, io as _io, _multiplicities, _projection, _spectrum, _validate

__all__ = ["SCHEMA", "certificate", "certificate_filename", "write_certificate"]

SCHEMA = "spanthm-certificate/1"


def _q(value) -> str:
    return str(sympy.Rational(int(value.numerator), int(value.denominator)))


def certificate(features, d: int, exactly: bool = False) -> dict:
    """Build the certificate of one instance (see the module docstring for the schema).

    Examples
    --------
    >>> cert = certificate(range(3), 2)
    >>> cert["present"][-1], cert["absent"][0]
    ({'l': 4, 'factors': [2, 2], 'coefficient': '18/35'}, {'l': 5, 'reason': 'degree', 'bound': 4})
    """
    from . import __version__

    features = _validate.feature_set(features)
    d = _validate.probe_degree(d)
    _limits.check_instance(features, d, "certificate", exactly)   # before any work
    exact = _projection.exact_spectrum(features, d, exactly)
    verdict = _spectrum.spectrum(features, d, exactly, method="exact")
    space = _multiplicities.abstract_features(features, exactly)
    present = [
        {"l": l, "factors": list(w.factors), "coefficient": _q(w.coefficient)}
        for l, w in sorted(exact.witnesses.items())
    ]
    absent = []
    for l, a in sorted(exact.absences.items()):
        entry = {"l": l, "reason": a.reason}
        if a.bound is not None:
            entry["bound"] = a.bound
        absent.append(entry)
    return {
        "schema": SCHEMA,
        "instance": {"features": list(features), "d": d, "exactly": exactly},
        "lmax": max(features) * d + 2,
        "present": present,
        "absent": absent,
        "dims": {str(l): n for l, n in sorted(exact.dims.items())},
        "multiplicities": {
            "space": list(space),
            "sym": {str(l): m for l, m in _multiplicities.multiplicities(space, d, "sym").items()},
            "tensor": {str(l): m for l, m in
                       _multiplicities.multiplicities(space, d, "tensor").items()},
        },
        "ceiling": verdict.ceiling,
        "theorem": verdict.theorem,
        "boundary_multiplicity": verdict.boundary_multiplicity,
        "conventions": {
            "witness": "prod_i P_{k_i}(z) = sum_j c_j P_j(z), Legendre P_k(1) = 1; "
                       "coefficient = c_l",
            "space": "Sym^d of the direct sum of V_k over 'space' (0 adjoined for "
                     "at-most-d products when missing from the features)",
        },
        "generator": {"spanthm": __version__, "sympy": sympy.__version__,
                      "python": platform.python_version()},
    }


def certificate_filename(features, d: int, exactly: bool = False) -> str:
    """``L{L}_d{d}.json`` for ``S = {0..L}``, else ``S{k1}-{k2}-..._d{d}[_exactly].json``."""
    features = _validate.feature_set(features)
    suffix = "_exactly" if exactly else ""
    if _spectrum.theorem_applies(features):
        return f"L{max(features)}_d{d}{suffix}.json"
    return f"S{'-'.join(map(str, features))}_d{d}{suffix}.json"


def write_certificate(cert: dict, path) -> Path:
    """Write a certificate atomically."""
    return _io.atomic_write_json(path, cert)
