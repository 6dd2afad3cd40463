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
Transfers completing after the last event form a trailing request without an event (a capture
stopped mid-request); it is reported, and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.framing import ROLE_PAYLOAD
from usbtrace.edgetpu.trace import EdgeTpuTrace, Event, LogicalTransfer

KIND_INFERENCE = "inference"
KIND_CACHING = "parameter-caching"
KIND_OTHER = "other"


@dataclass
class Request:
    index: int
    event: Event | None
    transfers: list[LogicalTransfer] = field(default_factory=list)
    chunk_rows: list[int] = field(default_factory=list)  # indices into trace.output_chunks

    @property
    def tags(self) -> set[int]:
        return {t.tag for t in self.transfers}

    @property
    def kind(self) -> str:
        tags = self.tags
        if Tag.INPUT in tags:
            return KIND_INFERENCE
        if Tag.PARAMETERS in tags:
            return KIND_CACHING
        return KIND_OTHER

    def bytes_by_tag(self, tag: int) -> int:
        return sum(t.length for t in self.transfers if t.tag == tag)


def _done_ns(t: LogicalTransfer) -> int:
    """When the device had all of the transfer (or, incomplete, its submit as a lower bound)."""
    return t.t_complete_ns or t.t_submit_ns


def segment(trace: EdgeTpuTrace) -> list[Request]:
    events = sorted(
        (e for e in trace.events if e.tag == Tag.INTERRUPT0), key=lambda e: (e.t_ns, e.frame)
    )
    requests = [Request(i, e) for i, e in enumerate(events)]
    ev_t = np.array([e.t_ns for e in events], dtype=np.int64)
    trailing: Request | None = None
    for t in trace.transfers:
        k = int(np.searchsorted(ev_t, _done_ns(t), "left")) if t.t_complete_ns else len(events)
        if k < len(requests):
            requests[k].transfers.append(t)
        else:
            if trailing is None:
                trailing = Request(len(requests), None)
            trailing.transfers.append(t)
    if trailing is not None:
        requests.append(trailing)
    # outputs: the latest request whose input had fully arrived before the chunk completed
    input_done = []
    for r in requests:
        ins = [t.t_complete_ns for t in r.transfers if t.tag == Tag.INPUT and t.t_complete_ns]
        if ins:
            input_done.append((max(ins), r.index))
    input_done.sort()
    done_t = np.array([d for d, _ in input_done], dtype=np.int64)
    chunks = trace.output_chunks
    if len(chunks) and len(done_t):
        k = np.searchsorted(done_t, chunks["t_ns"], "left") - 1
        for row, kk in enumerate(k.tolist()):
            if kk >= 0:
                requests[input_done[kk][1]].chunk_rows.append(row)
    return requests


def parameter_urbs(trace: EdgeTpuTrace, request: Request) -> np.ndarray:
    """Rows of ``trace.out_urbs`` that carry this request's parameter payload."""
    ids = [t.index for t in request.transfers if t.tag == Tag.PARAMETERS]
    if not ids:
        return trace.out_urbs[:0]
    u = trace.out_urbs
    return u[np.isin(u["tidx"], ids) & (u["role"] == ROLE_PAYLOAD)]


def unassigned_chunks(trace: EdgeTpuTrace, requests: list[Request]) -> int:
    return len(trace.output_chunks) - sum(len(r.chunk_rows) for r in requests)
