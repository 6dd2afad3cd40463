"""Cut an Edge TPU trace into requests: one execution on the device each.

The rules (README, "Definitions"), and why:
* A request is closed by a successful tag-4 completion event on 0x82; events come in request
  order, so the k-th event closes the k-th request.
* A bulk-OUT logical transfer belongs to the first request whose event completes at or after the
  completion of the transfer's last payload URB. Submit order cannot delimit requests: the driver
  queues the next request's headers before the previous request's event (the first inference sits
  behind the parameter-caching request in the real captures), but the device cannot finish a
  request before it has all of its data.
* An output chunk belongs to the latest request whose last input payload URB completed before the
  chunk completed.
Transfers that never completed, or completed after the last event, form a trailing request
without an event (a capture stopped mid-request); it is reported, and flagged.

Everything is computed on the trace's arrays; ``Request`` objects are thin views for callers
that want to walk one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.framing import ROLE_PAYLOAD
from usbtrace.edgetpu.trace import EdgeTpuTrace, Event, LogicalTransfer


class RequestKind(str, Enum):
    """What a request did (README, "Definitions"). A ``str``: it compares, prints and
    serialises as its value."""

    INFERENCE = "inference"  # it has an input transfer
    CACHING = "parameter-caching"  # no input, parameters: the cache fill (or a refill)
    OTHER = "other"

    def __str__(self) -> str:
        return self.value

    # as its value: a dict keyed by the plain string finds it
    __hash__ = str.__hash__


KINDS = tuple(RequestKind)  # by code: the order of the ``kind`` column of request tables
KIND_INFERENCE = RequestKind.INFERENCE
KIND_CACHING = RequestKind.CACHING
KIND_OTHER = RequestKind.OTHER
NTAGS = 8


@dataclass
class Segmentation:
    events: np.ndarray  # EVENT: the closing events, in request order
    n_requests: int  # len(events), plus one trailing request when needed
    transfer_request: np.ndarray  # per transfer: its request index
    chunk_request: np.ndarray  # per output chunk: its request index, -1 for none
    bytes_by_tag: np.ndarray  # (requests, 8): sum of header lengths per tag
    has_tag: np.ndarray  # (requests, 8): a transfer of that tag is present
    input_done_ns: np.ndarray  # per request: last input payload completion, 0 if none

    def kind_codes(self) -> np.ndarray:
        """Every request's kind, as its position in ``KINDS``."""
        return np.where(
            self.has_tag[:, Tag.INPUT], 0, np.where(self.has_tag[:, Tag.PARAMETERS], 1, 2)
        ).astype(np.int8)

    def kind(self, r: int) -> RequestKind:
        return KINDS[int(self.kind_codes()[r])]


@dataclass
class Request:
    """One request, as a view over the trace (objects are built on demand)."""

    index: int
    event: Event | None
    transfer_ids: np.ndarray
    chunk_rows: np.ndarray
    kind: RequestKind
    _trace: EdgeTpuTrace

    @property
    def transfers(self) -> list[LogicalTransfer]:
        all_t = self._trace.transfers
        return [all_t[i] for i in self.transfer_ids.tolist()]

    @property
    def tags(self) -> set[int]:
        return set(self._trace.table["tag"][self.transfer_ids].tolist())

    def bytes_by_tag(self, tag: int) -> int:
        t = self._trace.table[self.transfer_ids]
        return int(t["length"][t["tag"] == tag].sum())


def segment_arrays(trace: EdgeTpuTrace) -> Segmentation:
    ev = trace.event_table
    done = ev[ev["tag"] == Tag.INTERRUPT0]  # in frame order
    # completion time order; ties keep frame order
    events = done[np.argsort(done["t_ns"], kind="stable")]
    ev_t = events["t_ns"]
    tab = trace.table
    done = tab["t_complete_ns"]
    treq = np.searchsorted(ev_t, done, "left")
    treq[done == 0] = len(events)
    n = len(events) + (1 if (treq == len(events)).any() else 0)
    tag = np.clip(tab["tag"], 0, NTAGS - 1)
    flat = treq * NTAGS + tag
    by_tag = np.bincount(flat, weights=tab["length"], minlength=n * NTAGS)
    by_tag = by_tag.reshape(n, NTAGS).astype(np.int64)
    present = np.bincount(flat, minlength=n * NTAGS).reshape(n, NTAGS) > 0
    inputs = (tab["tag"] == Tag.INPUT) & (done > 0)
    input_done = np.zeros(n, dtype=np.int64)
    np.maximum.at(input_done, treq[inputs], done[inputs])
    # output chunks: the latest request whose input had fully arrived before the chunk completed
    have = np.flatnonzero(input_done > 0)
    order = have[np.argsort(input_done[have], kind="stable")]
    chunks = trace.output_chunks
    creq = np.full(len(chunks), -1, dtype=np.int64)
    if len(chunks) and len(order):
        k = np.searchsorted(input_done[order], chunks["t_ns"], "left") - 1
        creq = np.where(k >= 0, order[np.maximum(k, 0)], -1)
    return Segmentation(events, n, treq, creq, by_tag, present, input_done)


