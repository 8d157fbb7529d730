"""Hypothesis strategies for feature sets and probe degrees."""

from hypothesis import strategies as st


def feature_sets(max_degree: int = 6, max_size: int = 4):
    """Non-empty sets of distinct degrees within 0..max_degree, as sorted tuples."""
    return st.sets(st.integers(0, max_degree), min_size=1, max_size=max_size).map(
        lambda s: tuple(sorted(s)))


def probe_degrees(max_d: int = 4):
    return st.integers(1, max_d)
