"""``usbtrace inspect``: one row per logical transfer, event, output and control access."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain

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
    NS,
    EdgeTpuTrace,
    Interrupt,
    Output,
    group_outputs,
    tag_name,
)
from usbtrace.edgetpu.wire import interrupt_names
from usbtrace.errors import printable
from usbtrace.report.jsonout import encode_numbers, encode_strings
from usbtrace.usb.devices import StandardRequest


@dataclass(frozen=True, slots=True)
class InspectRow:
    """One row of ``InspectRows`` on its own (what iterating over them gives): for tests and
    for building a few rows (``control_rows``); the renderers read the columns."""

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
        return rates(InspectRows.of([self]), ceiling_Bps)[0]


@dataclass(eq=False)  # numpy columns: == would raise; compare ``list(rows)``
class InspectRows:
    """Rows of ``inspect`` as columns: a window holds hundreds of thousands of them, and an
    object per row (built, sorted, turned into a dict, encoded) cost four times what the
    columns do. ``t_ns`` and ``frame`` are numpy arrays (the time order is a numpy sort);
    the others are Python lists, whose values go out as they are."""

    t_ns: np.ndarray  # int64
    frame: np.ndarray  # int64
    direction: list[str]
    endpoint: list[int]
    kind: list[str]
    nbytes: list[int | None]
    duration_ns: list[int | None]
    note: list[str]
    # the order to show the rows in (positions), when it is not theirs: set by
    # ``in_time_order`` so that the rows are reordered once, as encoded lines, not column by
    # column
    order: np.ndarray | None = None

    @classmethod
    def of(cls, rows: Sequence[InspectRow]) -> InspectRows:
        return cls(
            np.array([r.t_ns for r in rows], dtype=np.int64),
            np.array([r.frame for r in rows], dtype=np.int64),
            [r.direction for r in rows],
            [r.endpoint for r in rows],
            [r.kind for r in rows],
            [r.nbytes for r in rows],
            [r.duration_ns for r in rows],
            [r.note for r in rows],
        )

    @classmethod
    def empty(cls) -> InspectRows:
        return cls.of([])

    @classmethod
    def concat(cls, blocks: Sequence[InspectRows]) -> InspectRows:
        blocks = [b.in_storage_order() for b in blocks]
        if len(blocks) == 1:
            return blocks[0]
        return cls._from(
            np.concatenate([b.t_ns for b in blocks] or [np.zeros(0, np.int64)]),
            np.concatenate([b.frame for b in blocks] or [np.zeros(0, np.int64)]),
            [list(chain.from_iterable(getattr(b, n) for b in blocks)) for n in _LIST_COLUMNS],
        )

    @classmethod
    def _from(cls, t_ns: np.ndarray, frame: np.ndarray, lists: list[list]) -> InspectRows:
        """From the two arrays and the list columns in ``_LIST_COLUMNS`` order."""
        direction, endpoint, kind, nbytes, duration_ns, note = lists
        return cls(t_ns, frame, direction, endpoint, kind, nbytes, duration_ns, note)

    def __len__(self) -> int:
        return len(self.t_ns)

    def __iter__(self) -> Iterator[InspectRow]:
        rows = self.in_storage_order()
        cols = (rows.t_ns.tolist(), rows.frame.tolist(), *rows._lists())
        return (InspectRow(*r) for r in zip(*cols))

    def in_storage_order(self) -> InspectRows:
        """The same rows, stored in the order they are shown in."""
        return self if self.order is None else self._take(self.order)

    def _lists(self) -> tuple[list, ...]:
        return tuple(getattr(self, n) for n in _LIST_COLUMNS)

    def _take(self, index: np.ndarray) -> InspectRows:
        """The stored rows at ``index`` (integer positions), in that order."""
        pick = index.tolist()
        return self._from(
            self.t_ns[index], self.frame[index], [[c[i] for i in pick] for c in self._lists()]
        )

    def in_time_order(self) -> InspectRows:
        """Sorted by (time, frame); rows that tie keep their order (a stable sort)."""
        rows = self.in_storage_order()
        order = np.lexsort((rows.frame, rows.t_ns))
        if (order[1:] > order[:-1]).all():
            return rows
        return replace(rows, order=order)

    def split(self, mark: int) -> tuple[InspectRows, InspectRows]:
        """(the rows before time ``mark``, the others), each in its order."""
        rows = self.in_storage_order()
        early = rows.t_ns < mark
        if early.all():
            return rows, InspectRows.empty()
        return rows._take(np.flatnonzero(early)), rows._take(np.flatnonzero(~early))


_LIST_COLUMNS = ("direction", "endpoint", "kind", "nbytes", "duration_ns", "note")
_JSON_LINE = (
    b'{"device":%b,"t":%b,"frame":%b,"direction":%b,"endpoint":%b,"kind":%b,"bytes":%b,'
    b'"duration_s":%b,"rate_Bps":%b,"note":%b}\n'
)


def rates(rows: InspectRows, ceiling_Bps: float) -> list[float | None]:
    """Each row's rate (``InspectRow.rate_Bps``), in storage order: the one place the rule
    is written, inline, since a call per row was a tenth of ``inspect --json``'s time."""
    return [
        (r if (r := b * NS / d) <= ceiling_Bps else None) if b and d and d > 0 else None
        for b, d in zip(rows.nbytes, rows.duration_ns)
    ]


