"""Per-request metrics: bytes per phase, latency, parameter-streaming overlap, pace verdict.

Definitions (also in the README, and used exactly):
* t_start: submit of the request's first bulk-OUT header URB; t_end: the later of its event's
  completion and its last output chunk's completion; latency = t_end - t_start.
* parameter intervals: [submit, completion] of each parameter payload URB of an inference (a
  parameter-caching request's parameters are cached, not streamed: overlap 0, no rate);
  stream_busy = length of their union; execution window = [completion of the last input payload
  URB, t_end]; overlap = length(union ∩ window) / length(window), 0 when nothing is streamed;
  stream_rate = streamed bytes / stream_busy.
* link_peak_out: the highest bulk-OUT rate in the capture, over logical transfers of 256 KiB or
  more (length / union of their payload URB intervals) and over inference requests' stream_rate.
* a rate above the link's physical ceiling (``usbtrace.usb.link``) cannot have happened: it is
  not reported (null) and is named as an integrity problem instead; nor is a rate whose interval
  has no measured end (a request without its event).
* verdict per request (``timing.py``): link-bound, device-bound or host-bound, whichever of the
  link's time, the wait on the device and the host's gaps takes the largest share of the latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from usbtrace.analysis.predict import link_model
from usbtrace.analysis.requests import KIND_CACHING, KIND_INFERENCE, Segmentation
from usbtrace.analysis.timing import VERDICT_NA, out_schedule, request_timing, verdict_name
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.framing import ROLE_PAYLOAD
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace, tag_name
from usbtrace.intervals import segmented_clipped_length, segmented_union_length
from usbtrace.usb.link import link_ceiling_Bps

PEAK_TRANSFER_MIN_BYTES = 256 * 1024


@dataclass(slots=True)
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
    # who waited for whom (timing.py): set with the verdict
    link_busy_ns: int = 0
    link_ns: int = 0
    device_wait_ns: int = 0
    host_gap_ns: int = 0
    verdict_share: float | None = None

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
            "verdict_share": self.verdict_share,
            "link_busy_s": self.link_busy_ns / NS,
            "device_wait_s": self.device_wait_ns / NS,
            "host_gap_s": self.host_gap_ns / NS,
        }
        if self.cache_refill:
            out["cache_refill"] = True
        if self.host_latency_ns is not None:
            out["host_latency_s"] = self.host_latency_ns / NS
            out["host_overhead_s"] = (self.host_latency_ns - self.latency_ns) / NS
        if self.problems:
            out["problems"] = list(self.problems)
        return out


def all_request_metrics(trace: EdgeTpuTrace, seg: Segmentation) -> list[RequestMetrics]:
    """Metrics of every request of a trace, computed on arrays (see the module docstring)."""
    n = seg.n_requests
    tab = trace.table
    treq = seg.transfer_request
    big = np.iinfo(np.int64).max
    t_start = np.full(n, big, dtype=np.int64)
    sub = tab["t_submit_ns"] > 0
    np.minimum.at(t_start, treq[sub], tab["t_submit_ns"][sub])
    chunks = trace.output_chunks
    has_c = seg.chunk_request >= 0
    creq = seg.chunk_request[has_c]
    out_bytes = np.bincount(creq, weights=chunks["length"][has_c], minlength=n).astype(np.int64)
    t_end = np.zeros(n, dtype=np.int64)
    np.maximum.at(t_end, creq, chunks["t_ns"][has_c])
    ev_t = seg.events["t_ns"]
    t_end[: len(ev_t)] = np.maximum(t_end[: len(ev_t)], ev_t)
    last_done = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_done, treq, tab["t_complete_ns"])
    t_end = np.where(t_end == 0, last_done, t_end)
    t_start = np.where(t_start == big, t_end, t_start)
    t_end = np.maximum(t_end, t_start)

    # parameter payload URBs that completed, grouped by request
    u = trace.out_urbs
    is_param = (u["role"] == ROLE_PAYLOAD) & (u["tidx"] >= 0) & (u["c_frame"] > 0)
    is_param[is_param] = tab["tag"][u["tidx"][is_param]] == Tag.PARAMETERS
    # three columns through the mask, not a copy of whole rows: a long capture has millions
    group = treq[u["tidx"][is_param]]
    ps, pc = u["s_ts"][is_param], u["c_ts"][is_param]
    del is_param
    busy = segmented_union_length(group, ps, pc, n)
    window_lo = np.where(seg.input_done_ns > 0, seg.input_done_ns, t_start)
    window_lo = np.minimum(window_lo, t_end)
    window = t_end - window_lo
    inside = segmented_clipped_length(group, ps, pc, window_lo, t_end)
    del group, ps, pc
    streamed = seg.bytes_by_tag[:, Tag.PARAMETERS]
    # only an inference streams: a caching request's parameters are cached, so its overlap is 0
    # and it has no stream rate (its big transfers still count towards link_peak_out)
    inference = seg.has_tag[:, Tag.INPUT]
    busy = np.where(inference, busy, 0)
    inside = np.where(inference, inside, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.where(
            inference & (streamed > 0) & (window > 0), inside / np.maximum(window, 1), 0.0
        )
        rate = np.where(
            inference & (streamed > 0) & (busy > 0), streamed * NS / np.maximum(busy, 1), np.nan
        )

    problems: dict[int, list[str]] = {}
    ceiling = link_ceiling_Bps(trace.link_speed)
    for r in np.flatnonzero(rate > ceiling).tolist():
        problems.setdefault(r, []).append(_over_ceiling("stream rate", rate[r], trace.link_speed))
        rate[r] = np.nan
    bad = np.flatnonzero(~tab["complete"])
    for i in bad.tolist():
        r = int(treq[i])
        why = trace.transfer_problems.get(i, "did not complete")
        name = tag_name(int(tab["tag"][i]))
        problems.setdefault(r, []).append(
            f"{name} transfer (frame {int(tab['header_frame'][i])}): {why}"
        )
    for r in range(len(seg.events), n):
        problems.setdefault(r, []).insert(0, "no completion event (capture ended mid-request?)")

    n_events = len(seg.events)
    # a rate needs both ends of its interval: no event, no rate
    rate[np.arange(n) >= n_events] = np.nan
    by_tag = seg.bytes_by_tag
    rates = [None if x != x else x for x in rate.tolist()]  # NaN: no stream rate
    cols = zip(
        range(n),
        seg.kinds(),
        t_start.tolist(),
        t_end.tolist(),
        by_tag[:, Tag.INSTRUCTIONS].tolist(),
        by_tag[:, Tag.INPUT].tolist(),
        streamed.tolist(),
        out_bytes.tolist(),
        overlap.tolist(),
        busy.tolist(),
        rates,
        window.tolist(),
        (np.arange(n) < n_events).tolist(),
        repeat(VERDICT_NA),  # verdicts come later (apply_verdicts)
        repeat(False),  # cache_refill, likewise
        [problems.get(r, []) for r in range(n)],
    )
    # positional: the fields in RequestMetrics' declaration order (kwargs cost 2x here)
    return [RequestMetrics(*c) for c in cols]


def _over_ceiling(what: str, rate: float, link_speed: str | None) -> str:
    link = f"{link_speed}-speed link" if link_speed else "link (speed unknown)"
    return (
        f"{what} {rate / 1e6:,.1f} MB/s is above the {link}'s ceiling of "
        f"{link_ceiling_Bps(link_speed) / 1e6:,.1f} MB/s: its timestamps cannot be right, "
        "not reported"
    )


def _transfer_rates(trace: EdgeTpuTrace) -> np.ndarray:
    """Rates of the big complete bulk-OUT transfers (both ends of every payload URB measured)."""
    tab = trace.table
    ok = (tab["length"] >= PEAK_TRANSFER_MIN_BYTES) & (tab["busy_ns"] > 0) & tab["complete"]
    return tab["length"][ok] * NS / tab["busy_ns"][ok]


def link_peak_out(trace: EdgeTpuTrace, metrics: list[RequestMetrics]) -> float | None:
    rates = _transfer_rates(trace)
    possible = rates[rates <= link_ceiling_Bps(trace.link_speed)].tolist()
    possible += [
        m.stream_rate_Bps for m in metrics if m.kind == KIND_INFERENCE and m.stream_rate_Bps
    ]
    return max(possible) if possible else None


def impossible_rates(trace: EdgeTpuTrace) -> list[str]:
    """Integrity problems: bulk-OUT transfers faster than the link can carry (left out above)."""
    rates = _transfer_rates(trace)
    over = rates[rates > link_ceiling_Bps(trace.link_speed)]
    if not len(over):
        return []
    what = f"{len(over)} bulk-OUT transfer rate(s), up to"
    return [_over_ceiling(what, float(over.max()), trace.link_speed)]


def apply_verdicts(trace: EdgeTpuTrace, seg: Segmentation, metrics: list[RequestMetrics]) -> None:
    """Who bounds each request (``timing.request_timing``), and which caching requests refill."""
    caching_seen = False
    for m in metrics:
        if m.kind == KIND_CACHING:
            m.cache_refill = caching_seen
            caching_seen = True
    if not metrics:
        return
    sched = out_schedule(trace, seg.transfer_request, seg.events["t_ns"])
    link = link_model(trace.link_speed, sched)
    timing = request_timing(
        sched.start_ns,
        sched.complete_ns,
        np.round(link.out_ns(sched.length)).astype(np.int64),
        sched.request,
        np.array([m.t_start_ns for m in metrics], dtype=np.int64),
        np.array([m.t_end_ns for m in metrics], dtype=np.int64),
        np.round(link.output_ns(np.array([m.output for m in metrics]))).astype(np.int64),
        np.array([m.has_event for m in metrics], dtype=bool),
    )
    for m, row in zip(metrics, timing.tolist()):
        busy, link_ns, device, host, bound, share = row
        m.link_busy_ns, m.link_ns, m.device_wait_ns, m.host_gap_ns = busy, link_ns, device, host
        m.verdict = verdict_name(bound)
        m.verdict_share = share if m.verdict != VERDICT_NA else None


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    return float(np.percentile(values, q)) if values else None
