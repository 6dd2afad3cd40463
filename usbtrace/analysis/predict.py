"""What the captured inferences would take if one thing changed (issue 18, part 3).

The scenario changes one of: the link speed, the Edge TPU clock, or whether every streamed
parameter is cached on chip. Each request's dependencies are replayed from the capture, URB by
URB in link order (``timing.out_schedule``):

* **Host.** Each bulk-OUT submit keeps its delay after what it waited for in the capture: the
  latest of the previous submit, the completion that freed its slot (3 URBs in flight) and the
  end of an earlier request. That cause moves in the replay; the delay does not.
* **Link.** One bulk transfer at a time: a URB starts at ``max(submit, previous completion)`` and
  its bytes arrive no earlier than the link model allows (``LinkModel.out_ns``). A URB the
  capture shows at link pace takes the captured time scaled by the ratio of the two links' needs.
* **Device.** It takes each piece no earlier than it did in the capture, shifted by the waits it
  has accumulated (``shift``). A URB the device held longer than the link needed (a *paced* URB)
  was taken a little at a time over its whole interval, as the device made room: the replay
  spreads its demand over the same duration from when its first byte can arrive, so a slower
  link adds only what exceeds the device's own pace. A slower clock stretches the device's own
  work (paced URBs, the compute after the last byte) by the clock ratio.
* **Cache all.** Streamed parameter URBs (and their headers) leave the link; the device work they
  paced stays.
* A request ends at its captured end plus the device's shift after its last bulk-OUT URB, plus the
  difference in the output's link time (bulk-IN chunks of 1 KiB on SuperSpeed, 256 B on
  High-Speed, each a transfer).

Predicting the captured link (no change) gives back the captured times: every URB either was
paced (the same duration comes back) or at link pace (the same time, scaled by 1).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from usbtrace.analysis.requests import (
    KIND_CACHING,
    KIND_INFERENCE,
    KINDS,
    Segmentation,
    segment_arrays,
)
from usbtrace.analysis.timing import OutSchedule, out_schedule, request_timing, runtime_clock_mhz
from usbtrace.edgetpu.constants import (
    GCB_CLOCK_MHZ,
    MAX_ASYNC_BULK_OUT,
    OUTPUT_READ_LEN_USB2,
    OUTPUT_READ_LEN_USB3,
    OUTPUT_READS_QUEUED,
    Tag,
)
from usbtrace.edgetpu.trace import EdgeTpuTrace
from usbtrace.usb.link import LINK_CEILING_BPS

if TYPE_CHECKING:  # metrics imports this module's link models
    from usbtrace.analysis.metrics import RequestMetrics, RequestTable


@dataclass(frozen=True)
class LinkModel:
    """Usable bulk throughput and per-transfer cost of one link speed, as a host reaches them."""

    name: str
    out_Bps: float  # usable bulk-OUT payload throughput
    in_Bps: float  # usable bulk-IN payload throughput
    transfer_ns: int  # per-transfer cost: scheduling, the completion's interrupt, the next URB
    in_chunk: int  # the driver's bulk-IN read size (``outfeed_chunk_length`` x 8 bytes)
    ceiling_Bps: float  # physical ceiling: no measured rate can exceed it

    def out_ns(self, length: np.ndarray) -> np.ndarray:
        """Link time of bulk-OUT URBs of these lengths."""
        return self.transfer_ns + np.asarray(length, dtype=np.float64) * 1e9 / self.out_Bps

    def output_ns(self, nbytes: np.ndarray) -> np.ndarray:
        """Link time of an output of ``nbytes`` read in ``in_chunk`` reads; the driver keeps
        ``OUTPUT_READS_QUEUED`` reads posted, so after the first, chunks pipeline and each costs
        1/8 of a transfer on top of its bytes."""
        nb = np.asarray(nbytes, dtype=np.int64)
        chunks = -(-nb // self.in_chunk)
        t = (
            self.transfer_ns
            + nb * 1e9 / self.in_Bps
            + np.maximum(chunks - 1, 0) * self.transfer_ns / OUTPUT_READS_QUEUED
        )
        return np.where(nb > 0, t, 0.0)


# SuperSpeed (USB 3.0 Gen 1): 5 Gbit/s with 8b/10b coding, 500 MB/s of payload at most
# (shared/reference/published.md, "Link and runtime facts"). Usable throughput and per-transfer
# cost are fitted to the dense_300 capture's parameter and instruction URBs that ran at link pace
# (121 472 B in ~321 us, 735 232 B in ~1 740 us, 1 038 336 B in ~2 503 us from effective start to
# completion; EDGETPU_USB.md 9.3: "~400-480 MB/s"): 420 MB/s and 40 us per transfer.
SUPER = LinkModel(
    name="super",
    out_Bps=420e6,
    in_Bps=420e6,
    transfer_ns=40_000,
    in_chunk=OUTPUT_READ_LEN_USB3,
    ceiling_Bps=LINK_CEILING_BPS["super"],
)
# High-Speed (USB 2.0): 512-byte packets, at most 13 per 125 us microframe: 53.2 MB/s at most
# (published.md). Usable throughput and per-transfer cost are calibrated on exactly the two
# visible reference runs (published.md, the study's USB 3 vs USB 2 table: conv_50 43.6 ms and
# dense_300 95.3 ms on USB 2), by replaying the USB 3 captures with this model
# (scripts/calibrate_link.py prints the fit): 36.5 MB/s, 250 us per transfer. Two runs fix two
# constants exactly, so they calibrate and do not validate; both land in the physical range (a
# real host's USB 2 bulk rate is below the 53.2 MB/s ceiling; a transfer costs about two
# microframes when the host learns of a completion by interrupt and then submits the next).
HIGH = LinkModel(
    name="high",
    out_Bps=36.5e6,
    in_Bps=36.5e6,
    transfer_ns=250_000,
    in_chunk=OUTPUT_READ_LEN_USB2,
    ceiling_Bps=LINK_CEILING_BPS["high"],
)
LINKS = {m.name: m for m in (SUPER, HIGH)}

CLOCKS = {"max": GCB_CLOCK_MHZ[0], "std": GCB_CLOCK_MHZ[1]}  # libedgetpu (published.md)
# On-chip memory for parameters: "roughly 8 MB of SRAM" (Coral's compiler documentation,
# parameter data caching). A scenario that caches more than this is only a bound.
ONCHIP_BYTES = 8 * 1024 * 1024
PACED_TOLERANCE = 1.25  # a URB held 25 % longer than the link needs was paced by the device

NS = 1_000_000_000


FIT_MIN_BYTES = 256 * 1024  # URBs long enough for their rate to show through the per-transfer cost
FIT_MIN_URBS = 3
FIT_RANGE = (0.75, 1.25)  # a measured host within this of the model is believed


def link_model(speed: str | None, sched: OutSchedule | None = None) -> LinkModel:
    """The model of a captured link; an unknown speed is taken as SuperSpeed (said so).

    With the capture's bulk-OUT URBs, the usable throughput is the one this host reached: the
    median rate of its URBs of 256 KiB or more, after the per-transfer cost, when it lies within
    25 % of the model's (a faster or slower host). Outside that, the URBs were paced by the device
    (which shows nothing of the link), and the model stands."""
    model = LINKS.get(speed or "super", SUPER)
    if sched is None:
        return model
    big = sched.length >= FIT_MIN_BYTES
    d = (sched.complete_ns - sched.start_ns)[big] - model.transfer_ns
    ok = d > 0
    if np.count_nonzero(ok) < FIT_MIN_URBS:
        return model
    rate = float(np.median(sched.length[big][ok] * 1e9 / d[ok]))
    rate = min(rate, model.ceiling_Bps)
    lo, hi = FIT_RANGE
    if not lo * model.out_Bps <= rate <= hi * model.out_Bps:
        return model
    return replace(model, out_Bps=rate, in_Bps=rate)


@dataclass(frozen=True)
class Scenario:
    link: str  # "super" | "high"
    clock_mhz: float
    cache_all: bool = False


@dataclass
class Replay:
    """Predicted times of every request and of every bulk-OUT URB (those the scenario keeps)."""

    t_start_ns: np.ndarray
    t_end_ns: np.ndarray
    urb_start_ns: np.ndarray
    urb_complete_ns: np.ndarray
    urb_need_ns: np.ndarray
    urb_request: np.ndarray
    output_ns: np.ndarray
    timing: np.ndarray  # REQUEST_TIMING of the replay

    @property
    def latency_ns(self) -> np.ndarray:
        return self.t_end_ns - self.t_start_ns


def replay(
    sched: OutSchedule,
    t_start_ns: np.ndarray,
    t_end_ns: np.ndarray,
    output_bytes: np.ndarray,
    measured: np.ndarray,
    inference: np.ndarray,
    captured: LinkModel,
    captured_clock_mhz: float,
    scenario: Scenario,
) -> Replay:
    """Replay a device's requests under ``scenario`` (see the module docstring)."""
    # the captured link itself keeps the throughput this host reached on it
    new = captured if scenario.link == captured.name else LINKS[scenario.link]
    f = captured_clock_mhz / scenario.clock_mhz  # device work stretches by this
    n = len(t_start_ns)
    s, e, c, length = sched.submit_ns, sched.start_ns, sched.complete_ns, sched.length
    req = sched.request
    m = len(c)
    # times since the first one: epoch nanoseconds (~1.7e18) would lose ~256 ns in a float64
    base = int(min(t_start_ns.min() if n else 0, s.min() if m else 0)) if n or m else 0
    s, e, c = s - base, e - base, c - base
    t_start_ns, t_end_ns = t_start_ns - base, t_end_ns - base
    d = c - e
    need_cap = captured.out_ns(length)
    need_new = new.out_ns(length)
    paced = d > need_cap * PACED_TOLERANCE
    # at link pace: the captured time, scaled by the links' ratio (1 on the captured link)
    link_t = np.where(paced, need_new, d * (need_new / need_cap))
    in_req = (req >= 0) & (req < n)
    dropped = np.zeros(m, dtype=bool)
    if scenario.cache_all:
        streamed = in_req & (sched.tag == Tag.PARAMETERS)
        streamed[in_req] &= inference[req[in_req]]
        dropped = streamed

    out_cap = captured.output_ns(output_bytes)
    out_new = new.output_ns(output_bytes)
    last_c = np.full(n, -np.inf)
    np.maximum.at(last_c, req[in_req], c[in_req].astype(np.float64))
    # the device's work after its last bulk-OUT byte (compute, then the output on the link)
    tail = np.where(np.isfinite(last_c), t_end_ns - last_c - out_cap, 0.0)
    end_extra = np.maximum(tail, 0.0) * (f - 1.0) + (out_new - out_cap)

    end_index = np.argsort(t_end_ns, kind="stable")
    sorted_ends = t_end_ns[end_index].tolist()
    new_start = t_start_ns.astype(np.float64).copy()
    shift_at = np.zeros(n)  # device shift after each request's last bulk-OUT URB
    started = np.zeros(n, dtype=bool)

    # one pass per URB (a few dozen per request), on Python lists
    sl, el, cl, dl = s.tolist(), e.tolist(), c.tolist(), d.tolist()
    lt, pl, rl, dr = link_t.tolist(), paced.tolist(), req.tolist(), dropped.tolist()
    e_new = np.full(m, np.nan)
    c_new = np.full(m, np.nan)
    shift = 0.0  # replayed minus captured time of the device's progress
    prev_c_new = -np.inf
    prev_s_new: float | None = None
    kept_c_cap: list[float] = []  # completions of kept URBs: a slot frees at each
    kept_c_new: list[float] = []
    for i in range(m):
        r = rl[i]
        # host: it submits a fixed delay after the latest of what it waited for in the capture
        # (its previous submit, a free slot, an earlier request's result); in the replay, after
        # the latest of those same causes as replayed. A URB cached away waits for nothing.
        causes_cap = [sl[i - 1]] if i else []
        causes_new = [prev_s_new] if prev_s_new is not None else []
        if i >= MAX_ASYNC_BULK_OUT and cl[i - MAX_ASYNC_BULK_OUT] <= sl[i]:
            causes_cap.append(cl[i - MAX_ASYNC_BULK_OUT])
        if len(kept_c_cap) >= MAX_ASYNC_BULK_OUT and kept_c_cap[-MAX_ASYNC_BULK_OUT] <= sl[i]:
            causes_new.append(kept_c_new[-MAX_ASYNC_BULK_OUT])
        k = bisect_right(sorted_ends, sl[i]) - 1
        if k >= 0:
            j = int(end_index[k])
            if started[j]:  # the host waited for that request's result
                causes_cap.append(sorted_ends[k])
                causes_new.append(t_end_ns[j] + shift_at[j] + end_extra[j])
        s_new = sl[i]
        if causes_cap and causes_new:
            s_new = max(causes_new) + (sl[i] - max(causes_cap))
        if not dr[i]:
            prev_s_new = s_new
        if 0 <= r < n and not started[r]:
            started[r] = True
            new_start[r] += s_new - sl[i]
        if dr[i]:
            # cached on chip: no link time; the device work it paced remains, and a device that
            # waited for it on the link no longer does
            ready = max(el[i] + shift, prev_c_new)
            shift = ready + (dl[i] * f if pl[i] else 0.0) - cl[i]
        else:
            e_i = max(s_new, prev_c_new)
            if pl[i]:
                # demand spread over the captured duration (stretched by the clock), from when
                # the device is ready and the first byte can arrive
                c_i = max(e_i + lt[i], max(el[i] + shift, e_i) + dl[i] * f)
            else:
                # the device was waiting on the link: it takes the bytes as they come
                c_i = max(e_i + lt[i], el[i] + shift)
            shift = c_i - cl[i]
            e_new[i], c_new[i] = e_i, c_i
            prev_c_new = c_i
            kept_c_cap.append(cl[i])
            kept_c_new.append(c_i)
        if 0 <= r < n:
            shift_at[r] = shift

    new_end = np.maximum(t_end_ns + shift_at + end_extra, new_start)
    keep = ~np.isnan(c_new)
    en, cn = e_new[keep], c_new[keep]
    need_kept = need_new[keep]
    req_kept = req[keep]
    ts = np.round(new_start).astype(np.int64) + base
    te = np.round(new_end).astype(np.int64) + base
    en = np.round(en).astype(np.int64) + base
    cn = np.round(cn).astype(np.int64) + base
    timing = request_timing(
        en,
        cn,
        np.round(need_kept).astype(np.int64),
        req_kept,
        ts,
        te,
        np.round(out_new).astype(np.int64),
        measured,
    )
    return Replay(ts, te, en, cn, need_kept, req_kept, out_new, timing)


