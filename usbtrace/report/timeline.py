"""One request as lanes of in-flight intervals: what was on the wire when, at a glance.

Lanes, top to bottom: host invoke (from the capture metadata), instructions, input, parameters
(each bulk-OUT URB of that transfer kind, header URBs included, as its [submit, completion]
interval), output and event (marks at their completions: the driver posts those reads long before
the device has anything to say, so their in-flight time is waiting, not transfer). Each lane is
annotated with its bytes and, for bulk-OUT lanes of at least 4 KiB, the rate over the union of
its intervals. The execution window (last input URB done → request end) is
shaded, so streaming that overlaps execution shows as parameter bars inside the shading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from usbtrace.analysis.metrics import RequestMetrics
from usbtrace.analysis.requests import KIND_INFERENCE, Request
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
from usbtrace.errors import UsageError
from usbtrace.intervals import union_length
from usbtrace.usb.link import link_ceiling_Bps

LANE_HOST = "host invoke"
LANE_EVENT = "event"
LANE_OUTPUT = "output"
OUT_LANES: dict[int, str] = {
    Tag.INSTRUCTIONS: "instructions",
    Tag.INPUT: "input",
    Tag.PARAMETERS: "parameters",
}
MARK_LANES = (LANE_OUTPUT, LANE_EVENT)
RATE_MIN_BYTES = 4096  # below this a "rate" is just URB overhead
LANE_ORDER = (LANE_HOST, "instructions", "input", "parameters", LANE_OUTPUT, LANE_EVENT)


@dataclass
class Lane:
    name: str
    starts_ns: list[int] = field(default_factory=list)  # absolute, ns since the epoch
    ends_ns: list[int] = field(default_factory=list)
    nbytes: int = 0
    ceiling_Bps: float = math.inf  # the link's; a faster "rate" cannot be true (usb.link)

    @property
    def busy_ns(self) -> int:
        if not self.starts_ns:
            return 0
        return union_length(np.array(self.starts_ns), np.array(self.ends_ns))

    @property
    def rate_Bps(self) -> float | None:
        busy = self.busy_ns
        if self.name in MARK_LANES or self.nbytes < RATE_MIN_BYTES or not busy:
            return None
        rate = self.nbytes * NS / busy
        return rate if rate <= self.ceiling_Bps else None


@dataclass
class Timeline:
    file: str
    device: str
    request: int
    kind: str
    t0_ns: int  # the request's start: every time is drawn relative to it
    t_end_ns: int
    exec_start_ns: int
    lanes: list[Lane]
    overlap: float
    verdict: str

    def lane(self, name: str) -> Lane:
        return next(lane for lane in self.lanes if lane.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "device": self.device,
            "request": self.request,
            "kind": self.kind,
            "latency_s": (self.t_end_ns - self.t0_ns) / NS,
            "exec_start_s": (self.exec_start_ns - self.t0_ns) / NS,
            "overlap": self.overlap,
            "verdict": self.verdict,
            "lanes": [
                {
                    "name": lane.name,
                    "bytes": lane.nbytes,
                    "busy_s": lane.busy_ns / NS,
                    "rate_Bps": lane.rate_Bps,
                    "intervals_s": [
                        [(s - self.t0_ns) / NS, (e - self.t0_ns) / NS]
                        for s, e in zip(lane.starts_ns, lane.ends_ns)
                    ],
                }
                for lane in self.lanes
            ],
        }


def default_request(metrics: list[RequestMetrics]) -> int:
    """The first inference that streams parameters, else the second inference (steady state,
    clear of the caching request), else the first inference, else request 0."""
    infs = [m for m in metrics if m.kind == KIND_INFERENCE]
    streaming = [m for m in infs if m.parameters]
    if streaming:
        return streaming[0].index
    if len(infs) > 1:
        return infs[1].index
    return infs[0].index if infs else 0


def build_timeline(file: str, trace: EdgeTpuTrace, request: Request, m: RequestMetrics) -> Timeline:
    tags = {t.index: t.tag for t in request.transfers}
    ceiling = link_ceiling_Bps(trace.link_speed)
    lanes = {name: Lane(name, ceiling_Bps=ceiling) for name in LANE_ORDER}
    if m.host_start_ns is not None and m.host_end_ns is not None:
        host = lanes[LANE_HOST]
        host.starts_ns.append(m.host_start_ns)
        host.ends_ns.append(m.host_end_ns)
    urbs = trace.out_urbs[np.isin(trace.out_urbs["tidx"], list(tags))]
    for u in urbs[urbs["c_frame"] > 0]:
        lane = lanes.get(OUT_LANES.get(tags[int(u["tidx"])], ""))
        if lane is not None:
            lane.starts_ns.append(int(u["s_ts"]))
            lane.ends_ns.append(int(u["c_ts"]))
    for t in request.transfers:
        name = OUT_LANES.get(t.tag)
        if name:
            lanes[name].nbytes += t.length
    if len(request.chunk_rows):
        chunks = trace.output_chunks[request.chunk_rows]
        out = lanes[LANE_OUTPUT]
        out.starts_ns += chunks["t_ns"].tolist()
        out.ends_ns += chunks["t_ns"].tolist()
        out.nbytes = int(chunks["length"].sum())
    if request.event is not None:
        ev = lanes[LANE_EVENT]
        ev.starts_ns.append(request.event.t_ns)
        ev.ends_ns.append(request.event.t_ns)
    return Timeline(
        file=file,
        device=trace.name,
        request=m.index,
        kind=m.kind,
        t0_ns=m.t_start_ns,
        t_end_ns=m.t_end_ns,
        exec_start_ns=m.t_end_ns - m.exec_window_ns,
        lanes=[lanes[n] for n in LANE_ORDER],
        overlap=m.overlap,
        verdict=m.verdict,
    )


def timeline_for_file(path: str | Path, request: int | None, device: str | None) -> Timeline:
    """The timeline of request ``request`` (default: see ``default_request``) of one capture."""
    from usbtrace.analysis.requests import segment
    from usbtrace.analysis.summary import summarize_trace
    from usbtrace.pipeline import decode_capture

    decoded = decode_capture(path, device, partial_ok=True)
    if not decoded.devices:
        raise UsageError(f"{path}: no Edge TPU traffic found (try --device BUS.ADDR)")
    if len(decoded.devices) > 1 and device is None:
        names = ", ".join(t.name for t in decoded.devices)
        raise UsageError(f"{path}: several Edge TPUs ({names}); choose one with --device")
    trace = decoded.devices[0]
    # the summary's metrics (verdicts, host invokes aligned) index the same segmentation
    metrics = summarize_trace(decoded, trace).requests
    requests = segment(trace)
    if not requests:
        raise UsageError(f"{path}: no request on the device")
    k = default_request(list(metrics)) if request is None else request
    if not 0 <= k < len(requests):
        raise UsageError(
            f"{path}: --request {k}: the capture has requests 0 to {len(requests) - 1}"
        )
    return build_timeline(str(path), trace, requests[k], metrics[k])


def _fmt_rate(bps: float | None) -> str:
    return "" if bps is None else f", {bps / 1e6:.1f} MB/s"


def render_timeline(
    tl: Timeline, path: Path | IO[bytes], fmt: str | None = None
) -> Path | IO[bytes]:
    """Draw the lanes into ``path`` (.png/.svg by suffix, or ``fmt`` for a stream), times in ms
    from the request's start."""
    from usbtrace.report.plots import pyplot

    plt = pyplot()
    colors = {
        LANE_HOST: "tab:gray",
        "instructions": "tab:blue",
        "input": "tab:green",
        "parameters": "tab:orange",
        LANE_OUTPUT: "tab:purple",
        LANE_EVENT: "tab:red",
    }
    ms = 1e6
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=100)
    try:
        lanes = tl.lanes[::-1]  # first lane on top
        span = max((tl.t_end_ns - tl.t0_ns) / ms, 1e-3)
        ax.axvspan(
            (tl.exec_start_ns - tl.t0_ns) / ms,
            (tl.t_end_ns - tl.t0_ns) / ms,
            color="gold",
            alpha=0.15,
        )
        for y, lane in enumerate(lanes):
            bars = [
                ((s - tl.t0_ns) / ms, max((e - s) / ms, span / 800))
                for s, e in zip(lane.starts_ns, lane.ends_ns)
            ]
            if lane.name in MARK_LANES:
                ax.plot([b[0] for b in bars], [y] * len(bars), "v", color=colors[lane.name])
            elif bars:
                ax.broken_barh(bars, (y - 0.35, 0.7), color=colors[lane.name], alpha=0.8)
            note = f"{lane.nbytes:,} B{_fmt_rate(lane.rate_Bps)}" if lane.nbytes else ""
            if note:
                ax.text(span * 1.01, y, note, va="center", fontsize="small")
        ax.set_yticks(range(len(lanes)), [lane.name for lane in lanes])
        ax.set_xlim(min(0.0, *(b / ms for b in _starts(tl))), span * 1.3)
        ax.set_xlabel(
            "ms from the request's first bulk-OUT submit (shaded: execution window, "
            "last input URB done -> request end)"
        )
        ax.set_title(
            f"{Path(tl.file).name} ({tl.device}) request #{tl.request} {tl.kind}: "
            f"{span:.2f} ms, overlap {tl.overlap:.2f}, {tl.verdict}",
            fontsize="medium",
        )
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format=fmt)
    finally:
        plt.close(fig)
    return path


def _starts(tl: Timeline) -> list[int]:
    return [s - tl.t0_ns for lane in tl.lanes for s in lane.starts_ns]
