"""Interval unions and clipped lengths, vectorised per group, against a plain reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from usbtrace.intervals import (
    clipped_length,
    segmented_clipped_length,
    segmented_union_length,
    union_length,
)


def reference_union(pairs: list[tuple[int, int]]) -> int:
    covered: set[int] = set()
    for s, e in pairs:
        covered.update(range(s, e))
    return len(covered)


interval = st.tuples(st.integers(-50, 200), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1]))
rows = st.lists(st.tuples(st.integers(0, 4), interval), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    rows, st.lists(st.tuples(st.integers(-60, 250), st.integers(0, 300)), min_size=5, max_size=5)
)
def test_segmented_matches_reference(data, windows):
    groups = np.array([g for g, _ in data], dtype=np.int64)
    starts = np.array([s for _, (s, _e) in data], dtype=np.int64)
    ends = np.array([e for _, (_s, e) in data], dtype=np.int64)
    lo = np.array([w[0] for w in windows], dtype=np.int64)
    hi = lo + np.array([w[1] for w in windows], dtype=np.int64)
    unions = segmented_union_length(groups, starts, ends, 5)
    clipped = segmented_clipped_length(groups, starts, ends, lo, hi)
    # rows already in (group, start) order take the path that skips the sort
    o = np.lexsort((starts, groups))
    assert list(segmented_union_length(groups[o], starts[o], ends[o], 5)) == list(unions)
    assert list(segmented_clipped_length(groups[o], starts[o], ends[o], lo, hi)) == list(clipped)
    for g in range(5):
        mine = [iv for gg, iv in data if gg == g]
        assert unions[g] == reference_union(mine)
        inside = [(max(s, lo[g]), min(e, hi[g])) for s, e in mine]
        assert clipped[g] == reference_union([iv for iv in inside if iv[1] > iv[0]])
        sel = groups == g
        assert union_length(starts[sel], ends[sel]) == unions[g]
        assert clipped_length(starts[sel], ends[sel], int(lo[g]), int(hi[g])) == clipped[g]


def test_far_apart_groups_do_not_leak():
    """A group whose intervals lie before the previous group's must not inherit its reach."""
    groups = np.array([0, 0, 1, 1])
    starts = np.array([1_000_000, 1_000_100, 10, 20])
    ends = np.array([1_000_050, 2_000_000, 15, 30])
    assert list(segmented_union_length(groups, starts, ends, 2)) == [999_950, 15]


def test_long_grouped_input_is_merged_in_chunks_with_the_same_result(monkeypatch):
    """Rows sorted by group are merged a chunk at a time; chunks never split a group."""
    import usbtrace.intervals as iv

    rng = np.random.default_rng(7)
    groups = np.sort(rng.integers(0, 300, 5000))
    starts = rng.integers(0, 10_000, 5000)
    ends = starts + rng.integers(0, 500, 5000)
    lo = rng.integers(0, 5_000, 300)
    hi = lo + rng.integers(0, 5_000, 300)
    whole = iv.segmented_union_length(groups, starts, ends, 300)
    whole_clipped = iv.segmented_clipped_length(groups, starts, ends, lo, hi)
    monkeypatch.setattr(iv, "CHUNK_ROWS", 64)
    assert len(iv._group_chunks(groups)) > 10
    assert list(iv.segmented_union_length(groups, starts, ends, 300)) == list(whole)
    assert list(iv.segmented_clipped_length(groups, starts, ends, lo, hi)) == list(whole_clipped)
    for g in (0, 150, 299):
        sel = groups == g
        assert whole[g] == iv.union_length(starts[sel], ends[sel])
