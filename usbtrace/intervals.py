"""Interval arithmetic on [start, end] pairs of integer nanoseconds (decoder and analysis)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals as sorted, disjoint intervals."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s = np.asarray(starts, dtype=np.int64)[order]
    e = np.asarray(ends, dtype=np.int64)[order]
    reach = np.maximum.accumulate(e)
    # a new merged interval starts where a start lies beyond everything before it
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > reach[:-1]
    idx = np.flatnonzero(new)
    out_s = s[idx]
    out_e = np.maximum.reduceat(e, idx)
    return out_s, out_e


def union_length(starts: np.ndarray, ends: np.ndarray) -> int:
    s, e = merge(starts, ends)
    return int((e - s).sum())


def clipped_length(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> int:
    """Length of (union of intervals) ∩ [lo, hi]."""
    if hi <= lo:
        return 0
    s, e = merge(starts, ends)
    s = np.clip(s, lo, hi)
    e = np.clip(e, lo, hi)
    return int(np.maximum(e - s, 0).sum())


def segmented_merge(
    group: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of intervals within each group: (group, start, end) of disjoint merged intervals.

    One vectorised pass: rows are sorted by (group, start); a running maximum of the ends,
    offset per group so that one group's ends never leak into the next, marks where a new merged
    interval begins.
    """
    if len(group) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    g = np.asarray(group, dtype=np.int64)
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    step_g, step_s = g[1:] - g[:-1], s[1:] >= s[:-1]
    if not ((step_g > 0) | ((step_g == 0) & step_s)).all():
        # not yet in (group, start) order (the decoder's URBs usually are: skip the sort)
        order = np.lexsort((s, g))
        g, s, e = g[order], s[order], e[order]
    e = np.maximum(e, s)
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    heads = np.flatnonzero(first)
    base = np.repeat(s[heads], np.diff(np.append(heads, len(g))))  # each group's first start
    rel_e = e - base
    span = int(rel_e.max()) + 1
    ngroups = int(g.max()) + 1 if len(g) else 0
    if span * (ngroups + 1) < (1 << 62):
        keyed = g * span + rel_e
        reach = np.maximum.accumulate(keyed) - g * span  # may be negative: previous group
    else:  # astronomically long captures: fall back to a loop rather than overflow
        reach = np.empty(len(g), dtype=np.int64)
        cur = 0
        for i in range(len(g)):
            cur = rel_e[i] if first[i] else max(cur, rel_e[i])
            reach[i] = cur
    new = first.copy()
    new[1:] |= (s[1:] - base[1:]) > reach[:-1]
    idx = np.flatnonzero(new)
    return g[idx], s[idx], np.maximum.reduceat(e, idx)


CHUNK_ROWS = 1 << 18  # rows merged at once when rows come grouped: bounds the temporaries


def _group_chunks(group: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges that never split a group, of about ``CHUNK_ROWS`` rows, when the rows are
    sorted by group (as the decoder's are); one range otherwise."""
    n = len(group)
    if n <= CHUNK_ROWS or not (group[1:] >= group[:-1]).all():
        return [(0, n)]
    cuts = np.searchsorted(group, group[np.arange(CHUNK_ROWS, n, CHUNK_ROWS)], "left")
    bounds = np.unique(np.concatenate([[0], cuts, [n]])).tolist()
    return list(pairwise(bounds))


def _add_per_group(out: np.ndarray, g: np.ndarray, values: np.ndarray) -> None:
    if len(g):
        lo = int(g.min())
        sums = np.bincount(g - lo, weights=values)  # float64: exact below 2**53 ns
        out[lo : lo + len(sums)] += sums.astype(np.int64)


def segmented_union_length(
    group: np.ndarray, starts: np.ndarray, ends: np.ndarray, ngroups: int
) -> np.ndarray:
    out = np.zeros(ngroups, dtype=np.int64)
    for lo, hi in _group_chunks(group):
        g, s, e = segmented_merge(group[lo:hi], starts[lo:hi], ends[lo:hi])
        _add_per_group(out, g, e - s)
    return out


def segmented_clipped_length(
    group: np.ndarray, starts: np.ndarray, ends: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Per group: length of (union of its intervals) ∩ [lo[group], hi[group]]."""
    out = np.zeros(len(lo), dtype=np.int64)
    for a, b in _group_chunks(group):
        g, s, e = segmented_merge(group[a:b], starts[a:b], ends[a:b])
        s = np.clip(s, lo[g], hi[g])
        e = np.clip(e, lo[g], hi[g])
        _add_per_group(out, g, np.maximum(e - s, 0))
    return out
