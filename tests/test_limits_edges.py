"""Limits of the README's "Limits and trust" table, each at the limit (accepted) and one
over it (refused before the work): the bound is where the table says, not somewhere near
it. (The other limits are tested the same way beside their code: tests/test_hostile_*.py.)"""

import json
import lzma
from pathlib import Path

import pytest

import spanthm
from spanthm import verify as spanthm_verify

from empirical import io as _io


def _nested(depth: int) -> str:
    """A JSON text nested exactly ``depth`` levels deep."""
    return "[" * depth + "]" * depth


def test_verify_input_size_at_and_over_the_limit(tmp_path, monkeypatch):
    """A certificate of exactly MAX_BYTES bytes is read and verified; one byte more is
    refused before parsing."""
    text = json.dumps(spanthm.certificate(range(2), 2))
    monkeypatch.setattr(spanthm_verify, "MAX_BYTES", len(text) + 10)
    at = tmp_path / "at.json"
    at.write_text(text + " " * 10)
    assert spanthm_verify.verify_certificate(at).ok
    over = tmp_path / "over.json"
    over.write_text(text + " " * 11)
    with pytest.raises(ValueError, match="larger than"):
        spanthm_verify.verify_certificate(over)


def test_verify_depth_at_and_over_the_limit(tmp_path):
    """Nesting of exactly MAX_DEPTH passes the depth check (and is then refused as not a
    certificate); MAX_DEPTH + 1 is refused as too deep, before parsing."""
    depth = spanthm_verify.MAX_DEPTH
    at, over = tmp_path / "at.json", tmp_path / "over.json"
    at.write_text(_nested(depth))
    over.write_text(_nested(depth + 1))
    with pytest.raises(ValueError) as info:
        spanthm_verify.verify_certificate(at)
    assert "nested deeper" not in str(info.value)
    with pytest.raises(ValueError, match="nested deeper"):
        spanthm_verify.verify_certificate(over)


def test_results_json_size_and_depth_at_and_over_the_limit(tmp_path):
    """``empirical compare``'s reader: a file of exactly max_bytes and nested exactly
    max_depth is parsed; one byte or one level more is refused naming the file."""
    body = _nested(_io.MAX_JSON_DEPTH)
    at = tmp_path / "at.json"
    at.write_text(body)
    assert _io.read_json(at, max_bytes=len(body)) is not None
    with pytest.raises(ValueError, match="larger than"):
        _io.read_json(at, max_bytes=len(body) - 1)
    over = tmp_path / "over.json"
    over.write_text(_nested(_io.MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper"):
        _io.read_json(over)


def test_xz_checkpoint_decompression_at_and_over_the_limit(tmp_path, monkeypatch):
    """A .pt.xz that expands to exactly MAX_DECOMPRESSED bytes is read; a limit one byte
    smaller refuses it before torch sees a byte."""
    from empirical.backbone import CheckpointError, _checkpoint

    shipped = sorted((Path(_checkpoint.__file__).parent / "shipped" / "controls").glob("*.pt.xz"))
    if not shipped:
        pytest.skip("no shipped .pt.xz")
    size = len(lzma.decompress(shipped[0].read_bytes()))
    monkeypatch.setattr(_checkpoint, "MAX_DECOMPRESSED", size)
    assert len(_checkpoint._read_xz(shipped[0])) == size
    monkeypatch.setattr(_checkpoint, "MAX_DECOMPRESSED", size - 1)
    with pytest.raises(CheckpointError, match="expands to more than"):
        _checkpoint._read_xz(shipped[0])


@pytest.mark.parametrize("lmax, code", [(12, None), (13, 2)])
def test_target_degree_at_and_over_the_limit(lmax, code, capsys):
    """``--lmax 12`` (e3nn's highest harmonic) is parsed; 13 is refused by the parser."""
    from empirical import cli

    if code is None:
        args = cli.build_parser().parse_args(["diagnose", "--lmax", str(lmax)])
        assert args.lmax == lmax
    else:
        assert cli.main(["diagnose", "--lmax", str(lmax), "--no-progress"]) == code
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "lmax" in err, err
