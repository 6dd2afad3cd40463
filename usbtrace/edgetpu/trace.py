"""What the decoder finds for one Edge TPU: the types every later layer reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.constants import TAG_NAMES, Tag
from usbtrace.edgetpu.control import CsrAccess, DfuStep, StandardRequest

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

# One row per successful output read on 0x81 carrying data.
OUTPUT_CHUNK = np.dtype(
    [("frame", "<i8"), ("t_ns", "<i8"), ("length", "<i8"), ("asked", "<i8"), ("s_ts", "<i8")]
)


def tag_name(tag: int) -> str:
    try:
        return TAG_NAMES[Tag(tag)]
    except ValueError:
        return f"tag{tag}"


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
    transfers: list[LogicalTransfer]
    out_urbs: np.ndarray  # OUT_URB
    events: list[Event]
    interrupts: list[Interrupt]
    output_chunks: np.ndarray  # OUTPUT_CHUNK
    outputs: list[Output]
    csr: list[CsrAccess]
    dfu: list[DfuStep]
    standard: list[StandardRequest]
    firmware: FirmwareDownload | None = None
    unframed_urbs: int = 0
    cancelled: int = 0  # reads ended with -2 / -104 (timeouts, close)
    orphan_completions: int = 0  # completions whose submit is not in the capture
    errors: list[str] = field(default_factory=list)  # other non-zero statuses
    first_frame: int = 0
    last_frame: int = 0

    @property
    def name(self) -> str:
        return f"{self.bus}.{self.address}"

    @property
    def problems(self) -> list[str]:
        out = [
            f"transfer {t.index} ({t.tag_name}, header frame {t.header_frame}): {t.problem}"
            for t in self.transfers
            if t.problem
        ]
        if self.unframed_urbs:
            out.append(f"{self.unframed_urbs} bulk-OUT URB(s) outside any header's transfer")
        out.extend(self.errors)
        return out
