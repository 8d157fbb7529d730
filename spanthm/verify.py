r"""Independent checker of ``spanthm-certificate/1`` files.

This module deliberately imports nothing from the rest of :mod:`spanthm` (a test enforces
it) and recomputes every claim by other means than the code that produced it:

* witnesses: :math:`c_l = \frac{2l+1}{2}\int_{-1}^{1} \prod_i P_{k_i}(z)\, P_l(z)\, dz`
  with :func:`sympy.legendre` and exact polynomial integration (the producer eliminates
  leading coefficients in the monomial basis instead);
* absences: the checker enumerates every generating multiset itself and confirms that each
  one excludes ``l`` by degree, parity or orthogonality from below;
* multiplicities: the symmetric power's character from the power-sum recursion
  :math:`h_n = \frac1n \sum_{i=1}^{n} p_i\, h_{n-i}` with :math:`p_i(q) = \chi_V(q^i)`
  (the producer counts weights by dynamic programming), the tensor power's as
  :math:`\chi_V^d`;
* ceiling, boundary multiplicity and the theorem's verdict from the rechecked data.

Usage: ``verify_certificate(path_or_dict)`` returns a :class:`Verification`; it raises
:class:`CertificateError` (a :class:`ValueError`) when the file cannot be read or is not a
certificate at all. A readable certificate whose claims are false gives
``Verification.ok == False`` and the list of failed claims.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations_with_replacement
from math import comb
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import sympy

__all__ = ["CertificateError", "Verification", "verify_certificate", "json_depth"]

SCHEMA = "spanthm-certificate/1"
_RATIONAL = re.compile(r"-?([0-9]+)(?:/([0-9]+))?")


class CertificateError(ValueError):
    """The input is not a readable, well-formed certificate."""


@dataclass
class Verification:
    """Outcome of :func:`verify_certificate`: ``ok`` and the failed claims, if any."""

    instance: dict
    problems: List[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


#: Bounds on what the checker reads, before any work (they mirror spanthm._limits, which
#: this module does not import: a certificate is untrusted input). A certificate of the
#: largest instance the package certifies is a few hundred kB.
MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
#: Longest quote of a certificate's value in a message (the rest elided, its length given).
MAX_QUOTE = 60
#: Most work the checker accepts, in units of about 4 us on a 2-core CPU (about 20 s):
#: ``F * max(S) * d^3`` for the symmetric-power character in Fractions (``F = sum(2k+1)``;
#: ``S = {0, 1}``, ``d = 100``: 14 s) plus ``P * (lmax + 1) / 10`` for walking the ``P``
#: generating products once per decided degree. ``SPANTHM_VERIFY_MAX_COST``.
MAX_CHECK_COST = 5_000_000
#: Digits of one rational's numerator or denominator (Python's own int-string limit).
MAX_DIGITS = 4300


def _short(value) -> str:
    """``repr(value)`` cut to ``MAX_QUOTE`` characters, with its length."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10000:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    if len(text) <= MAX_QUOTE:
        return text
    return f"{text[:MAX_QUOTE]}... ({len(text)} characters)"


def _env_int(name: str, default: int) -> int:
    import os

    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        raise CertificateError(f"{name}={_short(os.environ[name])} is not an integer") from None


