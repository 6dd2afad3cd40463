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
  It is computed with the requests' metrics, from the URBs at hand: the whole capture when it is
  shorter than one pipeline window, else the window's (its link model fitted on them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import overload

import numpy as np

from usbtrace.analysis.predict import CLOCKS, LINKS, Scenario, link_model, replay
from usbtrace.analysis.requests import (
    KIND_INFERENCE,
    KINDS,
    RequestKind,
    Segmentation,
)
from usbtrace.analysis.timing import (
    VERDICT_DEVICE,
    VERDICT_HOST,
    VERDICT_LINK,
    VERDICT_NA,
    out_schedule,
    request_timing,
    runtime_clock_mhz,
)
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.framing import ROLE_PAYLOAD
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace, tag_name
from usbtrace.intervals import segmented_clipped_length, segmented_union_length
from usbtrace.usb.link import link_ceiling_Bps

PEAK_TRANSFER_MIN_BYTES = 256 * 1024
# by code in tables: ``timing.REQUEST_TIMING["bound"] + 1`` (its BOUND_NA, -1, is 0 here)
VERDICTS = (VERDICT_NA, VERDICT_LINK, VERDICT_DEVICE, VERDICT_HOST)


@dataclass(slots=True)
class RequestMetrics:
    index: int
    kind: RequestKind
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


# The compact form of requests: one row each (about 100 bytes), what a capture keeps of every
# finished request. ``RequestMetrics`` objects are views made on demand.
REQUEST = np.dtype(
    [
        ("index", "<i8"),
        ("kind", "i1"),  # position in KINDS
        ("t_start_ns", "<i8"),
        ("t_end_ns", "<i8"),
        ("instructions", "<i8"),
        ("input", "<i8"),
        ("parameters", "<i8"),
        ("output", "<i8"),
        ("overlap", "<f8"),
        ("stream_busy_ns", "<i8"),
        ("stream_rate_Bps", "<f8"),  # NaN: no rate
        ("exec_window_ns", "<i8"),
        ("has_event", "?"),
        ("verdict", "i1"),  # position in VERDICTS
        ("cache_refill", "?"),
        ("has_host", "?"),
        ("host_start_ns", "<i8"),
        ("host_end_ns", "<i8"),
        # who waited for whom (timing.py), per window: see ``_timing``
        ("link_busy_ns", "<i8"),
        ("link_ns", "<i8"),
        ("device_wait_ns", "<i8"),
        ("host_gap_ns", "<i8"),
        ("verdict_share", "<f8"),  # NaN: no verdict
        # replayed latency on USB 3 / at the max clock (findings); -1: not replayed
        ("usb3_latency_ns", "<i8"),
        ("max_clock_latency_ns", "<i8"),
    ]
)


