"""Synthetic sweeps for the report tests: one small usbmon pcapng per (family, size, label).

A made-up conv family whose parameters grow with the layer count and stop fitting an on-chip cache
of ``CACHE_BYTES``: below it every parameter is cached once, above it the rest is streamed with
every inference, at the link's rate, while the device computes. Each capture carries usbtrace
metadata (model, label, link speed, host invokes, optionally a CPU baseline), as the capture runner
writes it. ``SweepPoint`` is the ground truth the tests compare the reports against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.usb import writer
from lab.usb.record import UsbRecord
from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    MAX_BULK_OUT_CHUNK,
    Tag,
)
from usbtrace.edgetpu.wire import encode_event, encode_header
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
)

BUS, DEV = 2, 4
PARAM_BYTES_PER_LAYER = 50_304  # 7x7x32x32 int8 weights + 32 int32 biases
CACHE_BYTES = 6 << 20
INSTR_BYTES_PER_LAYER = 1_800
COMPUTE_NS_PER_LAYER = 800_000
LINK_RATE = {"usb3": 300e6, "usb2": 35e6}
LINK_SPEED = {"usb3": "super", "usb2": "high"}
T0_NS = 1_700_000_000_000_000_000
INFERENCE_GAP_NS = 50_000_000


@dataclass(frozen=True)
class SweepPoint:
    family: str
    size: int
    label: str
    cached: int
    streamed: int  # per inference
    latency_ns: int  # every inference (the caching request runs before the first)
    inferences: int
    cpu_baseline_s: float | None

    @property
    def model(self) -> str:
        return f"{self.family}_{self.size}"


def plan(size: int, label: str, inferences: int = 3, cpu: bool = True) -> SweepPoint:
    total = size * PARAM_BYTES_PER_LAYER
    cached = min(total, CACHE_BYTES)
    streamed = total - cached
    compute = size * COMPUTE_NS_PER_LAYER
    stream_ns = _stream_ns(streamed, LINK_RATE[label]) if streamed else 0
    latency = _infer_latency(size, label, compute, stream_ns)
    return SweepPoint(
        "conv", size, label, cached, streamed, latency, inferences, 0.002 * size if cpu else None
    )


def _stream_ns(nbytes: int, rate: float) -> int:
    """Time to move ``nbytes`` as <=1 MiB URBs back to back, rounded like the writer does."""
    total = 0
    left = nbytes
    while left:
        n = min(left, MAX_BULK_OUT_CHUNK)
        total += _urb_ns(n, rate)
        left -= n
    return total


def _urb_ns(n: int, rate: float) -> int:
    # whole microseconds: the pcapng interface stores microsecond timestamps
    return max(1, round(n / rate * 1e6)) * 1000


HEADER_NS = 10_000
TAIL_NS = 20_000


def _infer_latency(size: int, label: str, compute: int, stream_ns: int) -> int:
    rate = LINK_RATE[label]
    instr = HEADER_NS + _urb_ns(size * INSTR_BYTES_PER_LAYER, rate)
    inp = HEADER_NS + _urb_ns(16, rate)
    params = HEADER_NS + stream_ns if stream_ns else 0
    # execution starts once the input is in; the output follows compute or the last parameter
    return instr + inp + max(compute, params) + TAIL_NS


class _Writer:
    def __init__(self) -> None:
        self.records: list[UsbRecord] = []
        self.urb_id = 0xFFFF_0000_0000_0000

    def urb(self, ep: int, t_submit: int, t_complete: int, length: int, data: bytes = b"") -> None:
        self.urb_id += 0x100
        out = ep < 0x80
        sub_data = data if out else b""
        done_data = b"" if out else data
        common = dict(urb_id=self.urb_id, xfer=XFER_BULK, epnum=ep, devnum=DEV, busnum=BUS)
        self.records.append(
            UsbRecord(
                ts_ns=t_submit,
                urb_type=URB_SUBMIT,
                status=STATUS_IN_PROGRESS,
                urb_len=length,
                data_len=len(sub_data),
                data=sub_data,
                **common,
            )
        )
        self.records.append(
            UsbRecord(
                ts_ns=t_complete,
                urb_type=URB_COMPLETE,
                status=0,
                urb_len=len(data) if not out else length,
                data_len=len(done_data),
                data=done_data,
                **common,
            )
        )

    def transfer(self, t: int, tag: int, length: int, rate: float) -> int:
        """Header then payload URBs, one at a time; returns when the last payload completed."""
        self.urb(EP_BULK_OUT, t, t + HEADER_NS, 8, encode_header(tag, length))
        t += HEADER_NS
        left = length
        while left:
            n = min(left, MAX_BULK_OUT_CHUNK)
            dt = _urb_ns(n, rate)
            self.urb(EP_BULK_OUT, t, t + dt, n)
            t += dt
            left -= n
        return t

    def finish(self, t_post: int, t_end: int, output: bool) -> None:
        if output:
            self.urb(EP_OUTPUT_IN, t_post, t_end - 5_000, 1024, bytes(8))
        event = encode_event(Tag.INTERRUPT0)
        self.urb(EP_EVENT_IN, t_post, t_end, 16, event)


def write_capture(directory: Path, p: SweepPoint, *, name: str | None = None) -> Path:
    rate = LINK_RATE[p.label]
    w = _Writer()
    t = T0_NS
    # parameter-caching request
    start = t
    t = w.transfer(t, Tag.INSTRUCTIONS, 4096, rate)
    t = w.transfer(t, Tag.PARAMETERS, p.cached, rate)
    t += TAIL_NS
    w.finish(start, t, output=False)
    invokes = []
    for i in range(p.inferences):
        t += INFERENCE_GAP_NS
        start = t
        t = w.transfer(t, Tag.INSTRUCTIONS, p.size * INSTR_BYTES_PER_LAYER, rate)
        t = w.transfer(t, Tag.INPUT, 16, rate)
        exec_start = t
        if p.streamed:
            t = w.transfer(t, Tag.PARAMETERS, p.streamed, rate)
        end = max(exec_start + p.size * COMPUTE_NS_PER_LAYER, t) + TAIL_NS
        assert end - start == p.latency_ns
        w.finish(start, end, output=True)
        invokes.append(InvokeTiming(i, start - 60_000, end + 80_000))
        t = end
    w.records.sort(key=lambda r: r.ts_ns)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name or p.model}-{p.label}.pcapng"
    extra: dict = {"model_summary": {"cached_bytes": p.cached, "streamed_bytes": p.streamed}}
    if p.cpu_baseline_s is not None:
        extra["cpu_baseline_s"] = p.cpu_baseline_s
    meta = CaptureMetadata(
        model=p.model,
        label=p.label,
        link_speed=LINK_SPEED[p.label],
        bus=BUS,
        device=DEV,
        invokes=invokes,
        extra=extra,
    )
    layout = writer.Layout(interface=f"usbmon{BUS}", statistics=False)
    writer.write_capture(path, w.records, layout, metadata=meta, overwrite=True)
    return path


SIZES = (10, 50, 100, 150, 200)


def write_sweep(
    root: Path, sizes: tuple[int, ...] = SIZES, labels: tuple[str, ...] = ("usb3", "usb2")
) -> list[SweepPoint]:
    points = []
    for label in labels:
        for size in sizes:
            p = plan(size, label)
            write_capture(root / label, p)
            points.append(p)
    return points