def json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings: a bound checked before parsing
    (``json.loads`` itself recurses; ``empirical compare`` uses this too).

    >>> json_depth('{"a": [1, {"b": "[["}]}')
    3
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_cost(features: list, d: int) -> None:
    """Refuse a certificate whose instance is above spanthm's cost limits (see
    :mod:`spanthm._limits`: D = d * max(S), D^3 <= SPANTHM_MAX_COST, d <= SPANTHM_MAX_D,
    at most SPANTHM_MAX_FEATURES degrees) before re-checking it."""
    max_cost = _env_int("SPANTHM_MAX_COST", 300 ** 3)
    max_d = _env_int("SPANTHM_MAX_D", 256)
    max_features = _env_int("SPANTHM_MAX_FEATURES", 512)
    if len(features) > max_features:
        raise CertificateError(f"certificate instance has {len(features)} feature degrees, "
                               f"above the limit of {max_features} (SPANTHM_MAX_FEATURES)")
    if d > max_d:
        raise CertificateError(f"certificate instance has d = {_short(d)}, above the limit of "
                               f"{max_d} (SPANTHM_MAX_D)")
    top = max(features) * d
    if top > 10 ** 6 or max(top, 1) ** 3 > max_cost:
        raise CertificateError(f"certificate instance has top degree d * max(S) = "
                               f"{_short(top)}, above the cost limit (D^3 <= "
                               f"{max_cost:.3g}, SPANTHM_MAX_COST)")
    max_check = _env_int("SPANTHM_VERIFY_MAX_COST", MAX_CHECK_COST)
    products = sum(comb(len(features) + n - 1, n) for n in range(d + 1))
    components = sum(2 * k + 1 for k in features) + 1
    work = components * max(features) * d ** 3 + products * (top + 3) // 10
    if work > max_check:
        raise CertificateError(f"re-checking S = {_short(sorted(features))}, d = {d} costs "
                               f"about {work:.3g} units (~{work * 4e-6:.3g} s), above the "
                               f"checker's limit of {max_check:.3g} (SPANTHM_VERIFY_MAX_COST)")


def _load(source) -> dict:
    if isinstance(source, dict):
        return source
    path = Path(source)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {_short(str(path))}: "
                               f"{exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise CertificateError(f"certificate {_short(str(path))} is larger than {MAX_BYTES} bytes: "
                               "not a spanthm certificate")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"certificate {_short(str(path))} is not UTF-8 text") from None
    if json_depth(text) > MAX_DEPTH:
        raise CertificateError(f"certificate {_short(str(path))} is nested deeper than {MAX_DEPTH} "
                               "levels: not a spanthm certificate")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CertificateError(f"certificate {_short(str(path))} is not valid JSON: {exc.msg} "
                               f"(line {exc.lineno})") from None
    except ValueError as exc:          # an integer of more digits than Python converts
        raise CertificateError(f"certificate {_short(str(path))} is not a spanthm "
                               f"certificate: {_short(str(exc))}") from None
    if not isinstance(data, dict):
        raise CertificateError(f"certificate {_short(str(path))} is not a JSON object")
    return data


