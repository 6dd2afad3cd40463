"""Who waited for whom in each request: the link, the device or the host (issue 18, part 1).

Rebuilt from the bulk-OUT URBs of one Edge TPU, on arrays:
* The link carries one bulk transfer at a time: a URB is on the link from its *effective start*
  ``e = max(submit, completion of the URB before it)`` to its completion ``c`` (URBs complete in
  FIFO order on the one endpoint).
* A bulk-OUT URB completes when the device has accepted it (hardware flow control), so a URB that
  took longer than the link needs for its bytes (``LinkModel.out_ns``) was held by the device:
  the link could have delivered it sooner. Its time splits into link time (the first ``need``
  ns) and device time (the rest).
* With no URB in flight, before the request's last bulk-OUT completion, the link waits for the
  host to submit (host gap); after it, the device has every byte it was given and works until the
  output and the event (device), except for the time the output itself needs on the link.

Per request this gives ``link_busy`` (union of bulk transfers in flight), ``link`` (the part the
link itself needed), ``device_wait`` (time spent waiting on the device, which the link could have
delivered sooner) and ``host_gap`` (neither link nor device had work); ``link + device_wait +
host_gap = latency``. The verdict is the largest of the three, with its share of the latency.

The same function scores a replayed request (``predict.py``): only the arrays differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usbtrace.edgetpu.constants import (
    CSR_SCU_CTRL_3,
    GCB_CLOCK_MHZ,
    SCU_CTRL_3_CLOCK_MASK,
    SCU_CTRL_3_CLOCK_SHIFT,
)
from usbtrace.edgetpu.framing import ROLE_HEADER, ROLE_PAYLOAD
from usbtrace.edgetpu.trace import EdgeTpuTrace

VERDICT_LINK = "link-bound"
VERDICT_DEVICE = "device-bound"
VERDICT_HOST = "host-bound"
VERDICT_NA = "n/a"  # the request has no completion event: its end was not measured
VERDICTS = (VERDICT_LINK, VERDICT_DEVICE, VERDICT_HOST)
BOUND_NA = -1  # ``REQUEST_TIMING["bound"]`` for a request without a measured end

# One row per request.
REQUEST_TIMING = np.dtype(
    [
        ("link_busy_ns", "<i8"),  # union of bulk transfers in flight, in [t_start, t_end]
        ("link_ns", "<i8"),  # the part of it the link needed for the bytes
        ("device_wait_ns", "<i8"),  # waiting on the device (held transfers, device work)
        ("host_gap_ns", "<i8"),  # neither link nor device had work
        ("bound", "i1"),  # index into VERDICTS, BOUND_NA when not measured
        ("share", "<f8"),  # the bound's share of the latency
    ]
)


@dataclass(frozen=True)
class OutSchedule:
    """A device's bulk-OUT URBs in link (completion) order, each with its request."""

    request: np.ndarray  # request index, -1 when none
    submit_ns: np.ndarray
    start_ns: np.ndarray  # effective start: max(submit, previous completion)
    complete_ns: np.ndarray
    length: np.ndarray  # bytes
    tag: np.ndarray  # transfer tag, -1 for unframed URBs
    header: np.ndarray  # bool: an 8-byte header URB

    def __len__(self) -> int:
        return len(self.complete_ns)


def out_schedule(
    trace: EdgeTpuTrace, transfer_request: np.ndarray, event_t_ns: np.ndarray
) -> OutSchedule:
    """The completed bulk-OUT URBs of a trace in link order (see the module docstring)."""
    u = trace.out_urbs
    done = (u["c_frame"] > 0) & (u["s_ts"] > 0)
    # columns, not rows: a long capture has millions of URBs
    sub, comp = u["s_ts"][done], u["c_ts"][done]
    order = None
    if not ((comp[1:] >= comp[:-1]).all() and _ties_by_submit(comp, sub)):
        order = np.lexsort((sub, comp))  # usually skipped: FIFO completions come in order
        sub, comp = sub[order], comp[order]

    def col(name: str) -> np.ndarray:
        x = u[name][done]
        return x if order is None else x[order]

    tidx, role = col("tidx"), col("role")
    framed = (tidx >= 0) & ((role == ROLE_PAYLOAD) | (role == ROLE_HEADER))
    safe = np.maximum(tidx, 0)
    req = np.where(
        framed,
        transfer_request[safe] if len(transfer_request) else -1,
        np.searchsorted(event_t_ns, comp, "left"),
    )
    tag = np.where(framed, trace.table["tag"][safe] if len(trace.table) else -1, -1)
    c = comp.astype(np.int64)
    prev = np.empty_like(c)
    if len(c):
        prev[0] = np.iinfo(np.int64).min
        prev[1:] = c[:-1]  # sorted: the previous completion is the latest so far
    start = np.minimum(np.maximum(sub, prev), c)
    return OutSchedule(
        request=req.astype(np.int64),
        submit_ns=sub.astype(np.int64),
        start_ns=start,
        complete_ns=c,
        length=col("length").astype(np.int64),
        tag=tag.astype(np.int64),
        header=role == ROLE_HEADER,
    )


