"""Interval arithmetic on [start, end] pairs of integer nanoseconds."""

from __future__ import annotations

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