def _int(value, name: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CertificateError(f"certificate field {name} must be an integer >= {minimum}, "
                               f"got {_short(value)}")
    return value


def _rational(value, name: str) -> Fraction:
    if not isinstance(value, str):
        raise CertificateError(f"certificate field {name} must be a rational string, "
                               f"got {_short(value)}")
    # "p" or "p/q" in decimal digits only: Fraction() also reads "1e999999999" (and then
    # builds that power of ten) and floats, which a certificate never holds
    match = _RATIONAL.fullmatch(value)
    if match is None or any(len(part or "") > MAX_DIGITS for part in match.groups()):
        raise CertificateError(f"certificate field {name} is not a rational 'p' or 'p/q' "
                               f"(at most {MAX_DIGITS} digits each): {_short(value)}")
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise CertificateError(f"certificate field {name} is not a rational: "
                               f"{_short(value)}") from None


def _structure(cert: dict) -> None:
    if cert.get("schema") != SCHEMA:
        raise CertificateError(f"not a {SCHEMA} certificate (schema "
                               f"{_short(cert.get('schema'))})")
    for key, kind in (("instance", dict), ("present", list), ("absent", list), ("dims", dict),
                      ("multiplicities", dict), ("lmax", int), ("ceiling", int),
                      ("theorem", str)):
        if not isinstance(cert.get(key), kind):
            raise CertificateError(f"certificate field {key!r} missing or not a "
                                   f"{kind.__name__}")
    inst = cert["instance"]
    feats = inst.get("features")
    if not isinstance(feats, list) or not feats:
        raise CertificateError("certificate instance.features must be a non-empty list")
    for k in feats:
        _int(k, "instance.features")
    if len(set(feats)) != len(feats):
        raise CertificateError("certificate instance.features has repeated degrees")
    _int(inst.get("d"), "instance.d", 1)
    _check_cost(feats, inst["d"])
    if not isinstance(inst.get("exactly"), bool):
        raise CertificateError("certificate instance.exactly must be true or false")
    for entry in cert["present"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("factors"), list):
            raise CertificateError("certificate present entries need l, factors, coefficient")
        _int(entry.get("l"), "present.l")
        for k in entry["factors"]:
            _int(k, "present.factors")
        _rational(entry.get("coefficient"), "present.coefficient")
    for entry in cert["absent"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
            raise CertificateError("certificate absent entries need l and reason")
        _int(entry.get("l"), "absent.l")
    mult = cert["multiplicities"]
    for key in ("sym", "tensor"):
        if not isinstance(mult.get(key), dict):
            raise CertificateError(f"certificate multiplicities.{key} missing")
    if not isinstance(mult.get("space"), list):
        raise CertificateError("certificate multiplicities.space missing")


def _legendre_coefficient(factors: tuple, l: int) -> Fraction:
    z = sympy.Symbol("z")
    integrand = sympy.Poly(sympy.legendre(l, z), z)
    for k in factors:
        integrand = integrand * sympy.Poly(sympy.legendre(k, z), z)
    antiderivative = integrand.integrate()
    value = sympy.Rational(2 * l + 1, 2) * (antiderivative.eval(1) - antiderivative.eval(-1))
    value = sympy.Rational(value)
    return Fraction(int(value.p), int(value.q))


def _generators(features: tuple, d: int, exactly: bool):
    sizes = [d] if exactly else range(d + 1)
    for n in sizes:
        yield from combinations_with_replacement(features, n)


def _excluded(l: int, multiset: tuple) -> bool:
    total = sum(multiset)
    if l > total or (total - l) % 2:
        return True  # degree bound, parity
    top = max(multiset) if multiset else 0
    return l < 2 * top - total  # orthogonality to lower-degree polynomials


def _laurent_mul(a: Dict[int, Fraction], b: Dict[int, Fraction]) -> Dict[int, Fraction]:
    out: Dict[int, Fraction] = {}
    for i, x in a.items():
        for j, y in b.items():
            out[i + j] = out.get(i + j, 0) + x * y
    return {k: v for k, v in out.items() if v}


def _character(space: list, stretch: int = 1) -> Dict[int, Fraction]:
    out: Dict[int, Fraction] = {}
    for k in space:
        for m in range(-k, k + 1):
            out[m * stretch] = out.get(m * stretch, 0) + 1
    return out


def _sym_character(space: list, d: int) -> Dict[int, Fraction]:
    h = [{0: Fraction(1)}]
    for n in range(1, d + 1):
        acc: Dict[int, Fraction] = {}
        for i in range(1, n + 1):
            for w, c in _laurent_mul(_character(space, i), h[n - i]).items():
                acc[w] = acc.get(w, 0) + c
        h.append({w: c / n for w, c in acc.items() if c})
    return h[d]


def _irreps(character: Dict[int, Fraction]) -> Dict[int, int]:
    top = max(character) if character else 0
    out = {}
    for l in range(top + 1):
        m = character.get(l, 0) - character.get(l + 1, 0)
        if m:
            out[l] = int(m)
    return out


def verify_certificate(source) -> Verification:
    """Re-check a certificate (a path or an already loaded dict).

    The steps, each adding the claims it finds false to ``Verification.problems`` in this
    order: the degrees claimed (:func:`_degree_claims`), the witnesses
    (:func:`_check_witnesses`), the absences (:func:`_check_absences`), the dimensions
    (:func:`_check_dims`), the multiplicities (:func:`_check_multiplicities`), then
    ceiling, boundary multiplicity and verdict (:func:`_check_verdict`).

    Raises
    ------
    CertificateError
        Unreadable file, invalid JSON, wrong schema or malformed fields.
    """
    cert = _load(source)
    _structure(cert)
    inst = cert["instance"]
    feats = tuple(sorted(inst["features"]))
    d, exactly = inst["d"], inst["exactly"]
    report = Verification(instance={"features": list(feats), "d": d, "exactly": exactly})
    fail = report.problems.append
    lmax = max(feats) * d + 2
    present, absent = _degree_claims(cert, lmax, fail)
    gens = list(_generators(feats, d, exactly))
    _check_witnesses(present, feats, d, exactly, lmax, report)
    _check_absences(absent, gens, lmax, report)
    _check_dims(cert["dims"], present, lmax, fail)
    sym, tensor = _check_multiplicities(cert["multiplicities"], feats, d, exactly, report)
    _check_verdict(cert, feats, d, present, sym, tensor, fail)
    return report


def _degree_claims(cert: dict, lmax: int, fail: Callable[[str], None]) -> Tuple[dict, dict]:
    """The witnessed (``present``) and excluded (``absent``) degrees, each ``{l: entry}``;
    fails a wrong ``lmax``, a degree claimed twice, one in ``0..lmax`` claimed by neither,
    one beyond ``lmax``."""
    if cert["lmax"] != lmax:
        fail(f"lmax is {_short(cert['lmax'])}, expected max(S)*d+2 = {lmax}")
    present: dict = {}
    for e in cert["present"]:
        if e["l"] in present:
            fail(f"degree {_short(e['l'])} has two witnesses")
        present[e["l"]] = e
    absent: dict = {}
    for e in cert["absent"]:
        if e["l"] in absent or e["l"] in present:
            fail(f"degree {_short(e['l'])} is claimed twice")
        absent[e["l"]] = e
    for l in range(lmax + 1):
        if l not in present and l not in absent:
            fail(f"degree {l} is neither witnessed nor excluded")
    for l in set(present) | set(absent):
        if l > lmax:
            fail(f"degree {_short(l)} lies beyond lmax = {lmax}")
    return present, absent


def _check_witnesses(present: dict, feats: tuple, d: int, exactly: bool, lmax: int,
                     report: Verification) -> None:
    """Each witness: a product of at most ``d`` (exactly ``d`` if ``exactly``) feature
    degrees whose Legendre projection on ``l`` is the claimed, non-zero coefficient."""
    fail = report.problems.append
    for l, e in sorted(present.items()):
        factors = tuple(sorted(e["factors"]))
        report.checked += 1
        if l > lmax:                  # failed above; never expanded (its cost is unbounded)
            continue
        if any(k not in feats for k in factors):
            fail(f"witness for l={l} uses a degree outside the features: "
                 f"{_short(list(factors))}")
            continue
        if (exactly and len(factors) != d) or len(factors) > d:
            fail(f"witness for l={l} has {len(factors)} factors; d = {d}, exactly = {exactly}")
            continue
        claimed = Fraction(e["coefficient"])
        actual = _legendre_coefficient(factors, l)
        if claimed != actual:
            fail(f"witness for l={l}: projection of {list(factors)} is {_short(actual)}, "
                 f"certificate says {_short(claimed)}")
        elif actual == 0:
            fail(f"witness for l={l}: projection of {list(factors)} is zero")


def _check_absences(absent: dict, gens: list, lmax: int, report: Verification) -> None:
    """Each absence: its reason (``degree``, ``parity`` or ``bounds``) excludes ``l`` for
    every generating product ``gens``."""
    fail = report.problems.append
    max_degree = max(sum(g) for g in gens)
    for l, e in sorted(absent.items()):
        report.checked += 1
        if l > lmax:                  # failed above; each absence walks every product
            continue
        reason = e["reason"]
        if reason == "degree":
            if e.get("bound") != max_degree:
                fail(f"absence of l={l}: bound is {_short(e.get('bound'))}, the largest product "
                     f"degree is {max_degree}")
            elif not l > max_degree:
                fail(f"absence of l={l}: the degree bound {max_degree} does not exclude it")
        elif reason == "parity":
            if any((sum(g) - l) % 2 == 0 for g in gens):
                fail(f"absence of l={l}: parity does not exclude every product")
        elif reason == "bounds":
            bad = [list(g) for g in gens if not _excluded(l, g)]
            if bad:
                fail(f"absence of l={l}: product {bad[0]} is not excluded by any bound")
        else:
            fail(f"absence of l={_short(l)}: unknown reason {_short(reason)}")


def _check_dims(dims: dict, present: dict, lmax: int, fail: Callable[[str], None]) -> None:
    """``dims[l]`` is ``2l + 1`` for a witnessed degree, 0 otherwise, for ``l <= lmax`` only."""
    for l in range(lmax + 1):
        expected = 2 * l + 1 if l in present else 0
        if dims.get(str(l)) != expected:
            fail(f"dims[{l}] is {_short(dims.get(str(l)))}, expected {expected}")
    if set(dims) - {str(l) for l in range(lmax + 1)}:
        fail("dims has entries outside 0..lmax")


def _check_multiplicities(mult: dict, feats: tuple, d: int, exactly: bool,
                          report: Verification) -> Tuple[Dict[int, int], Dict[int, int]]:
    """The space (the features, with the constant unless ``exactly``) and the irreducible
    multiplicities of its symmetric and tensor powers, recomputed from their characters;
    returns the recomputed ``(sym, tensor)``."""
    fail = report.problems.append
    space = list(feats) if (exactly or 0 in feats) else sorted(feats + (0,))
    if mult["space"] != space:
        fail(f"multiplicities.space is {_short(mult['space'])}, expected {space}")
    sym = _irreps(_sym_character(space, d))
    tensor = _irreps({w: Fraction(c) for w, c in
                      _tensor_power(_character(space), d).items()})
    for name, actual in (("sym", sym), ("tensor", tensor)):
        claimed = mult[name]
        report.checked += 1
        if claimed != {str(l): m for l, m in actual.items()}:
            fail(f"multiplicities.{name} differ from the recomputed {_short(actual)}")
    return sym, tensor


def _check_verdict(cert: dict, feats: tuple, d: int, present: dict, sym: Dict[int, int],
                   tensor: Dict[int, int], fail: Callable[[str], None]) -> None:
    """Ceiling (the highest witnessed degree), boundary multiplicity (of the ceiling in the
    symmetric power) and the theorem's verdict (for ``S = {0..L}``, ``L >= 1``)."""
    ceiling = max(present) if present else None
    if cert["ceiling"] != ceiling:
        fail(f"ceiling is {_short(cert['ceiling'])}, the highest witnessed degree is {ceiling}")
    boundary = sym.get(ceiling) if ceiling is not None else None
    if cert.get("boundary_multiplicity") != boundary:
        fail(f"boundary_multiplicity is {_short(cert.get('boundary_multiplicity'))}, "
             f"recomputed {boundary}")
    L = max(feats)
    if L >= 1 and feats == tuple(range(L + 1)):
        dL = d * L
        holds = (set(present) == set(range(dL + 1)) and sym.get(dL) == 1
                 and max(sym) == dL and max(tensor) == dL)
        verdict = "holds" if holds else "fails"
    else:
        verdict = "not-applicable"
    if cert["theorem"] != verdict:
        fail(f"theorem is {_short(cert['theorem'])}, recomputed {verdict!r}")


def _tensor_power(character: Dict[int, Fraction], d: int) -> Dict[int, Fraction]:
    out: Dict[int, Fraction] = {0: Fraction(1)}
    for _ in range(d):
        out = _laurent_mul(out, character)
    return out
