"""Rows that grow with the capture (one per finished request, one per logical transfer), kept
in fixed-size chunks of anonymous memory maps until they are joined once at the end.

Why memory maps: a window's few thousand rows are small numpy arrays that glibc keeps on its
heap, between the pipeline's short-lived buffers. Freed there, they are seldom handed back to
the kernel (a trimmed heap needs its top free, and ``usbtrace/allocator.py`` raises the threshold),
so joining them at the end held both the pieces and the result: about twice the rows' size at
the peak. A mapped chunk is handed back (munmap) as soon as it is copied and let go, so the
join costs the result plus one chunk, and the rows never fragment the heap while streaming.
"""

from __future__ import annotations

import mmap

import numpy as np

CHUNK_BYTES = 4 << 20  # a chunk holds this much; a few MB keeps the join's overhead small


def mapped_empty(n: int, dtype: np.dtype) -> np.ndarray:
    """``np.empty(n, dtype)`` in its own anonymous memory map (returned to the kernel when
    the last array on it is released)."""
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, n * dtype.itemsize), dtype=dtype, count=n)


class RowStore:
    """Rows of one structured dtype, appended window by window, joined once by ``take``."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self._per_chunk = max(1, CHUNK_BYTES // dtype.itemsize)
        self._chunks: list[np.ndarray] = []
        self._last_used = 0  # rows filled in the last chunk
        self.count = 0

    def append(self, rows: np.ndarray) -> None:
        at = 0
        while at < len(rows):
            if not self._chunks or self._last_used == self._per_chunk:
                self._chunks.append(mapped_empty(self._per_chunk, self.dtype))
                self._last_used = 0
            take = min(len(rows) - at, self._per_chunk - self._last_used)
            self._chunks[-1][self._last_used : self._last_used + take] = rows[at : at + take]
            self._last_used += take
            at += take
        self.count += len(rows)

    def take(self) -> np.ndarray:
        """Every row in order, in one array; the store is emptied, each chunk let go as soon
        as it is copied (so the peak is the result plus one chunk)."""
        out = mapped_empty(self.count, self.dtype)
        at = 0
        self._chunks.reverse()
        while self._chunks:
            chunk = self._chunks.pop()
            n = min(len(chunk), self.count - at)
            out[at : at + n] = chunk[:n]
            at += n
            del chunk
        self._last_used = 0
        self.count = 0
        return out


def select(rows: np.ndarray, which: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """``rows[which]`` with only the fields ``names``: a compact copy of the columns a
    computation reads, rather than of whole rows (which are ~165 bytes each)."""
    out = np.empty(int(np.count_nonzero(which)), dtype=[(n, rows.dtype[n]) for n in names])
    for n in names:
        out[n] = rows[n][which]
    return out


# one bulk-OUT logical transfer as a model reconciliation compares it: (tag, announced length)
TAG_LENGTH = np.dtype([("tag", "u1"), ("length", "<u4")])


class TransferSequences:
    """Per request, the (tag, length) order of its bulk-OUT transfers, for reconciling with a
    model. A model runs the same sequence request after request, so each distinct sequence is
    kept once and a request keeps only its number (4 bytes, rather than 9 per transfer: 27 MB
    on a 14.4 M-frame capture of 3 M transfers)."""

    def __init__(self) -> None:
        self._ids = RowStore(np.dtype("<u4"))  # per request, in index order
        self._known: dict[bytes, int] = {}
        self.distinct: list[bytes] = []  # TAG_LENGTH records, packed
        self.ids = np.zeros(0, dtype="<u4")  # set by ``close``

    def add(self, request: np.ndarray, tag: np.ndarray, length: np.ndarray, k: int) -> None:
        """The next ``k`` requests' transfers: ``request`` numbers them 0..k-1 (each request's
        transfers in transfer order)."""
        order = np.argsort(request, kind="stable")
        packed = np.empty(len(order), dtype=TAG_LENGTH)
        packed["tag"] = tag[order]
        packed["length"] = length[order]
        data = packed.tobytes()
        ends = (np.cumsum(np.bincount(request, minlength=k)) * TAG_LENGTH.itemsize).tolist()
        ids = np.empty(k, dtype="<u4")
        start = 0
        for i, end in enumerate(ends):
            key = data[start:end]
            found = self._known.get(key)
            if found is None:
                found = self._known[key] = len(self.distinct)
                self.distinct.append(key)
            ids[i] = found
            start = end
        self._ids.append(ids)

    def close(self) -> None:
        """No more requests: join the per-request numbers."""
        self.ids = self._ids.take()
        self._known.clear()

    def sequences(self) -> dict[int, list[tuple[int, int]]]:
        """Per request index (requests without a transfer are left out), its sequence."""
        decoded = [
            [(int(t), int(n)) for t, n in np.frombuffer(d, dtype=TAG_LENGTH).tolist()]
            for d in self.distinct
        ]
        return {i: list(decoded[s]) for i, s in enumerate(self.ids.tolist()) if decoded[s]}
