"""Host timing: each inference gets the host ``invoke()`` whose [start, end] holds its t_start.

The rule (README, "Host timing"): inferences, in the order they finish (their index), each take
the first invoke of the metadata, in its order, that contains their t_start and that no earlier
inference took. It is applied as requests finish, so their JSON can be written then.

Why this equals matching from the invokes' side (each invoke, in metadata order, takes the
earliest inference it contains, as usbtrace did before): both sides rank the other by one list
(every invoke prefers the earlier inference, every inference the earlier invoke), and with such
lists there is one stable matching, which a greedy pass from either side, in its list's order,
finds. Inferences finish in t_start order except in a damaged capture (timestamps that go
backwards); the two rules can differ only then (``tests/test_jsonstream.py`` checks both).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

import numpy as np

from usbtrace.analysis.requests import KIND_INFERENCE, KINDS
from usbtrace.formats.metadata import InvokeTiming


class InvokeMatcher:
    """The invokes, taken one by one by inferences as they finish (``match``)."""

    def __init__(self, invokes: Sequence[InvokeTiming]) -> None:
        self.start = np.array([i.start_ns for i in invokes], dtype=np.int64)
        self.end = np.array([i.end_ns for i in invokes], dtype=np.int64)
        self.taken = np.zeros(len(invokes), dtype=bool)
        self._by_start = np.argsort(self.start, kind="stable").tolist()
        self._next = 0  # invokes of _by_start pushed so far (those starting at or before _sweep)
        self._open: list[int] = []  # pushed invokes by metadata position; some taken or over
        self._sweep: int | None = None  # the latest t_start matched by the sweep
        self._stab: _StabbingTree | None = None  # built at the first t_start behind the sweep
        self._swept = 0  # invokes pushed and popped by the sweep

    def match(self, t_ns: int) -> int:
        """The invoke the inference starting at ``t_ns`` takes (its position), or -1."""
        if self._sweep is not None and t_ns < self._sweep:
            # an inference that started before one already matched (damaged timestamps): the
            # sweep has let go of some invokes, so it is looked up in a stabbing tree instead
            if self._stab is None:
                self._stab = _StabbingTree(self.start, self.end)
            j = self._stab.first_free(t_ns, self.taken)
            if j < 0:
                return -1
        else:
            self._sweep = t_ns
            while self._next < len(self._by_start):
                j = self._by_start[self._next]
                if self.start[j] > t_ns:
                    break
                heapq.heappush(self._open, j)
                self._next += 1
                self._swept += 1
            # an invoke over before t_ns is over for every later t_ns of the sweep too
            while self._open and (self.taken[self._open[0]] or self.end[self._open[0]] < t_ns):
                heapq.heappop(self._open)
                self._swept += 1
            if not self._open:
                return -1
            j = heapq.heappop(self._open)
        self.taken[j] = True
        return j

    @property
    def steps(self) -> int:
        """How much looking the lookups so far took (invokes, list entries, tree nodes): what
        bounds their work, O((n + m) log n) for n invokes and m inferences in any order."""
        return self._swept + (self._stab.steps if self._stab is not None else 0)

    def apply(self, rows: np.ndarray) -> None:
        """Set the host columns of these ``REQUEST`` rows (the next ones in index order)."""
        inference = np.flatnonzero(rows["kind"] == KINDS.index(KIND_INFERENCE))
        if not len(self.taken) or not len(inference):
            return
        for row, t in zip(inference.tolist(), rows["t_start_ns"][inference].tolist()):
            j = self.match(t)
            if j >= 0:
                rows["has_host"][row] = True
                rows["host_start_ns"][row] = self.start[j]
                rows["host_end_ns"][row] = self.end[j]


def _cover(
    lo: np.ndarray, hi: np.ndarray, idx: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The segment tree's usual bottom-up cover of each slot range [lo, hi): (nodes, their
    invokes ``idx``), a side of a level at a time."""
    while len(idx):
        odd = (lo & 1).astype(bool)
        yield lo[odd], idx[odd]
        lo = lo + odd
        odd = (hi & 1).astype(bool)
        hi = hi - odd
        yield hi[odd], idx[odd]
        lo >>= 1
        hi >>= 1
        more = lo < hi
        lo, hi, idx = lo[more], hi[more], idx[more]


class _StabbingTree:
    """The invokes holding a time, first in metadata order and not taken, in O(log n).

    A segment tree over the invokes' distinct start and end times, and the gaps between them
    (``2 * k`` slots for ``k`` times: slot ``2i`` is time ``i``, ``2i + 1`` the gap after it).
    Each invoke is listed at the O(log n) nodes that together cover its slots exactly, each
    list in metadata order, so the invokes holding a time are those listed on the path from
    its slot's leaf to the root, and the first free one is the least of each list's first free
    one. Invokes are only ever taken, never given back, so each list keeps a cursor past its
    taken head: over all lookups a cursor passes each entry once, O(n log n) in all.
    """

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        times = np.unique(np.concatenate([start, end]))
        self.times = times
        self.size = 1 << max(1, int(2 * len(times) - 1).bit_length())
        # an invoke that ends before it starts holds no time and is listed nowhere
        idx = np.flatnonzero(start <= end)
        lo = 2 * np.searchsorted(times, start[idx]) + self.size
        hi = 2 * np.searchsorted(times, end[idx]) + 1 + self.size  # one past its last slot
        # each (node, invoke) entry as one int64 key, node * n + invoke: sorting the keys puts
        # each node's list together, in metadata order. Up to 2 log n entries an invoke (for
        # 250,000 invokes, the most metadata may hold, 9 M): one array, counted first and then
        # filled, not per-level pieces joined, two arrays and a sort order (that peaked at
        # 330 MB)
        n = max(1, len(start))
        total = sum(len(node) for node, _ in _cover(lo, hi, idx))
        key = np.empty(total, dtype=np.int64)
        at = 0
        for node, owner in _cover(lo, hi, idx):
            np.multiply(node, n, out=key[at : at + len(node)])
            key[at : at + len(node)] += owner
            at += len(node)
        key.sort()
        small = np.int32 if max(n, total) < 2**31 else np.int64  # positions, in half the bytes
        bounds = np.searchsorted(key, np.arange(2 * self.size + 1, dtype=np.int64) * n)
        bounds = bounds.astype(small)
        np.remainder(key, n, out=key)
        self.listed = key.astype(small)
        del key
        self.cursor = bounds[:-1].copy()  # the first entry of each node's list not yet passed
        self.stop = bounds[1:]
        self.steps = 0  # list entries and nodes looked at, all lookups together

    def first_free(self, t_ns: int, taken: np.ndarray) -> int:
        """The first invoke in metadata order that holds ``t_ns`` and is not taken, or -1."""
        i = int(np.searchsorted(self.times, t_ns, side="right")) - 1
        if i < 0:
            return -1
        node = self.size + 2 * i + (0 if self.times[i] == t_ns else 1)
        best = -1
        while node:
            k, stop = int(self.cursor[node]), int(self.stop[node])
            while k < stop and taken[self.listed[k]]:
                k += 1
            self.steps += 1 + k - int(self.cursor[node])
            self.cursor[node] = k
            if k < stop and (best < 0 or self.listed[k] < best):
                best = int(self.listed[k])
            node >>= 1
        return best