class RequestTable(Sequence[RequestMetrics]):
    """Requests as ``REQUEST`` rows, read as a sequence of ``RequestMetrics``.

    ``problems`` maps a request's ``index`` to its problems (few requests have any).
    """

    def __init__(self, rows: np.ndarray, problems: dict[int, list[str]] | None = None) -> None:
        self.rows = rows
        self.problems = problems if problems is not None else {}

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> RequestMetrics: ...

    @overload
    def __getitem__(self, i: slice) -> RequestTable: ...

    def __getitem__(self, i: int | slice) -> RequestMetrics | RequestTable:
        if isinstance(i, slice):
            return RequestTable(self.rows[i], self.problems)
        return next(self._objects(self.rows[i : i + 1 or None]))

    def __iter__(self) -> Iterator[RequestMetrics]:
        for lo in range(0, len(self.rows), 4096):  # objects a block at a time
            yield from self._objects(self.rows[lo : lo + 4096])

    def select(self, which: np.ndarray) -> RequestTable:
        return RequestTable(self.rows[which], self.problems)

    def of_kind(self, kind: RequestKind) -> RequestTable:
        return self.select(self.rows["kind"] == KINDS.index(kind))

    def _objects(self, rows: np.ndarray) -> Iterator[RequestMetrics]:
        cols = [rows[n].tolist() for n in REQUEST.names or ()]
        probs = self.problems
        for (
            i,
            k,
            ts,
            te,
            ins,
            inp,
            par,
            out,
            ov,
            busy,
            rate,
            win,
            ev,
            v,
            refill,
            host,
            hs,
            he,
            lbusy,
            lns,
            dev,
            hgap,
            share,
            *_,
        ) in zip(*cols):
            yield RequestMetrics(
                i, KINDS[k], ts, te, ins, inp, par, out, ov, busy,
                None if rate != rate else rate, win, ev, VERDICTS[v], refill,
                list(probs.get(i, ())), hs if host else None, he if host else None,
                lbusy, lns, dev, hgap, None if share != share else share,
            )  # fmt: skip

    @staticmethod
    def concat(tables: list[RequestTable]) -> RequestTable:
        """One table of ``tables``, which is emptied: each piece is let go once copied, so
        the peak is the result plus one piece, not twice the result."""
        pieces = [t.rows for t in tables]
        problems: dict[int, list[str]] = {}
        for t in tables:
            problems.update(t.problems)
        tables.clear()
        return RequestTable(take_all(pieces, REQUEST), problems)

    def to_json_rows(self) -> Iterator[dict]:
        """Each request's JSON object (README, "summarize --json"), without objects in between;
        its keys from ``REQUEST_JSON_KEYS``, as ``report.jsonout`` encodes them."""
        names = [key for key, _ in REQUEST_JSON_KEYS]
        for lo in range(0, len(self.rows), 4096):
            c = self.json_columns(lo, lo + 4096)
            # a column per key, a nested object's made of its members' columns
            cols = [
                getattr(c, key)
                if not members
                else [dict(zip(members, v)) for v in zip(*(getattr(c, m) for m in members))]
                for key, members in REQUEST_JSON_KEYS
            ]
            for values, extra in zip(zip(*cols), c.extra):
                doc = dict(zip(names, values))
                if extra is not None:
                    doc.update(extra)
                yield doc

    def json_columns(self, lo: int = 0, hi: int | None = None) -> RequestJsonColumns:
        """The JSON values of requests ``lo:hi``, a column per key (what ``to_json_rows``
        puts in each object; ``report.jsonout`` encodes the columns without objects)."""
        r = self.rows[lo:hi]
        ts, te = r["t_start_ns"].tolist(), r["t_end_ns"].tolist()
        lat = [e - s for s, e in zip(ts, te)]
        kinds = [k.value for k in KINDS]

        def seconds(name: str) -> list[float]:
            return [x / NS for x in r[name].tolist()]

        def or_none(name: str) -> list[float | None]:
            return [None if x != x else x for x in r[name].tolist()]  # NaN: not measured

        # the keys only some requests have, in their order
        extra: list[dict | None] = [None] * len(r)
        optional = r["cache_refill"] | r["has_host"]
        for k in np.flatnonzero(optional).tolist():
            row = r[k]
            more: dict = {}
            if row["cache_refill"]:
                more["cache_refill"] = True
            if row["has_host"]:
                host = int(row["host_end_ns"]) - int(row["host_start_ns"])
                more["host_latency_s"] = host / NS
                more["host_overhead_s"] = (host - lat[k]) / NS
            extra[k] = more
        if self.problems:
            # the few requests with problems, found in bulk (not a lookup per request)
            known = np.fromiter(self.problems, dtype=np.int64, count=len(self.problems))
            for k in np.flatnonzero(np.isin(r["index"], known)).tolist():
                p = self.problems[int(r["index"][k])]
                if p:
                    extra[k] = {**(extra[k] or {}), "problems": list(p)}
        return RequestJsonColumns(
            index=r["index"].tolist(),
            kind=[kinds[k] for k in r["kind"].tolist()],
            t_start=[x / NS for x in ts],
            t_end=[x / NS for x in te],
            latency_s=[x / NS for x in lat],
            instructions=r["instructions"].tolist(),
            input=r["input"].tolist(),
            parameters=r["parameters"].tolist(),
            output=r["output"].tolist(),
            overlap=r["overlap"].tolist(),
            stream_busy_s=seconds("stream_busy_ns"),
            stream_rate_Bps=or_none("stream_rate_Bps"),
            verdict=[VERDICTS[v] for v in r["verdict"].tolist()],
            verdict_share=or_none("verdict_share"),
            link_busy_s=seconds("link_busy_ns"),
            device_wait_s=seconds("device_wait_ns"),
            host_gap_s=seconds("host_gap_ns"),
            extra=extra,
        )


