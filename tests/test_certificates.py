"""Certificates: shipped ones verify, round trips verify, tampering is caught."""

import ast
import copy
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import spanthm
from spanthm import certificate, certificate_filename, verify_certificate, write_certificate
from spanthm.verify import CertificateError
from spanthm.testing import feature_sets

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "proofs" / "certificates"


def test_shipped_certificates_verify():
    """Every S = {0..L}, 1 <= L <= 4, 1 <= d <= 4 certificate is shipped and re-checks."""
    for L in range(1, 5):
        for d in range(1, 5):
            path = SHIPPED / f"L{L}_d{d}.json"
            assert path.exists(), path
            report = verify_certificate(path)
            assert report.ok, (path, report.problems)
            cert = json.loads(path.read_text())
            assert cert["theorem"] == "holds" and cert["ceiling"] == d * L


def test_shipped_certificates_match_the_generator():
    """The shipped files are what `spanthm certify` produces today (no stale evidence)."""
    for path in sorted(SHIPPED.glob("L*_d*.json")):
        shipped = json.loads(path.read_text())
        feats, d = shipped["instance"]["features"], shipped["instance"]["d"]
        fresh = certificate(feats, d, shipped["instance"]["exactly"])
        for key in ("present", "absent", "dims", "multiplicities", "ceiling", "theorem",
                    "boundary_multiplicity"):
            assert shipped[key] == fresh[key], (path, key)


@given(feature_sets(max_degree=5), st.integers(1, 3), st.booleans())
def test_round_trip(tmp_path_factory, features, d, exactly):
    """certify -> write -> verify succeeds for random instances."""
    path = tmp_path_factory.mktemp("c") / certificate_filename(features, d, exactly)
    write_certificate(certificate(features, d, exactly), path)
    report = verify_certificate(path)
    assert report.ok, report.problems


def _tamper(cert, how):
    c = copy.deepcopy(cert)
    if how == "coefficient":
        c["present"][-1]["coefficient"] = "1/2"
    elif how == "zero-coefficient":
        c["present"][0]["coefficient"] = "0"
    elif how == "drop-absence":
        c["absent"].pop()
    elif how == "drop-witness":
        c["present"].pop()
    elif how == "fake-absence":
        w = c["present"].pop()
        c["absent"].append({"l": w["l"], "reason": "bounds"})
        c["dims"][str(w["l"])] = 0
    elif how == "degree-bound":
        c["absent"][0]["bound"] += 1
    elif how == "dims":
        c["dims"]["1"] = 2
    elif how == "multiplicity":
        c["multiplicities"]["sym"][str(c["ceiling"])] = 2
    elif how == "tensor":
        c["multiplicities"]["tensor"]["0"] += 1
    elif how == "ceiling":
        c["ceiling"] += 1
    elif how == "theorem":
        c["theorem"] = "not-applicable"
    elif how == "foreign-factor":
        c["present"][-1]["factors"] = [7] * len(c["present"][-1]["factors"])
    elif how == "too-many-factors":
        c["present"][-1]["factors"] = c["present"][-1]["factors"] + [0]
    elif how == "instance":
        c["instance"]["d"] += 1
    return c


TAMPERINGS = ["coefficient", "zero-coefficient", "drop-absence", "drop-witness", "fake-absence",
              "degree-bound", "dims", "multiplicity", "tensor", "ceiling", "theorem",
              "foreign-factor", "too-many-factors", "instance"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_certificate_fails(tmp_path, how):
    """Each kind of tampering with a valid certificate is detected."""
    cert = json.loads((SHIPPED / "L2_d2.json").read_text())
    assert verify_certificate(cert).ok
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(_tamper(cert, how)))
    report = verify_certificate(path)
    assert not report.ok


@pytest.mark.parametrize("content,match", [
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"schema": "other"}', "not a spanthm-certificate/1"),
    ('{"schema": "spanthm-certificate/1"}', "missing"),
])
def test_malformed_certificate_raises(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CertificateError, match=match):
        verify_certificate(path)


def test_unreadable_certificate_raises(tmp_path):
    with pytest.raises(CertificateError, match="cannot read"):
        verify_certificate(tmp_path / "missing.json")


def test_verifier_is_independent():
    """spanthm/verify.py imports nothing from spanthm (no shared code with the producer)."""
    tree = ast.parse(Path(spanthm.verify.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("spanthm"), node.module
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("spanthm") for a in node.names)


def test_write_is_atomic(tmp_path, monkeypatch):
    """An interrupted write leaves neither a partial file nor a temporary one."""
    import os

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_certificate(certificate((0, 1), 1), tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == []
