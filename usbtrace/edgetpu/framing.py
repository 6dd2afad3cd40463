"""Cut the bulk-OUT stream into logical transfers (single-EP mode: 8-byte header + payload URBs).

The driver writes one header (u32 length of the whole logical transfer, tag in byte 4) and then
payload URBs whose lengths add up to exactly that length; the next header is submitted only after
all of those. So the device's bulk-OUT submits on 0x01, in submit order, are a stream: with no
transfer open the next URB must be a header, after that URBs are payload until the length is
reached. An 8-byte payload URB is never mistaken for a header, because it is only read as one
when no transfer is open.

Speed: every URB that could be a header gets, in one vectorised step, the index where its payload
would end (a binary search in the running sum of URB lengths). Where each such candidate's payload
ends exactly at the next candidate, the whole run is taken at once. Elsewhere (a candidate
inside a payload, unframed URBs, a payload that overshoots or runs past the batch) the
sequential rule above decides, one transfer at a time, until the stream is back on a run.

What can go wrong, and what is done (each is flagged on the transfer, never silently attributed):
* a URB where a header is due is not a valid header (capture started mid-transfer, dropped
  frames): it is counted as unframed and skipped, and the next URB is tried as a header;
* a payload URB overshoots the bytes the header announced (dropped frames): the transfer is closed
  as inconsistent and the overshooting URB is re-examined as a possible header;
* the capture ends before the payload is complete: the transfer stays incomplete.

Multi-EP mode (no headers; the endpoint gives the tag): URBs on one endpoint form one transfer
until a URB shorter than the driver's 1 MiB chunk size ends it. That boundary rule is inferred
from the driver source, not seen on a capture.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    HEADER_LEN,
    MAX_BULK_OUT_CHUNK,
    MULTI_EP_TAG_BY_ENDPOINT,
)

ROLE_HEADER = 0
ROLE_PAYLOAD = 1
ROLE_UNFRAMED = 2


def header_candidates(length: np.ndarray, cap: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Which URBs' bytes can be a bulk-OUT header: 8 bytes, tag 0-7, bytes 5-7 zero."""
    h = head[:, :HEADER_LEN]
    return (
        (length == HEADER_LEN)
        & (cap >= HEADER_LEN)
        & (h[:, 4] <= 7)
        & (h[:, 5] == 0)
        & (h[:, 6] == 0)
        & (h[:, 7] == 0)
    )