@dataclass
class Prediction:
    """One device's measured and predicted inference latencies under one scenario."""

    scenario: Scenario
    measured_link: str | None
    measured_clock_mhz: float | None
    indices: list[int]  # the inferences with a measured end, by request index
    measured_ns: np.ndarray
    predicted_ns: np.ndarray
    predicted_bounds: np.ndarray  # REQUEST_TIMING["bound"] of those inferences
    replay: Replay | None  # the whole capture's replay; None when replayed window by window
    notes: list[str]


def predict_trace(
    trace: EdgeTpuTrace, metrics: Sequence[RequestMetrics], scenario: Scenario
) -> Prediction:
    """Replay every request of one Edge TPU under ``scenario`` (see the module docstring)."""
    seg = segment_arrays(trace)
    notes: list[str] = []
    if trace.link_speed not in LINKS:
        notes.append(f"link speed {trace.link_speed or 'unknown'}: replayed as SuperSpeed")
    clock = runtime_clock_mhz(trace)
    if clock is None:
        notes.append("runtime clock not in the capture: taken as max (500 MHz)")
    sched = out_schedule(trace, seg.transfer_request, seg.events["t_ns"])
    captured = link_model(trace.link_speed, sched)
    rep = replay(
        sched,
        np.array([m.t_start_ns for m in metrics], dtype=np.int64),
        np.array([m.t_end_ns for m in metrics], dtype=np.int64),
        np.array([m.output for m in metrics], dtype=np.int64),
        np.array([m.has_event for m in metrics], dtype=bool),
        np.array([m.kind == KIND_INFERENCE for m in metrics], dtype=bool),
        captured,
        clock or CLOCKS["max"],
        scenario,
    )
    if scenario.cache_all:
        cached = next((m.parameters for m in metrics if m.kind == KIND_CACHING), 0)
        streamed = max((m.parameters for m in metrics if m.kind == KIND_INFERENCE), default=0)
        notes += _on_chip_note(cached, streamed)
    idx = [m.index for m in metrics if m.kind == KIND_INFERENCE and m.has_event]
    measured = np.array([metrics[i].latency_ns for i in idx], dtype=np.int64)
    return Prediction(
        scenario=scenario,
        measured_link=trace.link_speed,
        measured_clock_mhz=clock,
        indices=idx,
        measured_ns=measured,
        predicted_ns=rep.latency_ns[idx],
        predicted_bounds=rep.timing["bound"][idx],
        replay=rep,
        notes=notes,
    )