def json_lines(rows: InspectRows, device: str, ceiling_Bps: float) -> bytes:
    """The rows as ``inspect --json`` lines, encoded a column at a time
    (``report.jsonout.encode_numbers``): numbers divide as Python numbers, so the values are
    those a per-row ``t_ns / NS`` gives."""
    n = len(rows)
    if not n:
        return b""
    dur = rows.duration_ns
    # the device is the same on every line: part of the line's template
    line = _JSON_LINE.replace(b"%b", encode_strings([device])[0].replace(b"%", b"%%"), 1)
    cols = (
        encode_numbers([t / NS for t in rows.t_ns.tolist()]),
        encode_numbers(rows.frame.tolist()),
        encode_strings(rows.direction),
        encode_numbers(rows.endpoint),
        encode_strings(rows.kind),
        encode_numbers(rows.nbytes),
        encode_numbers([None if d is None else d / NS for d in dur]),
        encode_numbers(rates(rows, ceiling_Bps)),
        encode_strings([x or None for x in rows.note]),
    )
    lines = [line % r for r in zip(*cols)]
    if rows.order is not None:
        lines = [lines[i] for i in rows.order.tolist()]
    return b"".join(lines)


def inspect_rows(trace: EdgeTpuTrace) -> InspectRows:
    """Every row of a trace, in time order."""
    return InspectRows.concat(
        [
            transfer_rows(trace, np.ones(len(trace.table), dtype=bool)),
            event_rows(trace.event_table),
            output_rows(trace.outputs),
            control_rows(trace.interrupts, trace.csr, trace.dfu_steps, trace.standard),
        ]
    ).in_time_order()


def transfer_rows(trace: EdgeTpuTrace, which: np.ndarray) -> InspectRows:
    """The rows of the transfers ``which`` (a mask over the trace's table) selects."""
    tab = trace.table
    # the frame shown is the header's; multi-EP transfers have none: their first payload URB's
    pay, bounds = trace.payload_urbs()
    have = bounds[1:] > bounds[:-1]
    first_frame = np.zeros(len(tab), dtype=np.int64)
    first_frame[have] = pay["s_frame"][bounds[:-1][have]]
    idx = np.flatnonzero(which)
    sel = tab[idx]
    frame = np.where(sel["header_frame"] > 0, sel["header_frame"], first_frame[idx])
    endpoint = np.where(sel["endpoint"] > 0, sel["endpoint"], EP_BULK_OUT)
    tags = sel["tag"].tolist()
    names = {t: tag_name(t) for t in set(tags)}
    note = ["" if c else "incomplete" for c in sel["complete"].tolist()]
    if trace.transfer_problems:
        for i, p in trace.transfer_problems.items():
            k = int(np.searchsorted(idx, i))
            if k < len(idx) and idx[k] == i and p:
                note[k] = p
    # Python ints: a garbage timestamp must not wrap the difference around in int64
    starts, ends = sel["t_submit_ns"].tolist(), sel["t_complete_ns"].tolist()
    dur = [tc - ts if tc else None for ts, tc in zip(starts, ends)]
    return InspectRows(
        sel["t_submit_ns"].astype(np.int64),
        frame.astype(np.int64),
        ["OUT"] * len(idx),
        endpoint.tolist(),
        [names[t] for t in tags],
        sel["length"].tolist(),
        dur,
        note,
    )


def event_rows(events: np.ndarray) -> InspectRows:
    tags = events["tag"].tolist()
    names = {t: f"event {tag_name(t)}" for t in set(tags)}
    note = [
        "request done" if t == 4 else f"address {a:#x}"
        for t, a in zip(tags, events["address"].tolist())
    ]
    return InspectRows(
        events["t_ns"].astype(np.int64),
        events["frame"].astype(np.int64),
        ["IN"] * len(events),
        [EP_EVENT_IN] * len(events),
        [names[t] for t in tags],
        [x or 16 for x in events["length"].tolist()],
        [None] * len(events),
        note,
    )


def output_rows(outputs: list[Output]) -> InspectRows:
    n = len(outputs)
    return InspectRows(
        np.array([o.t_first_ns for o in outputs], dtype=np.int64),
        np.array([o.first_frame for o in outputs], dtype=np.int64),
        ["IN"] * n,
        [EP_OUTPUT_IN] * n,
        ["output"] * n,
        [o.nbytes for o in outputs],
        [o.t_last_ns - o.t_first_ns or None for o in outputs],
        [f"{o.chunks} chunk(s)" for o in outputs],
    )


def control_rows(
    interrupts: list[Interrupt],
    csr: list[CsrAccess],
    dfu: list[DfuStep],
    standard: list[StandardRequest],
) -> InspectRows:
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
    return InspectRows.of(rows)


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
        f"{printable(path)}: Edge TPU {trace.name} ({ids}, found by {trace.identified_by}), "
        f"link {speed}{' (' + trace.link_speed_source + ')' if trace.link_speed_source else ''}"
        f"{', multi-endpoint mode' if trace.multi_ep else ''}"
    )
