"""Host timing in a damaged capture: inferences whose t_start goes backwards still get the rule
(the first free invoke in metadata order that holds their t_start), and looking them up costs
O((n + m) log n), not a pass over every invoke each (a crafted file could hold 250,000)."""

from __future__ import annotations

import math
import random

import numpy as np

from usbtrace.analysis.hosttiming import InvokeMatcher
from usbtrace.analysis.metrics import REQUEST
from usbtrace.analysis.requests import KIND_INFERENCE, KINDS
from usbtrace.formats.metadata import InvokeTiming

INFERENCE = KINDS.index(KIND_INFERENCE)


def _rows(starts: list[int]) -> np.ndarray:
    rows = np.zeros(len(starts), dtype=REQUEST)
    rows["kind"] = INFERENCE
    rows["t_start_ns"] = starts
    return rows


def _rule(invokes: list[InvokeTiming], starts: list[int]) -> list[int]:
    """The README's rule, written out plainly (quadratic; for small inputs only)."""
    taken: set[int] = set()
    got = []
    for t in starts:
        free = [j for j, i in enumerate(invokes) if j not in taken and i.start_ns <= t <= i.end_ns]
        got.append(free[0] if free else -1)
        taken.update(free[:1])
    return got


def _matched(invokes: list[InvokeTiming], starts: list[int]) -> list[int]:
    matcher = InvokeMatcher(invokes)
    return [matcher.match(t) for t in starts]


def test_random_backward_starts_get_the_rule():
    rng = random.Random(1234)
    for _ in range(20):
        invokes = [
            InvokeTiming(j, a, a + rng.randrange(0, 300))
            for j, a in enumerate(rng.randrange(0, 2000) for _ in range(rng.randrange(1, 300)))
        ]
        starts = [rng.randrange(-50, 2400) for _ in range(rng.randrange(1, 400))]
        assert _matched(invokes, starts) == _rule(invokes, starts)
        # mostly forward, some going back, as a capture with a few damaged timestamps
        starts.sort()
        for k in rng.sample(range(len(starts)), len(starts) // 10):
            starts[k] -= rng.randrange(0, 500)
        assert _matched(invokes, starts) == _rule(invokes, starts)


def test_many_backward_starts_are_matched_in_n_log_n():
    n = 20_000
    bound = 8 * (2 * n) * math.log2(2 * n)  # quadratic would be n * n = 400 M

    # disjoint invokes; after one late inference, every other goes back, one invoke at a time
    disjoint = [InvokeTiming(j, 10 * j, 10 * j + 5) for j in range(n)]
    starts = [10 * n] + [10 * (n - 1 - k) + 2 for k in range(n)] + [7, 10 * n + 1]
    matcher = InvokeMatcher(disjoint)
    rows = _rows(starts)
    matcher.apply(rows)
    assert rows["has_host"].tolist() == [False] + [True] * n + [False, False]
    assert rows["host_start_ns"][1 : n + 1].tolist() == [10 * (n - 1 - k) for k in range(n)]
    assert matcher.steps < bound

    # nested invokes all holding one time, asked for again and again from behind the sweep:
    # each takes the next invoke in metadata order, the shortest last
    nested = [InvokeTiming(j, j, 2 * n - j) for j in range(n)]
    starts = [3 * n] + [n] * (n + 5)
    matcher = InvokeMatcher(nested)
    assert [matcher.match(t) for t in starts] == [-1, *range(n), -1, -1, -1, -1, -1]
    assert matcher.steps < bound

    # the same in reverse metadata order (invoke p holds n - 1 - p to n + 1 + p), the time each
    # asks for moving about: each takes the first free p from |t - n| - 1 on
    nested.reverse()
    rng = random.Random(7)
    starts = [n + rng.randrange(-40, 41) for _ in range(n)]
    matcher = InvokeMatcher(nested)
    got = [matcher.match(t) for t in [3 * n, *starts]]
    free = list(range(n + 1))  # free[p]: a free invoke at p or after (n: none), path-halved
    want = [-1]
    for t in starts:
        p = max(0, abs(t - n) - 1)
        while free[p] != p:
            free[p] = free[free[p]]
            p = free[p]
        want.append(p if p < n else -1)
        if p < n:
            free[p] = p + 1
    assert got == want
    assert matcher.steps < bound


def test_the_lookup_tree_holds_about_a_position_per_entry():
    """The tree of a crafted metadata block (many overlapping invokes, one inference behind
    the sweep) lists each invoke at up to 2 log n nodes: its peak memory while built stays
    near one 8-byte key per entry (it was 26 bytes: two arrays, their pieces and a sort
    order; 330 MB for the 250,000 invokes metadata may hold)."""
    import tracemalloc

    from usbtrace.analysis.hosttiming import _StabbingTree

    rng = np.random.default_rng(3)
    n = 50_000
    start = rng.integers(0, 10**12, n)
    end = start + rng.integers(0, 10**11, n)
    tracemalloc.start()
    try:
        tree = _StabbingTree(start, end)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    entries = len(tree.listed)
    assert entries > 10 * n  # overlapping invokes: many nodes each
    assert peak < 12 * entries + 32 * tree.size, (peak, entries, tree.size)