def segment(trace: EdgeTpuTrace) -> list[Request]:
    """The requests of a trace as objects (see ``segment_arrays`` for the vectorised form)."""
    seg = segment_arrays(trace)
    t_order = np.argsort(seg.transfer_request, kind="stable")
    t_bounds = np.searchsorted(seg.transfer_request[t_order], np.arange(seg.n_requests + 1))
    c_sel = np.flatnonzero(seg.chunk_request >= 0)
    c_order = c_sel[np.argsort(seg.chunk_request[c_sel], kind="stable")]
    c_bounds = np.searchsorted(seg.chunk_request[c_order], np.arange(seg.n_requests + 1))
    return [
        Request(
            index=r,
            event=Event(*seg.events[r].tolist()) if r < len(seg.events) else None,
            transfer_ids=t_order[t_bounds[r] : t_bounds[r + 1]],
            chunk_rows=c_order[c_bounds[r] : c_bounds[r + 1]],
            kind=seg.kind(r),
            _trace=trace,
        )
        for r in range(seg.n_requests)
    ]


def final_count(trace: EdgeTpuTrace, seg: Segmentation, watermark_ns: int) -> int:
    """How many of the window's first requests are final: nothing read after the watermark
    (every later record is stamped at or after it) can change them.

    Request r is final when (1) its event completed before the watermark, so a transfer that
    completes later belongs to a later request; (2) no transfer that more URBs may still join
    can end up in it or before it: such a transfer completes, at the earliest, when its first
    payload URB that already completed did (its other URBs may never complete); (3) an output
    chunk that completes later cannot be its: a request that is final by (1) and (2) had its
    input complete at or after r's (a chunk goes to the latest such request; a later
    request's input may still grow, so only a final one counts).
    Timestamps that go backwards break (1); the result then still does not depend on the read
    chunking (windows end at fixed frames), but may differ from a whole-file analysis.
    """
    ev_t = seg.events["t_ns"]
    a = int(np.searchsorted(ev_t, watermark_ns, "left"))  # events strictly before it
    if trace.unsettled is not None and trace.unsettled.any():
        u = trace.out_urbs
        done = (u["role"] == ROLE_PAYLOAD) & (u["c_frame"] > 0) & (u["status"] == 0)
        done &= trace.unsettled[u["tidx"]]
        if done.any():
            earliest = int(u["c_ts"][done].min())
            a = min(a, int(np.searchsorted(ev_t, earliest, "left")))
    if a <= 0:
        return 0
    done_ns = seg.input_done_ns[:a]
    if not done_ns.any():
        return a
    # the request a later chunk could still go to: the greatest (input done, index)
    return int(a - 1 - np.argmax(done_ns[::-1]))


def unassigned_chunks(seg: Segmentation) -> int:
    return int(np.count_nonzero(seg.chunk_request < 0))


def tag_sequences(trace: EdgeTpuTrace, seg: Segmentation) -> list[list[tuple[int, int]]]:
    """Per request, its bulk-OUT (tag, length) sequence in submit order (for the DMA hints)."""
    tab = trace.table
    order = np.argsort(seg.transfer_request, kind="stable")  # transfer index order within each
    out: list[list[tuple[int, int]]] = [[] for _ in range(seg.n_requests)]
    for r, tag, length in zip(
        seg.transfer_request[order].tolist(),
        tab["tag"][order].tolist(),
        tab["length"][order].tolist(),
    ):
        out[r].append((tag, length))
    return out