def _on_chip_note(cached: int, streamed: int) -> list[str]:
    if cached + streamed <= ONCHIP_BYTES:
        return []
    return [
        f"caching everything needs {(cached + streamed) / 2**20:.1f} MiB on chip; the "
        f"Edge TPU has about {ONCHIP_BYTES / 2**20:.0f} MiB: the prediction is a bound"
    ]


# A replayed request, kept per window by the streaming ``predict`` (``usbtrace.pipeline``).
PREDICTED = np.dtype([("latency_ns", "<i8"), ("bound", "i1")])


def predict_window(
    trace: EdgeTpuTrace, seg: Segmentation, requests: RequestTable, scenario: Scenario
) -> np.ndarray:
    """``PREDICTED`` for every request of a trace or window, replayed on its own URBs (the
    captured link fitted on them, as ``metrics`` does for the verdict)."""
    r = requests.rows
    sched = out_schedule(trace, seg.transfer_request, seg.events["t_ns"])
    clock = runtime_clock_mhz(trace)
    rep = replay(
        sched,
        r["t_start_ns"],
        r["t_end_ns"],
        r["output"],
        r["has_event"],
        r["kind"] == KINDS.index(KIND_INFERENCE),
        link_model(trace.link_speed, sched),
        clock or CLOCKS["max"],
        scenario,
    )
    out = np.zeros(len(r), dtype=PREDICTED)
    out["latency_ns"] = rep.latency_ns
    out["bound"] = rep.timing["bound"]
    return out