def header_lengths(head: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(head[:, :4]).view("<u4").reshape(len(head)).astype(np.int64)


class TransferStore:
    """Per-transfer fields, appended in transfer order, kept as numpy chunks (not Python ints:
    a long capture has millions of transfers). Transfers before ``base`` were handed on
    (``drop_before``) and are no longer held."""

    FIELDS = (("tag", np.int8), ("length", np.int64), ("endpoint", np.uint8), ("frame", np.int64))

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.singles: list[tuple[int, int, int, int]] = []
        self.count = 0
        self.base = 0
        self.length_override: dict[int, int] = {}  # multi-EP transfers grow after creation

    def _flush(self) -> None:
        if self.singles:
            cols = list(zip(*self.singles))
            self.chunks.append(tuple(np.array(c, dtype=t) for c, (_, t) in zip(cols, self.FIELDS)))
            self.singles = []

    def one(self, tag: int, length: int, ep: int, frame: int) -> int:
        self.singles.append((tag, length, ep, frame))
        self.count += 1
        return self.count - 1

    def run(self, tags: np.ndarray, lengths: np.ndarray, ep: int, frames: np.ndarray) -> None:
        self._flush()
        n = len(tags)
        self.chunks.append(
            (
                tags.astype(np.int8),
                lengths.astype(np.int64),
                np.full(n, ep, dtype=np.uint8),
                frames.astype(np.int64),
            )
        )
        self.count += n

    def arrays(self) -> dict[str, np.ndarray]:
        """The held transfers' fields (from ``base``), lengths as created: a multi-EP
        transfer's grown length is in ``length_override``."""
        self._flush()
        out = {}
        for i, (name, t) in enumerate(self.FIELDS):
            parts = [c[i] for c in self.chunks]
            out[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=t)
        return out

    def drop_before(self, n: int) -> None:
        """Let go of the transfers before index ``n`` (copied out by the caller)."""
        arrays = self.arrays()
        keep = n - self.base
        self.chunks = (
            [tuple(arrays[name][keep:] for name, _ in self.FIELDS)] if n < self.count else []
        )
        self.base = n


@dataclass
class OutFramer:
    """Per device; feed its bulk-OUT submits in frame order, batch after batch."""

    multi_ep: bool = False
    store: TransferStore = field(default_factory=TransferStore)
    problems: dict[int, str] = field(default_factory=dict)
    # per submit: frame, transfer index (-1 unframed), role
    frames: list[np.ndarray] = field(default_factory=list)
    tidx: list[np.ndarray] = field(default_factory=list)
    roles: list[np.ndarray] = field(default_factory=list)
    unframed: int = 0
    valid_headers: int = 0
    _open: int = -1  # transfer whose payload is still due
    _open_len: int = 0  # its announced length
    _due: int = 0  # its bytes still due
    _open_by_ep: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.store.count

    @property
    def open_transfer(self) -> int:
        """The transfer whose payload is still due, -1 when none."""
        return self._open

    @property
    def open_by_endpoint(self) -> list[int]:
        """Multi-EP transfers still open (a later URB on their endpoint may join them)."""
        return list(self._open_by_ep.values())

    def feed(
        self,
        frame: np.ndarray,
        ep: np.ndarray,
        length: np.ndarray,
        cap: np.ndarray,
        head: np.ndarray,
    ) -> None:
        n = len(frame)
        single = ep == EP_BULK_OUT
        if self.multi_ep or not single.any():
            tidx, roles = self._feed_multi(frame, ep, length)
        elif single.all():
            tidx, roles = self._feed_single(frame, length.astype(np.int64), cap, head)
        else:
            # Runs of 0x01 and of other endpoints, each the way it would be framed alone: a
            # whole batch went multi-EP when any URB in it was not on 0x01, so the framing of
            # 0x01 headers depended on which batch they were read in.
            tidx = np.empty(n, dtype=np.int64)
            roles = np.empty(n, dtype=np.int8)
            bounds = [0, *(np.flatnonzero(np.diff(single.astype(np.int8))) + 1).tolist(), n]
            for a, b in pairwise(bounds):
                if single[a]:
                    t, r = self._feed_single(
                        frame[a:b], length[a:b].astype(np.int64), cap[a:b], head[a:b]
                    )
                else:
                    t, r = self._feed_multi(frame[a:b], ep[a:b], length[a:b])
                tidx[a:b], roles[a:b] = t, r
        self.frames.append(frame.astype(np.int64))
        self.tidx.append(tidx.astype(np.int32))
        self.roles.append(roles)
        assert len(tidx) == n

    # -- single endpoint, with headers ---------------------------------------------------------

    def _feed_single(
        self, frame: np.ndarray, length: np.ndarray, cap: np.ndarray, head: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(frame)
        tidx = np.full(n, -1, dtype=np.int64)
        roles = np.full(n, ROLE_UNFRAMED, dtype=np.int8)
        prefix = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(length, out=prefix[1:])
        valid = header_candidates(length, cap, head)
        hlen = header_lengths(head)
        cand = np.flatnonzero(valid)
        # where each candidate's payload would end (index of the URB after it), if exact
        target = prefix[cand + 1] + hlen[cand]
        end = np.searchsorted(prefix, target, "left")
        exact = (end <= n) & (prefix[np.minimum(end, n)] == target)
        nxt_ok = np.zeros(len(cand), dtype=bool)
        nxt_ok[:-1] = exact[:-1] & (end[:-1] == cand[1:])
        breaks = np.flatnonzero(~nxt_ok)  # candidates where a contiguous run stops
        cand_l = cand.tolist()
        # Python lists for the sequential rule, made only when a batch needs it (most batches
        # are one run of transfers plus an open payload)
        lists: dict[str, list[int]] = {}

        def py(name: str) -> list[int]:
            if name not in lists:
                src = {"tags": head[:, 4], "lens": hlen, "frames": frame}[name]
                lists[name] = src.tolist()
            return lists[name]

        i = 0
        while i < n:
            if self._open >= 0:  # payload still due for an open transfer
                target_i = int(prefix[i]) + self._due
                j = int(np.searchsorted(prefix, target_i, "left"))
                t = self._open
                if j > n:  # the rest of the batch is payload, and more is due
                    tidx[i:], roles[i:] = t, ROLE_PAYLOAD
                    self._due -= int(prefix[n] - prefix[i])
                    break
                if j <= n and prefix[j] == target_i:
                    tidx[i:j], roles[i:j] = t, ROLE_PAYLOAD
                    self._open, self._due = -1, 0
                    i = j
                    continue
                # URB j-1 overshoots: frames were lost, or this was never a header
                tidx[i : j - 1], roles[i : j - 1] = t, ROLE_PAYLOAD
                got = self._open_len - self._due + int(prefix[j - 1] - prefix[i])
                self.problems[t] = (
                    f"payload overshoots the header: {got} of {self._open_len} bytes, "
                    f"then a {int(length[j - 1])}-byte URB (frame {int(frame[j - 1])})"
                )
                self._open, self._due = -1, 0
                i = j - 1
                continue
            k = bisect_left(cand_l, i)
            if k == len(cand_l):
                self.unframed += n - i
                break
            if cand_l[k] > i:
                self.unframed += cand_l[k] - i
                i = cand_l[k]
            # a run of candidates whose payloads end exactly at the next candidate
            b = int(np.searchsorted(breaks, k))
            last = int(breaks[b]) if b < len(breaks) else len(cand_l) - 1
            if last > k:
                run = cand[k:last]
                first_id = self.count
                ids = np.arange(first_id, first_id + len(run))
                stop = int(end[last - 1])
                tidx[i:stop] = np.repeat(ids, end[k:last] - run)
                roles[i:stop] = ROLE_PAYLOAD
                roles[run] = ROLE_HEADER
                self.store.run(head[run, 4], hlen[run], EP_BULK_OUT, frame[run])
                self.valid_headers += len(run)
                i = stop
                continue
            # one header decided sequentially
            tags, lens = py("tags"), py("lens")
            t = self.store.one(tags[i], lens[i], EP_BULK_OUT, py("frames")[i])
            self.valid_headers += 1
            tidx[i], roles[i] = t, ROLE_HEADER
            if lens[i] > 0:
                self._open, self._open_len, self._due = t, lens[i], lens[i]
            i += 1
        return tidx, roles

    # -- multi-endpoint, no headers ------------------------------------------------------------

    def _feed_multi(
        self, frame: np.ndarray, ep: np.ndarray, length: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(frame)
        tidx = np.full(n, -1, dtype=np.int64)
        roles = np.full(n, ROLE_PAYLOAD, dtype=np.int8)
        for i, (e, ln) in enumerate(zip(ep.tolist(), length.tolist())):
            t = self._open_by_ep.get(e)
            if t is None:
                tag = int(MULTI_EP_TAG_BY_ENDPOINT.get(e, 0))
                t = self.store.one(tag, 0, e, 0)
                self._open_by_ep[e] = t
            # no header: the transfer is what was sent
            self.store.length_override[t] = self.store.length_override.get(t, 0) + ln
            tidx[i] = t
            if ln < MAX_BULK_OUT_CHUNK:
                del self._open_by_ep[e]
        return tidx, roles

    def assignments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.frames:
            z = np.zeros(0, dtype=np.int64)
            return z, z, np.zeros(0, dtype=np.int8)
        return np.concatenate(self.frames), np.concatenate(self.tidx), np.concatenate(self.roles)
