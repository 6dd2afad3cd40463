"""The exact ground truth of a synthetic session, and the project's overlap definitions.

Definitions (from the summarize issue), all on whole microseconds:

* execution window = [completion of the request's last INPUT payload URB, t_end]; t_end = the later
  of the tag-4 event's completion and the last output chunk's completion;
* overlap = length(union of the streamed-parameter URB intervals [submit, completion] ∩ window)
  / length(window); 0 when nothing is streamed (or the request has no input);
* stream_busy = length of the union of those intervals; stream_rate = streamed bytes / stream_busy;
* verdict = what bounds the request, from the simulator's own link model: each bulk-OUT URB's time
  on the link splits into what the link needs (``urb_overhead_us`` + its bytes at the link rate) and
  what the device held it beyond that; after the request's last bulk-OUT URB the device works,
  except for its output's time on the link; with no URB in flight before that, the host is late.
  "link-bound", "device-bound" or "host-bound": the largest of the three.

Only inference requests stream parameters: a parameter-caching request's PARAMETERS go into on-chip
memory (``cached_bytes``), so it has streamed bytes 0 and overlap 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from usbtrace.edgetpu.constants import Tag


@dataclass
class UrbTruth:
    submit_us: int
    complete_us: int
    length: int
    frame_submit: int = 0  # 1-based packet numbers in the written file
    frame_complete: int = 0
    serial: int = 0  # the generator's own URB key


@dataclass
class TransferTruth:
    tag: int
    length: int
    header: UrbTruth | None  # None in multi-EP mode
    chunks: list[UrbTruth]
    endpoint: int


@dataclass
class RequestTruth:
    index: int
    kind: str  # "parameter-caching" | "inference" | "other"
    t_start_us: int  # submit of the first header URB (first payload URB in multi-EP mode)
    t_end_us: int
    event_us: int
    transfers: list[TransferTruth]
    output_chunks: list[tuple[int, int]]  # (completion µs, bytes)
    exec_start_us: int | None  # completion of the last input payload URB
    param_intervals: list[tuple[int, int]]  # streamed-parameter URBs, [submit, completion]
    overlap: Fraction
    stream_busy_us: int
    streamed_bytes: int
    cached_bytes: int
    stream_rate: float  # bytes per second; 0.0 without streaming
    verdict: str  # "link-bound" | "device-bound" | "host-bound"
    event_frame: int = 0
    event_serial: int = 0

    @property
    def bytes_by_tag(self) -> dict[int, int]:
        """OUT bytes per tag (0 instructions, 1 input, 2 parameters) and output bytes (tag 3)."""
        out = {int(Tag.INSTRUCTIONS): 0, int(Tag.INPUT): 0, int(Tag.PARAMETERS): 0}
        for tr in self.transfers:
            out[tr.tag] = out.get(tr.tag, 0) + tr.length
        out[int(Tag.OUTPUT)] = sum(n for _, n in self.output_chunks)
        return out

    @property
    def latency_us(self) -> int:
        return self.t_end_us - self.t_start_us

    @property
    def t_start(self) -> float:
        return self.t_start_us / 1e6

    @property
    def t_end(self) -> float:
        return self.t_end_us / 1e6


@dataclass
class DeviceTruth:
    bus: int
    address: int
    link_speed: str
    multi_ep: bool
    link_peak_out: int  # bytes per second: the model's link rate, the verdict's reference
    requests: list[RequestTruth] = field(default_factory=list)
    open_csr: int = 0  # vendor control transfers at open
    close_csr: int = 0
    dfu_blocks: int = 0  # DNLOAD blocks with data (0 without a firmware download)
    dfu_address: int | None = None

    @property
    def inferences(self) -> list[RequestTruth]:
        return [r for r in self.requests if r.kind == "inference"]


@dataclass
class InvokeTruth:
    index: int
    start_us: int
    end_us: int


@dataclass
class SessionTruth:
    name: str
    devices: list[DeviceTruth]
    frames: int = 0
    dropped: int = 0
    snaplen: int = 0
    invokes: list[InvokeTruth] = field(default_factory=list)  # of the first device
    start_us: int = 0
    end_us: int = 0

    def device(self, address: int) -> DeviceTruth:
        for d in self.devices:
            if d.address == address:
                return d
        raise KeyError(address)


def union_length(intervals: list[tuple[int, int]]) -> int:
    total = 0
    end = None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def clipped(intervals: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def streaming_figures(
    intervals: list[tuple[int, int]],
    streamed_bytes: int,
    window: tuple[int, int] | None,
) -> tuple[Fraction, int, float]:
    """(overlap, stream_busy_us, stream_rate) per the definitions above."""
    if not streamed_bytes:
        return Fraction(0), 0, 0.0
    busy = union_length(intervals)
    rate = streamed_bytes * 1e6 / busy if busy else float("inf")
    overlap = Fraction(0)
    if window is not None and window[1] > window[0]:
        overlap = Fraction(union_length(clipped(intervals, *window)), window[1] - window[0])
    return overlap, busy, rate


def bound_verdict(
    urbs: list[tuple[int, int, int]],
    window: tuple[int, int],
    last_out_us: int,
    output_link_us: int,
    need_us: Callable[[int], int],
) -> str:
    """The verdict per the definitions above. ``urbs``: (start on the link, completion, bytes) of
    every bulk-OUT URB of the device; ``need_us(bytes)``: what the link needs for one."""
    lo, hi = window
    link = held = 0
    for start, done, length in urbs:
        split = start + min(need_us(length), done - start)
        link += max(0, min(split, hi) - max(start, lo))
        held += max(0, min(done, hi) - max(split, lo))
    after = hi - max(min(last_out_us, hi), lo)
    idle_after = after - sum(max(0, min(d, hi) - max(s, last_out_us, lo)) for s, d, _ in urbs)
    out_link = min(output_link_us, idle_after)
    device = held + idle_after - out_link
    link += out_link
    host = max(hi - lo - link - device, 0)
    parts = [(link, "link-bound"), (device, "device-bound"), (host, "host-bound")]
    return max(parts, key=lambda p: p[0])[1]


def truth_to_json(truth: SessionTruth) -> dict[str, Any]:
    """The truth as plain JSON data: times in µs, overlaps as floats plus exact "p/q" strings."""

    def convert(value: Any) -> Any:
        if isinstance(value, Fraction):
            return float(value)
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    data = convert(asdict(truth))
    for dev_json, dev in zip(data["devices"], truth.devices, strict=True):
        for req_json, req in zip(dev_json["requests"], dev.requests, strict=True):
            req_json["overlap_exact"] = str(req.overlap)
            req_json["bytes_by_tag"] = convert(req.bytes_by_tag)
            req_json["latency_us"] = req.latency_us
    return data
