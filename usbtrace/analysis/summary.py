"""Per-capture (per Edge TPU) summary: the numbers ``usbtrace summarize`` prints and exports.

While a capture streams, each device's finished requests go into a ``RequestLog`` (a compact
row each, and capture-wide scalars), with cache refills marked and, when the host invokes are
known before the capture streams, host timing taken (``hosttiming.py``); ``summarize_trace``
adds what is left at the end and computes what needs the whole capture (the link peak,
medians, findings; host timing when the invokes came only at the end). The verdicts are
measured with each window's requests (``metrics._timing``). The model is not the summary's:
the pipeline's model stage names it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from usbtrace.analysis.findings import Finding, find, interrupts_json, refill_costs
from usbtrace.analysis.hosttiming import InvokeMatcher
from usbtrace.analysis.metrics import (
    REQUEST,
    VERDICT_NA,
    VERDICTS,
    RequestTable,
    TransferPeak,
    all_request_metrics,
    link_peak_out,
    percentile,
)
from usbtrace.analysis.requests import (
    KIND_CACHING,
    KIND_INFERENCE,
    KINDS,
    Segmentation,
    segment_arrays,
)
from usbtrace.analysis.rowstore import RowStore, TransferSequences, select
from usbtrace.analysis.timing import runtime_clock_mhz
from usbtrace.edgetpu.constants import Tag
from usbtrace.edgetpu.decode import DecodedCapture
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
from usbtrace.formats.metadata import CaptureMetadata
from usbtrace.models.identity import ModelIdentity


@dataclass
class Integrity:
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "problems": list(self.problems)}


@dataclass
class CsrCounts:
    total: int
    at_open: int  # before the first bulk-OUT transfer
    at_close: int  # after the last completion event
    open_start_ns: int | None
    open_duration_ns: int | None


@dataclass
class CaptureSummary:
    file: str
    device: str
    link_speed: str | None
    model: str | None
    requests: RequestTable
    link_peak_out_Bps: float | None
    integrity: Integrity
    csr: CsrCounts
    metadata: CaptureMetadata | None = None  # the capture's, whichever device it describes
    # whether ``metadata`` describes this Edge TPU (``metadata_describes``): with several in a
    # capture, the model, invokes and model figures are those of the one the runner used
    ran_here: bool = True
    firmware: dict | None = None
    other_devices: list[str] = field(default_factory=list)
    reconciliation: dict | None = None
    model_source: str | None = None  # how ``model`` is known: usbtrace.models.identify
    # per request, its bulk-OUT transfers' (tag, length) order, for reconciling with a model
    transfer_sequences: TransferSequences = field(default_factory=TransferSequences)
    # the capture's first Edge TPU to finish a request, when its identity cannot change (an
    # app-mode descriptor or --device): ``summarize --json`` writes its requests as they finish
    lead: bool = False

    @property
    def run_metadata(self) -> CaptureMetadata | None:
        """The metadata of the run on this Edge TPU (model, invokes, model figures), or None
        when the capture's metadata describes another device."""
        return self.metadata if self.ran_here else None

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model, self.model_source)

    @property
    def known_model(self) -> str | None:
        """``model`` unless it is only guessed from the file name: what ops and sizes may use."""
        return self.identity.known

    @property
    def model_label(self) -> str | None:
        """``model`` as tables show it: ``dense_900?`` when guessed from the file name."""
        return self.identity.label

    def wire_signature(self) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
        """What the capture moved, to match with compiled models: (instructions, parameters) of
        the first parameter-caching request, and the most common (instructions, input,
        parameters) of the inferences that completed without a problem (a tie goes to the first
        seen). Empty lists where there is none."""
        r = self.requests.rows
        caching = r[r["kind"] == KINDS.index(KIND_CACHING)][:1]
        clean = np.ones(len(r), dtype=bool)
        clean[[i for i in self.requests.problems if self.requests.problems[i]]] = False
        inf = select(
            r,
            (r["kind"] == KINDS.index(KIND_INFERENCE)) & r["has_event"] & clean,
            ("instructions", "input", "parameters"),
        )
        common: list[tuple[int, int, int]] = []
        if len(inf):
            # sorted as records: np.unique(axis=0) on a stacked copy took ~40 MB on 423k rows
            uniq, first, counts = np.unique(inf, return_index=True, return_counts=True)
            tied = np.flatnonzero(counts == counts.max())
            best = tied[np.argmin(first[tied])]
            common = [tuple(int(x) for x in uniq[best])]  # type: ignore[list-item]
        return [(int(c["instructions"]), int(c["parameters"])) for c in caching], common

    runtime_clock_mhz: float | None = None  # scu_ctrl_3 at open
    interrupts: list[dict] = field(default_factory=list)  # 0x83 words, with their names
    findings: list[Finding] = field(default_factory=list)  # costliest first

    @property
    def inferences(self) -> RequestTable:
        return self.requests.of_kind(KIND_INFERENCE)

    @cached_property
    def _is_inference(self) -> np.ndarray:
        return self.requests.rows["kind"] == KINDS.index(KIND_INFERENCE)

    def _inference_column(self, name: str) -> np.ndarray:
        """One column of the inferences (a copy of that column only, not of whole rows)."""
        return self.requests.rows[name][self._is_inference]

    @property
    def cache_fill_bytes(self) -> int:
        r = self.requests.rows
        first = np.flatnonzero(r["kind"] == KINDS.index(KIND_CACHING))[:1]
        return int(r["parameters"][first[0]]) if len(first) else 0

    @property
    def cache_refills(self) -> int:
        return int(np.count_nonzero(self.requests.rows["cache_refill"]))

    def _latencies_ns(self) -> np.ndarray:
        r = self.requests.rows
        m = self._is_inference & r["has_event"]
        return r["t_end_ns"][m] - r["t_start_ns"][m]

    def latencies_s(self) -> list[float]:
        return (self._latencies_ns() / NS).tolist()

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.inferences]
        return percentile(values, 50)

    @property
    def verdict(self) -> str:
        """The inferences' most common verdict (a tie goes to the one seen first)."""
        codes = self._inference_column("verdict")
        if not len(codes):
            return VERDICT_NA
        counts = np.bincount(codes, minlength=len(VERDICTS))
        tied = np.flatnonzero(counts == counts.max())
        first_seen = [int(np.argmax(codes == c)) for c in tied]
        return VERDICTS[int(tied[int(np.argmin(first_seen))])]

    def sequences(self) -> dict[int, list[tuple[int, int]]]:
        """Per request index, its bulk-OUT (tag, length) order."""
        return self.transfer_sequences.sequences()

    def summary_json(self) -> dict:
        lat = self._latencies_ns() / NS
        overlaps = self._inference_column("overlap")
        rates = self._inference_column("stream_rate_Bps")
        rates = rates[(rates == rates) & (rates != 0)]
        shares = self._inference_column("verdict_share")
        r = self.requests.rows
        m = self._is_inference & r["has_host"]
        host_ns = r["host_end_ns"][m] - r["host_start_ns"][m]
        host = host_ns / NS
        out = {
            "inferences": int(np.count_nonzero(self._is_inference)),
            "cache_fill_bytes": self.cache_fill_bytes,
            "latency_median_s": percentile(lat, 50),
            "latency_p90_s": percentile(lat, 90),
            "latency_min_s": float(lat.min()) if len(lat) else None,
            "latency_max_s": float(lat.max()) if len(lat) else None,
            "first_inference_latency_s": float(lat[0]) if len(lat) else None,
            "steady_latency_median_s": percentile(lat[1:], 50),
            "overlap_median": percentile(overlaps, 50),
            "stream_rate_median_Bps": percentile(rates, 50),
            "link_peak_out_Bps": self.link_peak_out_Bps,
            "verdict": self.verdict,
            "verdict_share_median": percentile(shares[shares == shares], 50),
            "runtime_clock_mhz": self.runtime_clock_mhz,
            "cache_refills": self.cache_refills,
            "cache_refill_costs": [c.to_json() for c in refill_costs(self.requests)],
            "interrupts": self.interrupts,
            "findings": [f.to_json() for f in self.findings],
            "csr_accesses": {
                "total": self.csr.total,
                "open": self.csr.at_open,
                "close": self.csr.at_close,
                "open_duration_s": None
                if self.csr.open_duration_ns is None
                else self.csr.open_duration_ns / NS,
            },
            "firmware_download": self.firmware,
            "other_devices": self.other_devices,
            "integrity": self.integrity.to_json(),
        }
        if len(host):
            out["host_latency_median_s"] = percentile(host, 50)
            device_ns = r["t_end_ns"][m] - r["t_start_ns"][m]
            out["host_overhead_median_s"] = percentile((host_ns - device_ns) / NS, 50)
        if self.reconciliation is not None:
            out["reconciliation"] = self.reconciliation
        return out

    def head_json(self) -> dict:
        """The capture's keys that come before its requests."""
        return {
            "file": self.file,
            "device": self.device,
            "link_speed": self.link_speed,
            "model": self.model,
            "model_source": self.model_source,
        }

    def to_json(self) -> dict:
        return {
            **self.head_json(),
            "requests": list(self.requests.to_json_rows()),
            "summary": self.summary_json(),
        }