def prediction_from_rows(
    trace: EdgeTpuTrace, requests: RequestTable, predicted: np.ndarray, scenario: Scenario
) -> Prediction:
    """A ``Prediction`` from the rows the streaming ``predict`` kept (``predicted`` is
    ``PREDICTED``, one per request, in request order)."""
    notes: list[str] = []
    if trace.link_speed not in LINKS:
        notes.append(f"link speed {trace.link_speed or 'unknown'}: replayed as SuperSpeed")
    clock = runtime_clock_mhz(trace)
    if clock is None:
        notes.append("runtime clock not in the capture: taken as max (500 MHz)")
    r = requests.rows
    inference = r["kind"] == KINDS.index(KIND_INFERENCE)
    if scenario.cache_all:
        caching = r["parameters"][r["kind"] == KINDS.index(KIND_CACHING)]
        streamed = r["parameters"][inference]
        notes += _on_chip_note(
            int(caching[0]) if len(caching) else 0, int(streamed.max()) if len(streamed) else 0
        )
    idx = np.flatnonzero(inference & r["has_event"])
    return Prediction(
        scenario=scenario,
        measured_link=trace.link_speed,
        measured_clock_mhz=clock,
        indices=r["index"][idx].tolist(),
        measured_ns=(r["t_end_ns"] - r["t_start_ns"])[idx],
        predicted_ns=predicted["latency_ns"][idx],
        predicted_bounds=predicted["bound"][idx],
        replay=None,
        notes=notes,
    )
