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
from collections.abc import Sequence

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

    def match(self, t_ns: int) -> int:
        """The invoke the inference starting at ``t_ns`` takes (its position), or -1."""
        if self._sweep is not None and t_ns < self._sweep:
            # an inference that started before one already matched (damaged timestamps):
            # looked up over all invokes, since the sweep has let go of some
            free = np.flatnonzero((self.start <= t_ns) & (t_ns <= self.end) & ~self.taken)
            if not len(free):
                return -1
            j = int(free[0])
        else:
            self._sweep = t_ns
            while self._next < len(self._by_start):
                j = self._by_start[self._next]
                if self.start[j] > t_ns:
                    break
                heapq.heappush(self._open, j)
                self._next += 1
            # an invoke over before t_ns is over for every later t_ns of the sweep too
            while self._open and (self.taken[self._open[0]] or self.end[self._open[0]] < t_ns):
                heapq.heappop(self._open)
            if not self._open:
                return -1
            j = heapq.heappop(self._open)
        self.taken[j] = True
        return j

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