@dataclass
class RequestLog:
    """What one device's finished requests leave behind while the capture streams on: a
    compact row per request and a few capture-wide scalars (``add`` per window)."""

    rows: RowStore = field(default_factory=lambda: RowStore(REQUEST))
    problems: dict[int, list[str]] = field(default_factory=dict)  # by global request index
    tags: TransferSequences = field(default_factory=TransferSequences)
    count: int = 0  # requests finished so far: the next window's first global index
    transfer_peak: TransferPeak = field(default_factory=TransferPeak)
    first_out_ns: int | None = None  # first bulk-OUT submit
    last_event_ns: int | None = None
    unassigned_chunks: int = 0
    transfer_problems: list[tuple[int, str]] = field(default_factory=list)  # (index, text)
    # the host invokes, when known before the capture streams: inferences take theirs as they
    # finish (else ``summarize_trace`` matches them at the end, the same way)
    host: InvokeMatcher | None = None
    cached: bool = False  # a parameter-caching request has finished: any later one is a refill

    def add(
        self, trace: EdgeTpuTrace, seg: Segmentation, table: RequestTable, k: int
    ) -> RequestTable:
        """Keep the window's first ``k`` requests (final), their transfers' share of the
        capture-wide values, and the output chunks no request can ever take. Returns those
        requests, final in every column (what ``summarize --json`` writes of them)."""
        offset = self.count
        rows = table.rows[:k].copy()
        rows["index"] += offset
        problems = {r + offset: p for r, p in table.problems.items() if r < k}
        self.problems.update(problems)
        caching = np.flatnonzero(rows["kind"] == KINDS.index(KIND_CACHING))
        rows["cache_refill"] = False
        rows["cache_refill"][caching[0 if self.cached else 1 :]] = True
        self.cached = self.cached or bool(len(caching))
        if self.host is not None:
            self.host.apply(rows)
        self.rows.append(rows)
        self.count += k
        tab = trace.table
        done = seg.transfer_request < k
        mine = tab[done]
        self.transfer_peak.add(mine, trace.link_speed)
        sub = mine["t_submit_ns"][mine["t_submit_ns"] > 0]
        if len(sub):
            first = int(sub.min())
            self.first_out_ns = (
                first if self.first_out_ns is None else min(self.first_out_ns, first)
            )
        ev_t = trace.event_table["t_ns"][done_events(trace, seg, k)]
        if len(ev_t):
            last = int(ev_t.max())
            self.last_event_ns = (
                last if self.last_event_ns is None else max(self.last_event_ns, last)
            )
        self.unassigned_chunks += int(np.count_nonzero(seg.chunk_request < 0))
        self.transfer_problems += trace.numbered_problems(done)
        self.tags.add(seg.transfer_request[done], tab["tag"][done], tab["length"][done], k)
        return RequestTable(rows, problems)

    def table(self) -> RequestTable:
        """Every row kept, in one table; the log's rows are emptied (see ``RowStore.take``)."""
        problems, self.problems = self.problems, {}
        return RequestTable(self.rows.take(), problems)

    def released(
        self, trace: EdgeTpuTrace, seg: Segmentation, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the window's first ``k`` requests let go of: transfers (global indices), events
        and output chunks (masks). Events that close no request and chunks no request can take
        are let go too: their part is in the scalars already."""
        transfers = _global(trace)[seg.transfer_request < k]
        events = done_events(trace, seg, k)
        chunks = (seg.chunk_request < k) | (seg.chunk_request < 0)
        return transfers, events, chunks


def _global(trace: EdgeTpuTrace) -> np.ndarray:
    if trace.transfer_index is not None:
        return trace.transfer_index
    return np.arange(len(trace.table), dtype=np.int64)


def done_events(trace: EdgeTpuTrace, seg: Segmentation, k: int) -> np.ndarray:
    """Mask over the event table: the closing events of the first ``k`` requests, and every
    event that closes no request."""
    ev = trace.event_table
    closing = np.flatnonzero(ev["tag"] == Tag.INTERRUPT0)
    order = closing[np.argsort(ev["t_ns"][closing], kind="stable")]
    out = ev["tag"] != Tag.INTERRUPT0
    out[order[:k]] = True
    return out


def metadata_note(meta: CaptureMetadata) -> str:
    """The one line that says what of the capture's metadata was dropped, and why."""
    return "metadata: dropped " + "; ".join(meta.problems)


def _csr_counts(trace: EdgeTpuTrace, log: RequestLog) -> CsrCounts:
    first_out, last_event = log.first_out_ns, log.last_event_ns
    opening = [c for c in trace.csr if first_out is None or c.t_ns < first_out]
    closing = [c for c in trace.csr if last_event is not None and c.t_ns > last_event]
    # by time, not by capture order: a capture's timestamps may go backwards (a clock step, a
    # damaged record), and last minus first then gave a negative duration
    times = [c.t_ns for c in opening]
    return CsrCounts(
        total=len(trace.csr),
        at_open=len(opening),
        at_close=len(closing),
        open_start_ns=min(times) if times else None,
        open_duration_ns=(max(times) - min(times)) if times else None,
    )


def _integrity(
    decoded: DecodedCapture, trace: EdgeTpuTrace, requests: RequestTable, log: RequestLog
) -> Integrity:
    problems = list(decoded.problems_for(trace))
    problems += [text for _, text in sorted(log.transfer_problems)]
    if trace.unframed_urbs:
        problems.append(f"{trace.unframed_urbs} bulk-OUT URB(s) outside any header's transfer")
    problems += trace.errors
    problems += log.transfer_peak.problems(trace.link_speed)
    for index, found in sorted(requests.problems.items()):
        problems += [f"request {index}: {p}" for p in found]
    if log.unassigned_chunks:
        problems.append(f"{log.unassigned_chunks} output chunk(s) outside any request")
    if decoded.metadata is not None and decoded.metadata.problems:
        problems.append(metadata_note(decoded.metadata))
    return Integrity(problems)


def metadata_describes(meta: CaptureMetadata, trace: EdgeTpuTrace) -> bool:
    """Whether the capture's metadata describes this Edge TPU: it names it, or names the boot
    loader whose firmware download brought it up (the runner found the device before
    libedgetpu loaded its firmware, and it came back at another address)."""
    fw = trace.firmware
    return meta.names_device(trace.bus, trace.address) or (
        fw is not None and meta.names_device(fw.bus, fw.address)
    )


def summarize_trace(
    decoded: DecodedCapture,
    trace: EdgeTpuTrace,
    log: RequestLog | None = None,
) -> CaptureSummary:
    """The summary of one Edge TPU: the requests the log kept while streaming, then the rest
    of the trace (everything is final at the end of the capture)."""
    log = log or RequestLog()
    aligned = log.host is not None  # host invokes taken as the requests finished
    seg = segment_arrays(trace)
    log.add(trace, seg, all_request_metrics(trace, seg), seg.n_requests)
    requests = log.table()  # empties the log's rows
    peak = link_peak_out(log.transfer_peak.peak, requests)
    meta = decoded.metadata
    ran_here = meta is None or metadata_describes(meta, trace)
    if not aligned and meta is not None and ran_here:
        InvokeMatcher(meta.invokes).apply(requests.rows)
    fw = trace.firmware
    clock = runtime_clock_mhz(trace)
    return CaptureSummary(
        file=decoded.path,
        device=trace.name,
        link_speed=trace.link_speed,
        model=None,  # the model stage's (usbtrace.models.identify.identify_summary)
        requests=requests,
        link_peak_out_Bps=peak,
        integrity=_integrity(decoded, trace, requests, log),
        csr=_csr_counts(trace, log),
        metadata=decoded.metadata,
        ran_here=ran_here,
        firmware=None
        if fw is None
        else {
            "device": f"{fw.bus}.{fw.address}",
            "blocks": fw.blocks,
            "bytes": fw.nbytes,
            "uploaded_bytes": fw.uploaded,
            "duration_s": (fw.t_end_ns - fw.t_start_ns) / NS,
            "ok": fw.status_ok,
        },
        other_devices=[f"{b}.{a}" for b, a, _ in decoded.other_devices],
        transfer_sequences=_close_tags(log),
        runtime_clock_mhz=clock,
        interrupts=interrupts_json(trace),
        findings=find(trace, requests, clock),
    )


def _close_tags(log: RequestLog) -> TransferSequences:
    log.tags.close()
    return log.tags