def _ties_by_submit(comp: np.ndarray, sub: np.ndarray) -> bool:
    """Equal completion times are in submit order (what the lexsort would give)."""
    tie = comp[1:] == comp[:-1]
    return bool((sub[1:][tie] >= sub[:-1][tie]).all())


def _coverage(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Covered length of [-inf, at] by disjoint intervals sorted by start."""
    if len(starts) == 0:
        return np.zeros(len(at), dtype=np.int64)
    lengths = ends - starts
    before = np.concatenate([[0], np.cumsum(lengths)])
    k = np.searchsorted(starts, at, "right")  # intervals starting at or before ``at``
    last = np.maximum(k - 1, 0)
    partial = np.where(k > 0, np.clip(at - starts[last], 0, lengths[last]), 0)
    return before[np.maximum(k - 1, 0)] * (k > 0) + partial


def request_timing(
    start_ns: np.ndarray,
    complete_ns: np.ndarray,
    need_ns: np.ndarray,
    request: np.ndarray,
    t_start_ns: np.ndarray,
    t_end_ns: np.ndarray,
    output_ns: np.ndarray,
    measured: np.ndarray,
) -> np.ndarray:
    """Per request: ``REQUEST_TIMING`` (see the module docstring).

    ``start_ns``/``complete_ns``: every bulk-OUT URB of the device on the link, disjoint and in
    link order; ``need_ns``: what the link needs for each; ``request``: its request (-1: none).
    Per request: its window, the link time its output needs (bulk IN), and whether its end was
    measured (an event closed it).
    """
    n = len(t_start_ns)
    out = np.zeros(n, dtype=REQUEST_TIMING)
    s = np.asarray(start_ns, dtype=np.int64)
    c = np.asarray(complete_ns, dtype=np.int64)
    split = s + np.minimum(np.maximum(need_ns, 0), c - s)  # link part first, then device-held
    a = np.asarray(t_start_ns, dtype=np.int64)
    b = np.maximum(np.asarray(t_end_ns, dtype=np.int64), a)
    link = _coverage(s, split, b) - _coverage(s, split, a)
    held = _coverage(split, c, b) - _coverage(split, c, a)
    # the request's last bulk-OUT completion: before it, an idle link waits for the host
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    mine = (request >= 0) & (request < n)
    np.maximum.at(last, request[mine], c[mine])
    z = np.clip(last, a, b)
    idle_after = (b - z) - (_coverage(s, c, b) - _coverage(s, c, z))
    out_link = np.minimum(np.asarray(output_ns, dtype=np.int64), idle_after)
    latency = b - a
    device = held + idle_after - out_link
    link_all = link + out_link
    host = np.maximum(latency - link_all - device, 0)
    out["link_busy_ns"] = link + held + out_link
    out["link_ns"] = link_all
    out["device_wait_ns"] = device
    out["host_gap_ns"] = host
    parts = np.stack([link_all, device, host], axis=1)
    bound = np.argmax(parts, axis=1).astype(np.int8)
    ok = np.asarray(measured, dtype=bool) & (latency > 0)
    out["bound"] = np.where(ok, bound, BOUND_NA)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = parts[np.arange(n), bound] / np.maximum(latency, 1)
    out["share"] = np.where(ok, share, 0.0)
    return out


def verdict_name(bound: int) -> str:
    return VERDICTS[bound] if 0 <= bound < len(VERDICTS) else VERDICT_NA


def runtime_clock_mhz(trace: EdgeTpuTrace) -> float | None:
    """The Edge TPU clock the runtime set at open: the first successful ``scu_ctrl_3`` write
    before the first bulk-OUT transfer (the close writes it again to sleep); None when absent."""
    submits = trace.table["t_submit_ns"]
    first_out = int(submits[submits > 0].min()) if (submits > 0).any() else None
    for c in trace.csr:
        if first_out is not None and c.t_ns >= first_out:
            break
        if c.write and c.address == CSR_SCU_CTRL_3 and c.value is not None and c.status == 0:
            return GCB_CLOCK_MHZ[(c.value >> SCU_CTRL_3_CLOCK_SHIFT) & SCU_CTRL_3_CLOCK_MASK]
    return None
