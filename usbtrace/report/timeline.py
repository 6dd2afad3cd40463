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

from usbtrace.analysis.metrics import RequestMetrics, RequestTable
from usbtrace.analysis.requests import KIND_INFERENCE, KINDS, Segmentation
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
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


class DefaultRequest:
    """Which request the timeline shows without ``--request``: the first inference that
    streams parameters, else the second inference (steady state, clear of the caching
    request), else the first inference, else request 0.

    Fed the requests' rows in order, a block at a time (``add``), so the choice is made while
    the capture streams: ``wanted`` names the one request seen so far it can still be."""

    def __init__(self) -> None:
        self.count = 0  # rows seen: the next block's first index
        self.inferences: list[int] = []  # the first two
        self.streaming: int | None = None  # the first inference that streams parameters

    def add(self, rows: np.ndarray) -> None:
        """The next ``REQUEST`` rows (their ``index`` column is not read: they come in order)."""
        first, self.count = self.count, self.count + len(rows)
        if self.streaming is not None:
            return
        inf = np.flatnonzero(rows["kind"] == KINDS.index(KIND_INFERENCE))
        self.inferences += (first + inf[: 2 - len(self.inferences)]).tolist()
        hit = inf[rows["parameters"][inf] > 0][:1]
        if len(hit):
            self.streaming = first + int(hit[0])

    @property
    def wanted(self) -> int:
        """The one request seen so far that can still be the choice: the rows to come can
        only move the choice to a request not seen yet (an inference that streams, or the
        second inference)."""
        return self.choice()

    def choice(self) -> int:
        if self.streaming is not None:
            return self.streaming
        if len(self.inferences) > 1:
            return self.inferences[1]
        return self.inferences[0] if self.inferences else 0


def default_request(requests: RequestTable) -> int:
    """``DefaultRequest``'s choice among all of ``requests``."""
    choice = DefaultRequest()
    choice.add(requests.rows)
    return choice.choice()


@dataclass
class RequestTraffic:
    """What one request put on the wire, all its timeline is drawn from: kept from the window
    in which the request became final while the rest of the window is released."""

    device: str
    link_speed: str | None
    transfers: np.ndarray  # TRANSFER rows of the request's bulk-OUT transfers, in index order
    out_urbs: np.ndarray  # OUT_URB rows of those transfers; ``tidx`` is a row of ``transfers``
    chunks: np.ndarray  # OUTPUT_CHUNK rows of its output, in frame order
    event_ns: int | None  # its completion event

    @classmethod
    def of(cls, trace: EdgeTpuTrace, seg: Segmentation, r: int) -> RequestTraffic:
        """Request ``r`` (the trace's own numbering) of a trace or window trace."""
        mine = np.flatnonzero(seg.transfer_request == r)
        urbs = trace.out_urbs[np.isin(trace.out_urbs["tidx"], mine)]
        urbs["tidx"] = np.searchsorted(mine, urbs["tidx"])
        return cls(
            device=trace.name,
            link_speed=trace.link_speed,
            transfers=trace.table[mine],
            out_urbs=urbs,
            chunks=trace.output_chunks[seg.chunk_request == r],
            event_ns=int(seg.events["t_ns"][r]) if r < len(seg.events) else None,
        )


def build_timeline(file: str, traffic: RequestTraffic, m: RequestMetrics) -> Timeline:
    """The lanes of one request, from its traffic and its metrics in the capture's summary."""
    tags = traffic.transfers["tag"]
    ceiling = link_ceiling_Bps(traffic.link_speed)
    lanes = {name: Lane(name, ceiling_Bps=ceiling) for name in LANE_ORDER}
    if m.host_start_ns is not None and m.host_end_ns is not None:
        host = lanes[LANE_HOST]
        host.starts_ns.append(m.host_start_ns)
        host.ends_ns.append(m.host_end_ns)
    urbs = traffic.out_urbs
    for u in urbs[urbs["c_frame"] > 0]:
        lane = lanes.get(OUT_LANES.get(int(tags[u["tidx"]]), ""))
        if lane is not None:
            lane.starts_ns.append(int(u["s_ts"]))
            lane.ends_ns.append(int(u["c_ts"]))
    for tag, length in zip(tags.tolist(), traffic.transfers["length"].tolist()):
        name = OUT_LANES.get(tag)
        if name:
            lanes[name].nbytes += length
    if len(traffic.chunks):
        out = lanes[LANE_OUTPUT]
        out.starts_ns += traffic.chunks["t_ns"].tolist()
        out.ends_ns += traffic.chunks["t_ns"].tolist()
        out.nbytes = int(traffic.chunks["length"].sum())
    if traffic.event_ns is not None:
        ev = lanes[LANE_EVENT]
        ev.starts_ns.append(traffic.event_ns)
        ev.ends_ns.append(traffic.event_ns)
    return Timeline(
        file=file,
        device=traffic.device,
        request=m.index,
        kind=m.kind,
        t0_ns=m.t_start_ns,
        t_end_ns=m.t_end_ns,
        exec_start_ns=m.t_end_ns - m.exec_window_ns,
        lanes=[lanes[n] for n in LANE_ORDER],
        overlap=m.overlap,
        verdict=m.verdict,
    )


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
        # min() of one float raises: a request cut before any URB completed has no start
        ax.set_xlim(min([0.0, *(b / ms for b in _starts(tl))]), span * 1.3)
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