@dataclass
class RequestJsonColumns:
    """Requests' JSON values (README, "summarize --json") as columns, in the objects' key
    order: each field is a key (``request_json_keys``), or nested under one
    (``REQUEST_JSON_NESTED``). ``extra``: per request, the keys only some have
    (``cache_refill``, ``host_latency_s``, ``host_overhead_s``, ``problems``), or None."""

    index: list[int]
    kind: list[str]
    t_start: list[float]
    t_end: list[float]
    latency_s: list[float]
    instructions: list[int]
    input: list[int]
    parameters: list[int]
    output: list[int]
    overlap: list[float]
    stream_busy_s: list[float]
    stream_rate_Bps: list[float | None]
    verdict: list[str]
    verdict_share: list[float | None]
    link_busy_s: list[float]
    device_wait_s: list[float]
    host_gap_s: list[float]
    extra: list[dict | None]


# The members of a nested object, by its key: the one place the nesting is declared. The
# other fields of ``RequestJsonColumns`` (but ``extra``) are keys of their own.
REQUEST_JSON_NESTED = {"bytes": ("instructions", "input", "parameters", "output")}


def request_json_keys(columns: type) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A request object's keys in order, each with the columns nested under it (none for a
    key of its own), from the fields of ``columns`` (``RequestJsonColumns``): both encodings
    (``to_json_rows``, ``report.jsonout``) take their keys from here, so a new field is a
    new key in both, where it is declared. A nested object stands where its first member is."""
    parent = {m: key for key, members in REQUEST_JSON_NESTED.items() for m in members}
    keys: list[tuple[str, tuple[str, ...]]] = []
    for f in fields(columns):
        if f.name == "extra":  # the keys only some requests have, after the others
            continue
        key = parent.get(f.name)
        if key is None:
            keys.append((f.name, ()))
        elif key not in (k for k, _ in keys):
            keys.append((key, REQUEST_JSON_NESTED[key]))
    return tuple(keys)


REQUEST_JSON_KEYS = request_json_keys(RequestJsonColumns)


def take_all(pieces: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """``np.concatenate(pieces)``, emptying ``pieces`` as it copies them."""
    out = np.empty(sum(len(p) for p in pieces), dtype=dtype)
    at = 0
    pieces.reverse()
    while pieces:
        p = pieces.pop()
        out[at : at + len(p)] = p
        at += len(p)
    return out


def all_request_metrics(trace: EdgeTpuTrace, seg: Segmentation) -> RequestTable:
    """Metrics of every request of a trace (or window), computed on arrays (see the module
    docstring). Indices are the window's. Verdicts come from the same URBs (a long capture's
    link model is fitted per window, see ``_timing``); cache refills and host timing are
    set as the rows are kept (``summary.RequestLog``)."""
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
    rows = np.zeros(n, dtype=REQUEST)
    rows["index"] = np.arange(n)
    rows["kind"] = seg.kind_codes()
    rows["t_start_ns"], rows["t_end_ns"] = t_start, t_end
    by_tag = seg.bytes_by_tag
    rows["instructions"] = by_tag[:, Tag.INSTRUCTIONS]
    rows["input"] = by_tag[:, Tag.INPUT]
    rows["parameters"] = streamed
    rows["output"] = out_bytes
    rows["overlap"] = overlap
    rows["stream_busy_ns"] = busy
    rows["stream_rate_Bps"] = rate
    rows["exec_window_ns"] = window
    rows["has_event"] = np.arange(n) < n_events
    rows["verdict_share"] = np.nan
    rows["usb3_latency_ns"] = -1
    rows["max_clock_latency_ns"] = -1
    if n:
        _timing(trace, seg, rows)
    return RequestTable(rows, problems)


def _timing(trace: EdgeTpuTrace, seg: Segmentation, rows: np.ndarray) -> None:
    """Who bounds each request (``timing.request_timing``), with the link model fitted on these
    URBs only (a window's, in a long capture), and the latencies the findings compare with:
    on USB 3 (a High-Speed capture) and at the max clock (a slower one), replayed on these
    URBs (``predict.replay``)."""
    sched = out_schedule(trace, seg.transfer_request, seg.events["t_ns"])
    link = link_model(trace.link_speed, sched)
    output = rows["output"]
    timing = request_timing(
        sched.start_ns,
        sched.complete_ns,
        np.round(link.out_ns(sched.length)).astype(np.int64),
        sched.request,
        rows["t_start_ns"],
        rows["t_end_ns"],
        np.round(link.output_ns(output)).astype(np.int64),
        rows["has_event"],
    )
    for name in ("link_busy_ns", "link_ns", "device_wait_ns", "host_gap_ns"):
        rows[name] = timing[name]
    rows["verdict"] = timing["bound"].astype(np.int8) + 1
    measured = timing["bound"] >= 0
    rows["verdict_share"] = np.where(measured, timing["share"], np.nan)

    clock = runtime_clock_mhz(trace)
    scenarios = []
    if trace.link_speed == "high":
        scenarios.append(("usb3_latency_ns", Scenario("super", clock or CLOCKS["max"])))
    if clock is not None and clock < CLOCKS["max"]:
        speed = trace.link_speed if trace.link_speed in LINKS else "super"
        scenarios.append(("max_clock_latency_ns", Scenario(speed or "super", CLOCKS["max"])))
    inference = rows["kind"] == KINDS.index(KIND_INFERENCE)
    for column, scenario in scenarios:
        rep = replay(
            sched,
            rows["t_start_ns"],
            rows["t_end_ns"],
            output,
            rows["has_event"],
            inference,
            link,
            clock or CLOCKS["max"],
            scenario,
        )
        rows[column] = rep.latency_ns


def _over_ceiling(what: str, rate: float, link_speed: str | None) -> str:
    link = f"{link_speed}-speed link" if link_speed else "link (speed unknown)"
    return (
        f"{what} {rate / 1e6:,.1f} MB/s is above the {link}'s ceiling of "
        f"{link_ceiling_Bps(link_speed) / 1e6:,.1f} MB/s: its timestamps cannot be right, "
        "not reported"
    )


@dataclass
class TransferPeak:
    """The big complete bulk-OUT transfers' rates, as far as the capture has been read: the
    highest possible one, and those above the link's ceiling (left out, and named)."""

    peak: float | None = None
    over: int = 0
    over_max: float = 0.0

    def add(self, table: np.ndarray, link_speed: str | None) -> None:
        ok = (table["length"] >= PEAK_TRANSFER_MIN_BYTES) & (table["busy_ns"] > 0)
        ok &= table["complete"]
        if not ok.any():
            return
        rates = table["length"][ok] * NS / table["busy_ns"][ok]
        high = rates > link_ceiling_Bps(link_speed)
        if high.any():
            self.over += int(np.count_nonzero(high))
            self.over_max = max(self.over_max, float(rates[high].max()))
        if not high.all():
            best = float(rates[~high].max())
            self.peak = best if self.peak is None else max(self.peak, best)

    def problems(self, link_speed: str | None) -> list[str]:
        """Integrity problems: bulk-OUT transfers faster than the link can carry."""
        if not self.over:
            return []
        what = f"{self.over} bulk-OUT transfer rate(s), up to"
        return [_over_ceiling(what, self.over_max, link_speed)]


def link_peak_out(transfer_peak: float | None, requests: RequestTable) -> float | None:
    """link_peak_out: the transfers' peak (``transfer_peak_out``, over the whole capture) or
    an inference's stream rate, whichever is higher."""
    r = requests.rows
    rate = r["stream_rate_Bps"][(r["kind"] == KINDS.index(KIND_INFERENCE))]
    rate = rate[(rate == rate) & (rate > 0)]
    rates = [transfer_peak] if transfer_peak is not None else []
    if len(rate):
        rates.append(float(rate.max()))
    return max(rates) if rates else None


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    return float(np.percentile(values, q)) if len(values) else None
