"""``usbtrace inspect``: one row per logical transfer, event, output and control access."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    Tag,
)
from usbtrace.edgetpu.control import CsrAccess, DfuStep
from usbtrace.edgetpu.trace import (
    EVENT,
    NS,
    EdgeTpuTrace,
    Event,
    Interrupt,
    Output,
    group_outputs,
    tag_name,
)
from usbtrace.edgetpu.wire import interrupt_names
from usbtrace.usb.devices import StandardRequest


@dataclass(frozen=True, slots=True)
class InspectRow:
    t_ns: int
    frame: int
    direction: str  # "OUT" | "IN"
    endpoint: int
    kind: str
    nbytes: int | None
    duration_ns: int | None
    note: str = ""

    def rate_Bps(self, ceiling_Bps: float = math.inf) -> float | None:
        """Bytes over the duration; None when either is missing, or when the rate is above the
        link's ceiling (``usb.link.link_ceiling_Bps``), since it cannot then be true. The
        ceiling is the renderer's to pass: the rows of a window are made before the capture
        has said its link speed (metadata comes last)."""
        if not self.nbytes or not self.duration_ns or self.duration_ns <= 0:
            return None
        rate = self.nbytes * NS / self.duration_ns
        return rate if rate <= ceiling_Bps else None


def json_rows(rows: list[InspectRow], device: str, ceiling_Bps: float) -> Iterator[dict]:
    """Each row as its ``inspect --json`` object."""
    for r in rows:
        dur = r.duration_ns
        yield {
            "device": device,
            "t": r.t_ns / NS,
            "frame": r.frame,
            "direction": r.direction,
            "endpoint": r.endpoint,
            "kind": r.kind,
            "bytes": r.nbytes,
            "duration_s": None if dur is None else dur / NS,
            "rate_Bps": r.rate_Bps(ceiling_Bps) if r.nbytes and dur else None,
            "note": r.note or None,
        }


def inspect_rows(trace: EdgeTpuTrace) -> list[InspectRow]:
    """Every row of a trace, in time order."""
    rows = transfer_rows(trace, np.ones(len(trace.table), dtype=bool))
    rows += event_rows(trace.event_table)
    rows += output_rows(trace.outputs)
    rows += control_rows(trace.interrupts, trace.csr, trace.dfu_steps, trace.standard)
    rows.sort(key=row_order)
    return rows


def row_order(r: InspectRow) -> tuple[int, int]:
    return (r.t_ns, r.frame)


def transfer_rows(trace: EdgeTpuTrace, which: np.ndarray) -> list[InspectRow]:
    """The rows of the transfers ``which`` (a mask over the trace's table) selects."""
    rows: list[InspectRow] = []
    tab = trace.table
    # the frame shown is the header's; multi-EP transfers have none: their first payload URB's
    pay, bounds = trace.payload_urbs()
    have = bounds[1:] > bounds[:-1]
    first_frame = np.zeros(len(tab), dtype=np.int64)
    first_frame[have] = pay["s_frame"][bounds[:-1][have]]
    frame = np.where(tab["header_frame"] > 0, tab["header_frame"], first_frame)
    endpoint = np.where(tab["endpoint"] > 0, tab["endpoint"], EP_BULK_OUT)
    idx = np.flatnonzero(which)
    for i, ts, tc, fr, ep, tag, length, complete in zip(
        idx.tolist(),
        tab["t_submit_ns"][idx].tolist(),
        tab["t_complete_ns"][idx].tolist(),
        frame[idx].tolist(),
        endpoint[idx].tolist(),
        tab["tag"][idx].tolist(),
        tab["length"][idx].tolist(),
        tab["complete"][idx].tolist(),
    ):
        # Python ints: a garbage timestamp must not wrap the difference around in int64
        dur = tc - ts if tc else None
        note = trace.transfer_problems.get(i) or ("" if complete else "incomplete")
        rows.append(InspectRow(ts, fr, "OUT", ep, tag_name(tag), length, dur, note))
    return rows


def event_rows(events: np.ndarray) -> list[InspectRow]:
    rows = []
    for e in map(Event, *(events[n].tolist() for n in EVENT.names or ())):
        kind = f"event {e.tag_name}"
        note = "request done" if e.tag == 4 else f"address {e.address:#x}"
        rows.append(
            InspectRow(e.t_ns, e.frame, "IN", EP_EVENT_IN, kind, e.length or 16, None, note)
        )
    return rows


def output_rows(outputs: list[Output]) -> list[InspectRow]:
    return [
        InspectRow(
            o.t_first_ns,
            o.first_frame,
            "IN",
            EP_OUTPUT_IN,
            "output",
            o.nbytes,
            o.t_last_ns - o.t_first_ns or None,
            f"{o.chunks} chunk(s)",
        )
        for o in outputs
    ]


def control_rows(
    interrupts: list[Interrupt],
    csr: list[CsrAccess],
    dfu: list[DfuStep],
    standard: list[StandardRequest],
) -> list[InspectRow]:
    rows = [
        InspectRow(
            i.t_ns,
            i.frame,
            "IN",
            EP_INTERRUPT_IN,
            f"interrupt {i.value:#x} ({', '.join(interrupt_names(i.value)) or 'none'})",
            4,
            None,
        )
        for i in interrupts
    ]
    for c in csr:
        note = "" if c.status == 0 else f"status {c.status}"
        rows.append(
            InspectRow(
                c.t_ns,
                c.frame,
                "OUT" if c.write else "IN",
                0,
                f"CSR {c.text}",
                c.width // 8,
                None,
                note,
            )
        )
    for d in dfu:
        rows.append(
            InspectRow(d.t_ns, d.frame, "IN" if d.inbound else "OUT", 0, d.text, d.length, None)
        )
    for s in standard:
        rows.append(InspectRow(s.t_ns, s.frame, "IN", 0, s.text, None, None))
    return rows


def open_output(chunks: np.ndarray, events: np.ndarray, watermark_ns: int) -> int:
    """Where the last output of these chunks (frame order) starts if more chunks may still
    join it, else ``len(chunks)``: a short chunk ended it, or a completion event came after it
    (a later chunk then starts a new output)."""
    n = len(chunks)
    if not n:
        return 0
    last = chunks[-1]
    if last["length"] < last["asked"]:
        return n
    ev_t = events["t_ns"][events["tag"] == Tag.INTERRUPT0]
    if ((ev_t >= last["t_ns"]) & (ev_t < watermark_ns)).any():
        return n
    done = ev_t[ev_t < watermark_ns]
    groups = group_outputs(chunks, done)
    return n - groups[-1].chunks


def device_heading(path: str, trace: EdgeTpuTrace) -> str:
    ids = (
        f"{trace.vendor:04x}:{trace.product:04x}"
        if trace.vendor is not None
        else "ids not captured"
    )
    speed = trace.link_speed or "unknown"
    return (
        f"{path}: Edge TPU {trace.name} ({ids}, found by {trace.identified_by}), "
        f"link {speed}{' (' + trace.link_speed_source + ')' if trace.link_speed_source else ''}"
        f"{', multi-endpoint mode' if trace.multi_ep else ''}"
    )
