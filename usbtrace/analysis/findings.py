"""A diagnosis a person can act on: what costs each capture the most time (issue 18, part 5).

Each finding says in plain words what costs time, carries its number, and what it costs: ``ms``
per occurrence (per inference, per cache switch, once for the first inference) and
``total_ms`` over the capture, by which findings are ranked. Findings that need a prediction
(another link, another clock) replay the capture (``predict.py``); the others read the
per-request timing (``timing.py``) and the requests. Everything comes from the compact
request rows, so findings need no URB after its window: the replays are run per window, on
its URBs (``metrics._timing``), and stored in the rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from usbtrace.analysis.metrics import RequestTable
from usbtrace.analysis.predict import CLOCKS
from usbtrace.analysis.requests import KIND_CACHING, KIND_INFERENCE, KINDS
from usbtrace.analysis.rowstore import select
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
from usbtrace.edgetpu.wire import interrupt_names

MS = 1e6  # ns per ms
HOST_SHARE = 0.2  # host gaps worth a finding: a fifth of the latency
LINK_SHARE = 0.1  # streamed parameters worth a finding: the link bounds a tenth of it


@dataclass(frozen=True)
class Finding:
    # "link", "streaming", "clock", "cache-fill", "cache-refill", "host" or "interrupt"
    kind: str
    text: str
    value: float  # the finding's own number, in ``unit``
    unit: str
    ms: float  # what it costs per occurrence
    total_ms: float  # what it costs over the capture: the ranking

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.text,
            "value": self.value,
            "unit": self.unit,
            "ms": round(self.ms, 3),
            "total_ms": round(self.total_ms, 3),
        }


@dataclass(frozen=True)
class RefillCost:
    """One parameter-cache refill: another model ran in between, so the cache was sent again."""

    index: int  # the caching request
    bytes: int  # instructions + parameters it sent
    ms: float  # its latency: what the inference behind it waited, saved by co-compiling

    def to_json(self) -> dict:
        return {"index": self.index, "bytes": self.bytes, "ms": round(self.ms, 3)}


def refill_costs(requests: RequestTable) -> list[RefillCost]:
    r = requests.rows
    which = r["cache_refill"] & r["has_event"] & (r["kind"] == KINDS.index(KIND_CACHING))
    mine = r[which]
    return [
        RefillCost(i, ins + par, (te - ts) / MS)
        for i, ins, par, ts, te in zip(
            mine["index"].tolist(),
            mine["instructions"].tolist(),
            mine["parameters"].tolist(),
            mine["t_start_ns"].tolist(),
            mine["t_end_ns"].tolist(),
        )
    ]


def _median_ms(values: np.ndarray) -> float:
    return float(np.median(values)) / MS if len(values) else 0.0


def _gain(infs: np.ndarray, column: str) -> tuple[float, float] | None:
    """(predicted median ms, ms saved per inference) from a replayed-latency column of the
    rows (``metrics._timing`` replays each window's URBs); None without one."""
    predicted = infs[column]
    if not len(infs) or (predicted < 0).any():
        return None
    now = float(np.median(infs["t_end_ns"] - infs["t_start_ns"])) / MS
    then = float(np.median(predicted)) / MS
    return then, now - then


# the columns of the inferences ``find`` reads (a copy of those, not of whole rows)
FIND_FIELDS: tuple[str, ...] = ("t_start_ns", "t_end_ns", "parameters", "link_ns")
FIND_FIELDS += ("host_gap_ns", "usb3_latency_ns", "max_clock_latency_ns")


def find(trace: EdgeTpuTrace, requests: RequestTable, clock_mhz: float | None) -> list[Finding]:
    """The findings of one Edge TPU's capture, costliest first (``trace``: its link speed and
    interrupts; ``requests``: every request's compact row)."""
    r = requests.rows
    infs = select(r, (r["kind"] == KINDS.index(KIND_INFERENCE)) & r["has_event"], FIND_FIELDS)
    latency = infs["t_end_ns"] - infs["t_start_ns"]
    n = len(infs)
    out: list[Finding] = []
    if n and trace.link_speed == "high":
        g = _gain(infs, "usb3_latency_ns")
        if g is not None and g[1] > 0:
            then, saved = g
            pct = saved / (then + saved) * 100
            out.append(
                Finding(
                    "link",
                    f"USB 2 link: on USB 3 this would take ≈ {then:.1f} ms (−{pct:.0f} %)",
                    round(then, 3),
                    "ms",
                    saved,
                    saved * n,
                )
            )
    streamed = infs["parameters"][infs["parameters"] > 0]
    if len(streamed):
        link_ms = _median_ms(infs["link_ns"])
        lat_ms = _median_ms(latency)
        if lat_ms and link_ms >= LINK_SHARE * lat_ms:
            mb = float(np.median(streamed)) / 1e6
            out.append(
                Finding(
                    "streaming",
                    f"{mb:.1f} MB of parameters streamed per inference: the link bounds "
                    f"{link_ms:.1f} ms of each",
                    round(mb, 3),
                    "MB",
                    link_ms,
                    link_ms * n,
                )
            )
    if n and clock_mhz is not None and clock_mhz < CLOCKS["max"]:
        g = _gain(infs, "max_clock_latency_ns")
        saved = g[1] if g else 0.0
        name = next((k for k, v in CLOCKS.items() if v == clock_mhz), "slow")
        text = f"{name} clock ({clock_mhz:g} MHz)"
        if g:
            text += f": at max clock ≈ {g[0]:.1f} ms"
        out.append(Finding("clock", text, clock_mhz, "MHz", saved, saved * n))
    caching = r[r["kind"] == KINDS.index(KIND_CACHING)][:1]
    if len(caching) and n >= 2:
        extra = float(latency[0]) / MS - _median_ms(latency[1:])
        if extra > 0:
            out.append(
                Finding(
                    "cache-fill",
                    f"first inference +{extra:.1f} ms: cache fill "
                    f"({int(caching['parameters'][0]) / 1e6:.1f} MB of parameters)",
                    round(extra, 3),
                    "ms",
                    extra,
                    extra,
                )
            )
    refills = refill_costs(requests)
    if refills:
        per = float(np.median([c.ms for c in refills]))
        k = len(refills)
        out.append(
            Finding(
                "cache-refill",
                f"parameter cache refilled {k} times: models alternate; co-compiling saves "
                f"≈ {per:.1f} ms per switch",
                k,
                "refills",
                per,
                sum(c.ms for c in refills),
            )
        )
    if n:
        host_ms = _median_ms(infs["host_gap_ns"])
        lat_ms = _median_ms(latency)
        if lat_ms and host_ms >= HOST_SHARE * lat_ms:
            out.append(
                Finding(
                    "host",
                    f"host gaps: {host_ms:.1f} ms of each inference waiting on the host",
                    round(host_ms, 3),
                    "ms",
                    host_ms,
                    host_ms * n,
                )
            )
    counts = Counter(name for i in trace.interrupts for name in interrupt_names(i.value))
    for name, count in sorted(counts.items()):
        out.append(Finding("interrupt", f"{name} interrupt ×{count}", count, "times", 0.0, 0.0))
    out.sort(key=lambda f: -f.total_ms)
    return out


def interrupts_json(trace: EdgeTpuTrace) -> list[dict]:
    return [
        {"t": i.t_ns / NS, "frame": i.frame, "value": i.value, "names": interrupt_names(i.value)}
        for i in trace.interrupts
    ]
