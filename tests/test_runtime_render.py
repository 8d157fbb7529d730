"""The shared plumbing below the stages (docs/method.md §6): empirical.runtime,
empirical.render, empirical.checks and the one atomic writer of spanthm.io."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from empirical import checks, render, runtime
from spanthm import io as sio


def test_stream_keys_are_unique_and_fixed():
    """Every stream has its own key, and the recorded keys of the reference runs hold."""
    values = list(runtime.STREAMS.values())
    assert len(values) == len(set(values))
    assert {k: runtime.STREAMS[k] for k in ("coefficients", "frames", "split", "rotations",
                                            "cv", "bootstrap")} == {
        "coefficients": 1, "frames": 11, "split": 12, "rotations": 13, "cv": 14, "bootstrap": 15}
    assert [runtime.STREAMS[f"c5_{k}"] for k in ("data", "split", "rotations", "cv", "train")] \
        == [21, 22, 23, 24, 25]


def test_streams_are_seeded_and_distinct():
    assert runtime.stream(0, 11) == runtime.stream(0, 11)
    assert runtime.stream(0, 11) != runtime.stream(0, 12)
    assert runtime.stream(0, 11) != runtime.stream(1, 11)


def test_default_dtype_is_restored_on_error():
    before = torch.get_default_dtype()
    with pytest.raises(RuntimeError, match="inside"):
        with runtime.default_dtype(torch.float64):
            assert torch.get_default_dtype() == torch.float64
            raise RuntimeError("inside")
    assert torch.get_default_dtype() == before


def test_progress_reports_through_tqdm_only_when_enabled():
    shown = io.StringIO()
    with runtime.Progress(10, enabled=True, stream=shown) as bar:
        bar.set_label("features: backbone 1/2")
        bar.advance(4)
        bar.advance(6, "fits")
        assert bar.enabled
    assert "features: backbone 1/2" in shown.getvalue()
    assert "|" in shown.getvalue()      # tqdm's bar
    quiet = io.StringIO()
    with runtime.Progress(10, enabled=False, stream=quiet) as bar:
        bar.advance(10, "x")
    assert quiet.getvalue() == ""
    # enabled=None: only on a terminal; a StringIO is not one
    silent = io.StringIO()
    with runtime.Progress(3, enabled=None, stream=silent) as bar:
        bar.advance(3)
    assert silent.getvalue() == ""


def test_max_bytes_reads_the_environment(monkeypatch):
    monkeypatch.delenv("EMPIRICAL_MAX_BYTES", raising=False)
    assert runtime.max_bytes() == runtime.MAX_BYTES
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", "1000")
    assert runtime.max_bytes() == 1000
    monkeypatch.setenv("EMPIRICAL_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="EMPIRICAL_MAX_BYTES='lots' is not an integer"):
        runtime.max_bytes()


def test_max_l():
    assert runtime.max_l("4x0e+2x1o+1x3e") == 3
    assert runtime.max_l("") == 0


def test_versions_name_this_package():
    v = runtime.versions()
    assert "python" in v and "torch" in v and "spectral-ceilings" in v


# ------------------------------------------------------------------------------ render

@given(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32)),
       st.integers(0, 4))
def test_num_agrees_with_format(x, decimals):
    """render.num is Python's fixed-point format, MISSING for None, no '-0.000'."""
    text = render.num(x, decimals)
    if x is None:
        assert text == render.MISSING
    else:
        assert float(text) == pytest.approx(round(float(x), decimals), abs=10 ** -decimals)
        assert not text.startswith("-") or float(text) != 0


def test_interval_forms():
    from empirical.diagnostic.statistics import Interval

    assert render.interval((0.1, 0.2), 2) == "[0.10, 0.20]"
    assert render.interval(Interval(0.1, 0.2), 2) == "[0.10, 0.20]"
    assert render.interval(None) == "[undefined]"
    assert render.interval([None, 0.2]) == "[undefined]"
    assert render.with_interval(None, (0, 1)) == render.MISSING


def test_table_refuses_ragged_rows():
    with pytest.raises(ValueError, match="a row of 1 cells under 2 columns"):
        render.table(["a", "b"], [[1]])


def _figure():
    plt = render.pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.arange(5), np.arange(5) ** 2, label="x")
    ax.set_title("a title")
    ax.legend()
    return fig


def test_png_is_byte_identical_across_renders():
    first, second = render.png_bytes(_figure()), render.png_bytes(_figure())
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert first == second
    assert b"Software" not in first and b"matplotlib" not in first


def test_png_ignores_style_set_by_other_libraries():
    """Importing MACE sets matplotlib's font.size to 8 for the whole process: our figures
    come out the same all the same."""
    import matplotlib

    reference = render.png_bytes(_figure())
    matplotlib.rcParams["font.size"] = 8.0
    try:
        assert render.png_bytes(_figure()) == reference
    finally:
        matplotlib.rcdefaults()


def test_png_closes_the_figure():
    plt = render.pyplot()
    before = len(plt.get_fignums())
    render.png_bytes(_figure())
    assert len(plt.get_fignums()) == before


# ------------------------------------------------------------------------------ checks

def test_check_int_bounds_and_types():
    assert checks.check_int("frames", np.int64(5), 1) == 5
    assert type(checks.check_int("frames", np.int64(5), 1)) is int
    with pytest.raises(ValueError, match="frames must be an integer >= 1, got True"):
        checks.check_int("frames", True, 1)
    with pytest.raises(ValueError, match="between 1 and 3"):
        checks.check_int("d", 4, 1, 3)
    with pytest.raises(ValueError, match="at most 3"):
        checks.check_int("d", 4, high=3)


def test_check_float_bounds_and_types():
    assert checks.check_float("t", 3) == 3.0
    with pytest.raises(ValueError, match="t must be a number, got 'x'"):
        checks.check_float("t", "x")
    with pytest.raises(ValueError, match="t must be > 0"):
        checks.check_float("t", 0, positive=True)
    with pytest.raises(ValueError, match="t must be >= 1 and at most 2, got 3.0"):
        checks.check_float("t", 3, 1, 2)


# ------------------------------------------------------------------------------ writer

def test_atomic_path_syncs_and_renames(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    target = tmp_path / "sub" / "a.bin"
    sio.atomic_write_bytes(target, b"abc")
    assert target.read_bytes() == b"abc" and synced
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("before")
    with pytest.raises(KeyboardInterrupt):
        with sio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
