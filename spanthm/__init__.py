r"""spanthm: exact, certified checks of the finite-degree span theorem.

The theorem (docs/method.md §1; proofs in ``proofs/span_theorem.md``)
----------------------------------------------------------------
Let :math:`H_l` be the spherical harmonics of degree ``l`` on :math:`S^2`, ``S`` a set of
degrees, and :math:`P_d(S)` the span of all products of at most ``d`` of the features
:math:`Y_k^m(u)`, ``k in S`` (the constant included). For ``S = {0, 1, ..., L}`` and
``d >= 1``:

1. *Span.* :math:`P_d(S) = H_0 \oplus H_1 \oplus \dots \oplus H_{dL}` exactly.
2. *Multiplicity-one saturation.* In :math:`\mathrm{Sym}^d(V_0 \oplus \dots \oplus V_L)`
   (and in the ``d``-fold tensor power) :math:`V_{dL}` occurs once and nothing above it; on
   the sphere :math:`H_{dL}` is reached only through products of ``d`` degree-``L``
   factors.
3. *Rotation corollary.* Degree-``d`` polynomials of SO(3)-equivariant features of degree
   ``<= L``, as functions of a global rotation, lie in the span of the Wigner entries
   :math:`D^l`, ``l <= dL``; a target of pure degree ``l > dL`` is Haar-orthogonal to all of
   them.

Scope: a single marked direction and degree-bounded probes. This is not an upper bound on
the function class of multi-atom message-passing networks, whose features also depend on
internal coordinates.

Public API
----------
:func:`spectrum`, :func:`ceiling`, :func:`recoverable_degrees`, :func:`table`,
:func:`multiplicities`, :func:`o3_multiplicities`, :func:`certificate`,
:func:`verify_certificate`, :func:`rotation_overlap`, :func:`clear_caches`, the method functions
(:func:`exact_spectrum`, :func:`gaunt_spectrum`, :func:`weights_spectrum`,
:func:`numeric_spectrum`, :func:`brute_force_spectrum`), the cyclic-ring (C_n) functions
(:func:`ring_orientation_modes`, :func:`carries_orientation`, :func:`ring_orientation_degrees`,
:func:`ring_recoverable`, :func:`min_probe_degree`, :func:`ring_spectrum` (:class:`RingSpectrum`
of :class:`RingDegree` rows), :func:`ring_orientation_modes_numeric`), the records
:class:`SpectrumResult`, :class:`Verification` and :class:`CertificateError`, the largest
probe degree :data:`MAX_D`, and the conventions module
:mod:`spanthm.harmonics` (real basis, normalization and phase, with maps to e3nn and sympy).
"""

import importlib

#: Public name -> the private module that defines it. Imported on first use (PEP 562), so
#: that ``import spanthm`` (and the ``spanthm`` command, whose first step it is) stays light
#: until a computation needs sympy: an interrupt during start-up reaches the command's own
#: handler instead of a traceback.
_EXPORTS = {
    "clear_caches": "._caches",
    "certificate": "._certificates", "certificate_filename": "._certificates",
    "write_certificate": "._certificates",
    "RingDegree": "._cyclic", "RingSpectrum": "._cyclic", "carries_orientation": "._cyclic",
    "min_probe_degree": "._cyclic", "ring_orientation_degrees": "._cyclic",
    "ring_orientation_modes": "._cyclic", "ring_orientation_modes_numeric": "._cyclic",
    "ring_recoverable": "._cyclic", "ring_spectrum": "._cyclic",
    "multiplicities": "._multiplicities", "o3_multiplicities": "._multiplicities",
    "weights_spectrum": "._multiplicities",
    "numeric_spectrum": "._numeric", "rotation_overlap": "._numeric",
    "brute_force_spectrum": "._projection", "exact_spectrum": "._projection",
    "gaunt_spectrum": "._rules",
    "MAX_D": "._limits",
    "SpectrumResult": "._spectrum", "ceiling": "._spectrum",
    "recoverable_degrees": "._spectrum", "spectrum": "._spectrum", "table": "._spectrum",
    "theorem_applies": "._spectrum",
    "CertificateError": ".verify", "Verification": ".verify", "verify_certificate": ".verify",
}
_SUBMODULES = ("harmonics", "verify", "testing", "cli")


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spanthm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


__version__ = "0.1.0"

#: The public names: every lazy export, the version and the conventions module; derived
#: from :data:`_EXPORTS` so that the two cannot disagree.
__all__ = ["__version__", *_EXPORTS, "harmonics"]
