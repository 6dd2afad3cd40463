"""What the decoder finds for one Edge TPU: the types every later layer reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.constants import TAG_NAMES, Tag
from usbtrace.edgetpu.control import CsrAccess, DfuStep
from usbtrace.usb.devices import StandardRequest

NS = 1_000_000_000

# One row per bulk-OUT URB of the device, joined to the logical transfer it belongs to.
OUT_URB = np.dtype(
    [
        ("tidx", "<i8"),  # logical transfer index, -1 when unframed
        ("role", "i1"),  # usbtrace.edgetpu.framing.ROLE_*
        ("s_frame", "<i8"),
        ("s_ts", "<i8"),
        ("c_frame", "<i8"),  # 0 when the completion is missing
        ("c_ts", "<i8"),
        ("length", "<i8"),  # urb_len at submit
        ("status", "<i4"),
    ]
)

# One row per logical transfer: the vectorised form every analysis reads. ``LogicalTransfer``
# objects (``EdgeTpuTrace.transfers``) are built from it only when someone asks for them.
TRANSFER = np.dtype(
    [
        ("tag", "<i8"),
        ("length", "<i8"),  # announced by the header (multi-EP: bytes sent)
        ("endpoint", "<i8"),
        ("header_frame", "<i8"),  # 0 in multi-EP mode
        ("t_submit_ns", "<i8"),  # header submit (multi-EP: first payload submit)
        ("t_payload_start_ns", "<i8"),
        ("t_complete_ns", "<i8"),  # last payload completion; 0 when it never completed
        ("payload_bytes", "<i8"),
        ("payload_urbs", "<i8"),
        ("busy_ns", "<i8"),  # union of the payload URBs' [submit, completion]
        ("complete", "?"),
    ]
)

# One row per completion event on 0x82 (``Event`` objects are built from it on demand).
EVENT = np.dtype(
    [("frame", "<i8"), ("t_ns", "<i8"), ("tag", "<i8"), ("address", "<u8"), ("length", "<i8")]
)

# One row per successful output read on 0x81 carrying data.
OUTPUT_CHUNK = np.dtype(
    [("frame", "<i8"), ("t_ns", "<i8"), ("length", "<i8"), ("asked", "<i8"), ("s_ts", "<i8")]
)


# Tag is an IntEnum: a plain int finds its entry; a list, since inspect asks once per row
_BY_INT = {int(t): name for t, name in TAG_NAMES.items()}
_TAG_NAMES = [_BY_INT.get(t) or f"tag{t}" for t in range(256)]


def tag_name(tag: int) -> str:
    return _TAG_NAMES[tag] if 0 <= tag < 256 else f"tag{tag}"


@dataclass(slots=True)
class LogicalTransfer:
    """One header and the payload URBs its length covers (or, multi-EP, a run of URBs)."""

    index: int
    tag: int
    length: int  # announced by the header
    endpoint: int
    header_frame: int  # 0 in multi-EP mode
    payload_frames: list[int]
    t_submit_ns: int  # header submit (multi-EP: first payload submit)
    t_payload_start_ns: int  # first payload submit
    t_complete_ns: int  # last payload completion; 0 when some completion is missing
    payload_bytes: int  # sum of payload URB lengths
    busy_ns: int  # length of the union of payload URBs' [submit, completion]
    complete: bool
    problem: str | None = None

    @property
    def tag_name(self) -> str:
        return tag_name(self.tag)

    @property
    def t_submit(self) -> float:
        return self.t_submit_ns / NS

    @property
    def t_complete(self) -> float:
        return self.t_complete_ns / NS


@dataclass(slots=True)
class Event:
    frame: int
    t_ns: int
    tag: int
    address: int
    length: int

    @property
    def tag_name(self) -> str:
        return tag_name(self.tag)


@dataclass(slots=True)
class Interrupt:
    frame: int
    t_ns: int
    value: int


@dataclass(slots=True)
class Output:
    """Consecutive output chunks on 0x81, ended by a short chunk or by a completion event."""

    index: int
    first_frame: int
    last_frame: int
    t_first_ns: int
    t_last_ns: int
    nbytes: int
    chunks: int


@dataclass(slots=True)
class FirmwareDownload:
    bus: int
    address: int
    blocks: int
    nbytes: int
    uploaded: int
    t_start_ns: int
    t_end_ns: int
    status_ok: bool
    steps: list[DfuStep] = field(default_factory=list)  # the boot loader's DFU requests


@dataclass
class EdgeTpuTrace:
    bus: int
    address: int
    vendor: int | None
    product: int | None
    identified_by: str  # "descriptor" | "signature" | "--device"
    link_speed: str | None
    link_speed_source: str | None
    multi_ep: bool
    table: np.ndarray  # TRANSFER, one row per logical transfer, index = transfer index
    transfer_problems: dict[int, str]
    out_urbs: np.ndarray  # OUT_URB, sorted by (transfer, submit time)
    event_table: np.ndarray  # EVENT, in frame order
    interrupts: list[Interrupt]
    output_chunks: np.ndarray  # OUTPUT_CHUNK
    csr: list[CsrAccess]
    dfu: list[DfuStep]
    standard: list[StandardRequest]
    firmware: FirmwareDownload | None = None
    unframed_urbs: int = 0
    cancelled: int = 0  # reads ended with -2 / -104 (timeouts, close)
    orphan_completions: int = 0  # completions whose submit is not in the capture
    never_completed: int = 0  # submits whose completion is not in the capture
    assumed_event_tags: int = 0  # events whose tag byte was not captured (completion assumed)
    errors: list[str] = field(default_factory=list)  # other non-zero statuses
    first_frame: int = 0
    last_frame: int = 0
    # streaming windows: the global index of each transfer row (None: the row number), and
    # the transfers more URBs may still join (None: none, the capture has ended)
    transfer_index: np.ndarray | None = None
    unsettled: np.ndarray | None = None
    # (transfer index, text) of the problems of transfers released before (inspect)
    released_problems: list[tuple[int, str]] = field(default_factory=list)

    _transfers: list[LogicalTransfer] | None = field(default=None, repr=False)
    _outputs: list[Output] | None = field(default=None, repr=False)
    _events: list[Event] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.bus}.{self.address}"

    @property
    def dfu_steps(self) -> list[DfuStep]:
        """This device's DFU requests and those of the firmware download it was for (on the
        boot loader's own address before the re-enumeration), in frame order."""
        fw = self.firmware
        if fw is None or (fw.bus, fw.address) == (self.bus, self.address):
            return self.dfu
        return sorted(fw.steps + self.dfu, key=lambda s: s.frame)

    @property
    def events(self) -> list[Event]:
        """The event table as objects (built once, on first use)."""
        if self._events is None:
            self._events = list(
                map(Event, *(self.event_table[n].tolist() for n in EVENT.names or ()))
            )
        return self._events

    @property
    def outputs(self) -> list[Output]:
        """Output chunks grouped into outputs (built once, on first use)."""
        if self._outputs is None:
            ev = self.event_table
            done = ev["t_ns"][ev["tag"] == Tag.INTERRUPT0]
            self._outputs = group_outputs(self.output_chunks, done)
        return self._outputs

    @property
    def transfers(self) -> list[LogicalTransfer]:
        """The transfer table as objects (built once, on first use)."""
        if self._transfers is None:
            self._transfers = self._build_transfers()
        return self._transfers

    def payload_urbs(self) -> tuple[np.ndarray, np.ndarray]:
        """The framed payload URBs (``OUT_URB``), and where each transfer's run of them starts:
        transfer i's payload URBs are rows ``bounds[i]:bounds[i + 1]``."""
        from usbtrace.edgetpu.framing import ROLE_PAYLOAD

        u = self.out_urbs[(self.out_urbs["role"] == ROLE_PAYLOAD) & (self.out_urbs["tidx"] >= 0)]
        return u, np.searchsorted(u["tidx"], np.arange(len(self.table) + 1))

    def _build_transfers(self) -> list[LogicalTransfer]:
        u, bounds = self.payload_urbs()
        frames = u["s_frame"].tolist()
        out = []
        for i, row in enumerate(self.table.tolist()):
            tag, length, ep, hf, ts, tps, tc, pb, _pu, busy, complete = row
            out.append(
                LogicalTransfer(
                    index=i,
                    tag=tag,
                    length=length,
                    endpoint=ep,
                    header_frame=hf,
                    payload_frames=frames[bounds[i] : bounds[i + 1]],
                    t_submit_ns=ts,
                    t_payload_start_ns=tps,
                    t_complete_ns=tc,
                    payload_bytes=pb,
                    busy_ns=busy,
                    complete=complete,
                    problem=self.transfer_problems.get(i),
                )
            )
        return out

    def numbered_problems(self, which: np.ndarray | None = None) -> list[tuple[int, str]]:
        """(number, text) of each transfer problem, of the transfers the boolean mask ``which``
        marks (default all), in number order: "transfer G (TAG, header frame F): PROBLEM", with
        G the transfer's number in the whole capture (``transfer_index``), so that problems of
        windows decoded apart sort together. The one place this text is made: inspect,
        summarize and the streaming pipeline must agree on it byte for byte."""
        index = self.transfer_index
        out = []
        for i, p in self.transfer_problems.items():
            if which is not None and not which[i]:
                continue
            g = i if index is None else int(index[i])
            tag = tag_name(int(self.table["tag"][i]))
            hf = int(self.table["header_frame"][i])
            out.append((g, f"transfer {g} ({tag}, header frame {hf}): {p}"))
        out.sort(key=lambda x: x[0])  # by transfer number, not in the order they were found
        return out

    @property
    def problems(self) -> list[str]:
        found = self.released_problems + self.numbered_problems()
        out = [text for _, text in sorted(found)]
        if self.unframed_urbs:
            out.append(f"{self.unframed_urbs} bulk-OUT URB(s) outside any header's transfer")
        out.extend(self.errors)
        return out


def group_outputs(chunks: np.ndarray, event_times_ns: np.ndarray) -> list[Output]:
    """A short chunk ends an output; so does a completion event between two chunks."""
    n = len(chunks)
    if n == 0:
        return []
    t = chunks["t_ns"]
    events_before = np.searchsorted(np.sort(event_times_ns), t, "left")
    starts = np.ones(n, dtype=bool)
    starts[1:] = (chunks["length"][:-1] < chunks["asked"][:-1]) | (
        events_before[1:] > events_before[:-1]
    )
    first = np.flatnonzero(starts)
    last = np.append(first[1:] - 1, n - 1)
    nbytes = np.add.reduceat(chunks["length"], first)
    return [
        Output(i, ff, lf, tf, tl, nb, cnt)
        for i, (ff, lf, tf, tl, nb, cnt) in enumerate(
            zip(
                chunks["frame"][first].tolist(),
                chunks["frame"][last].tolist(),
                t[first].tolist(),
                t[last].tolist(),
                nbytes.tolist(),
                (last - first + 1).tolist(),
            )
        )
    ]
