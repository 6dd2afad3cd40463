"""Per-request metrics: bytes per phase, latency, parameter-streaming overlap, pace verdict.

Definitions (also in the README, and used exactly):
* t_start: submit of the request's first bulk-OUT header URB; t_end: the later of its event's
  completion and its last output chunk's completion; latency = t_end - t_start.
* parameter intervals: [submit, completion] of each parameter payload URB of the request;
  stream_busy = length of their union; execution window = [completion of the last input payload
  URB, t_end]; overlap = length(union ∩ window) / length(window), 0 when nothing is streamed;
  stream_rate = streamed bytes / stream_busy.
* link_peak_out: the highest bulk-OUT rate in the capture, over logical transfers of 256 KiB or
  more (length / union of their payload URB intervals) and over inference requests' stream_rate.
* verdict per inference: usb-bound if stream_rate >= 0.8 x link_peak_out, compute-paced if lower,
  no-streaming if nothing is streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.analysis.intervals import clipped_length, union_length
from usbtrace.analysis.requests import KIND_CACHING, KIND_INFERENCE, Request, parameter_urbs
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace

PEAK_TRANSFER_MIN_BYTES = 256 * 1024
USB_BOUND_FRACTION = 0.8
VERDICT_USB = "usb-bound"
VERDICT_COMPUTE = "compute-paced"
VERDICT_NONE = "no-streaming"
VERDICT_NA = "n/a"  # not an inference


@dataclass
class RequestMetrics:
    index: int
    kind: str
    t_start_ns: int
    t_end_ns: int
    instructions: int
    input: int
    parameters: int
    output: int
    overlap: float
    stream_busy_ns: int
    stream_rate_Bps: float | None
    exec_window_ns: int
    has_event: bool
    verdict: str = VERDICT_NA
    cache_refill: bool = False
    problems: list[str] = field(default_factory=list)
    host_start_ns: int | None = None
    host_end_ns: int | None = None

    @property
    def latency_ns(self) -> int:
        return self.t_end_ns - self.t_start_ns

    @property
    def host_latency_ns(self) -> int | None:
        if self.host_start_ns is None or self.host_end_ns is None:
            return None
        return self.host_end_ns - self.host_start_ns

    def to_json(self) -> dict:
        out = {
            "index": self.index,
            "kind": self.kind,
            "t_start": self.t_start_ns / NS,
            "t_end": self.t_end_ns / NS,
            "latency_s": self.latency_ns / NS,
            "bytes": {
                "instructions": self.instructions,
                "input": self.input,
                "parameters": self.parameters,
                "output": self.output,
            },
            "overlap": self.overlap,
            "stream_busy_s": self.stream_busy_ns / NS,
            "stream_rate_Bps": self.stream_rate_Bps,
            "verdict": self.verdict,
        }
        if self.cache_refill:
            out["cache_refill"] = True
        if self.host_latency_ns is not None:
            out["host_latency_s"] = self.host_latency_ns / NS
            out["host_overhead_s"] = (self.host_latency_ns - self.latency_ns) / NS
        if self.problems:
            out["problems"] = list(self.problems)
        return out


def request_metrics(trace: EdgeTpuTrace, r: Request) -> RequestMetrics:
    problems: list[str] = []
    headers = [t.t_submit_ns for t in r.transfers if t.t_submit_ns]
    chunks = trace.output_chunks[r.chunk_rows] if r.chunk_rows else trace.output_chunks[:0]
    ends = [int(chunks["t_ns"].max())] if len(chunks) else []
    if r.event is not None:
        ends.append(r.event.t_ns)
    else:
        problems.append("no completion event (capture ended mid-request?)")
    t_start = min(headers) if headers else (min(ends) if ends else 0)
    t_end = max(ends) if ends else max((t.t_complete_ns for t in r.transfers), default=t_start)
    for t in r.transfers:
        if t.problem:
            problems.append(f"{t.tag_name} transfer (frame {t.header_frame}): {t.problem}")
        elif not t.complete:
            problems.append(f"{t.tag_name} transfer (frame {t.header_frame}) did not complete")

    params = parameter_urbs(trace, r)
    done = params[params["c_frame"] > 0]
    streamed = r.bytes_by_tag(Tag.PARAMETERS)
    busy = union_length(done["s_ts"], done["c_ts"]) if len(done) else 0
    inputs = [t.t_complete_ns for t in r.transfers if t.tag == Tag.INPUT and t.t_complete_ns]
    window_lo = max(inputs) if inputs else t_start
    window = max(t_end - window_lo, 0)
    overlap = 0.0
    if streamed and window and len(done):
        overlap = clipped_length(done["s_ts"], done["c_ts"], window_lo, t_end) / window
    rate = streamed * NS / busy if streamed and busy else None
    return RequestMetrics(
        index=r.index,
        kind=r.kind,
        t_start_ns=t_start,
        t_end_ns=t_end,
        instructions=r.bytes_by_tag(Tag.INSTRUCTIONS),
        input=r.bytes_by_tag(Tag.INPUT),
        parameters=streamed,
        output=int(chunks["length"].sum()) if len(chunks) else 0,
        overlap=overlap,
        stream_busy_ns=busy,
        stream_rate_Bps=rate,
        exec_window_ns=window,
        has_event=r.event is not None,
        problems=problems,
    )


def link_peak_out(trace: EdgeTpuTrace, metrics: list[RequestMetrics]) -> float | None:
    rates = [
        t.length * NS / t.busy_ns
        for t in trace.transfers
        if t.length >= PEAK_TRANSFER_MIN_BYTES and t.busy_ns > 0 and t.complete
    ]
    rates += [m.stream_rate_Bps for m in metrics if m.kind == KIND_INFERENCE and m.stream_rate_Bps]
    return max(rates) if rates else None


def apply_verdicts(metrics: list[RequestMetrics], peak: float | None) -> None:
    caching_seen = False
    for m in metrics:
        if m.kind == KIND_CACHING:
            m.cache_refill = caching_seen
            caching_seen = True
        if m.kind != KIND_INFERENCE:
            m.verdict = VERDICT_NA
        elif not m.parameters:
            m.verdict = VERDICT_NONE
        elif (
            m.stream_rate_Bps is not None
            and peak
            and m.stream_rate_Bps >= USB_BOUND_FRACTION * peak
        ):
            m.verdict = VERDICT_USB
        else:
            m.verdict = VERDICT_COMPUTE


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    return float(np.percentile(values, q)) if values else None
