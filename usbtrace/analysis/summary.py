"""Per-capture (per Edge TPU) summary: the numbers ``usbtrace summarize`` prints and exports."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from usbtrace.analysis.findings import Finding, find, interrupts_json, refill_costs
from usbtrace.analysis.metrics import (
    VERDICT_NA,
    RequestMetrics,
    all_request_metrics,
    apply_verdicts,
    impossible_rates,
    link_peak_out,
    percentile,
)
from usbtrace.analysis.requests import (
    KIND_CACHING,
    KIND_INFERENCE,
    segment_arrays,
    tag_sequences,
    unassigned_chunks,
)
from usbtrace.analysis.timing import runtime_clock_mhz
from usbtrace.edgetpu.decode import DecodedCapture, decode_capture
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
from usbtrace.formats.metadata import CaptureMetadata
from usbtrace.models.catalog import entry_for_path, model_for_capture, resolve
from usbtrace.models.expectations import reconcile_requests
from usbtrace.models.identify import ModelIdentity, identify_model, wire_bytes
from usbtrace.models.inspect import ModelSummary, inspect_model


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
    requests: list[RequestMetrics]
    link_peak_out_Bps: float | None
    integrity: Integrity
    csr: CsrCounts
    metadata: CaptureMetadata | None = None
    firmware: dict | None = None
    other_devices: list[str] = field(default_factory=list)
    reconciliation: dict | None = None
    model_source: str | None = None  # how ``model`` is known: usbtrace.models.identify

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

    runtime_clock_mhz: float | None = None  # scu_ctrl_3 at open
    interrupts: list[dict] = field(default_factory=list)  # 0x83 words, with their names
    findings: list[Finding] = field(default_factory=list)  # costliest first

    @property
    def inferences(self) -> list[RequestMetrics]:
        return [r for r in self.requests if r.kind == KIND_INFERENCE]

    @property
    def cache_fill_bytes(self) -> int:
        first = next((r for r in self.requests if r.kind == KIND_CACHING), None)
        return first.parameters if first else 0

    @property
    def cache_refills(self) -> int:
        return sum(1 for r in self.requests if r.cache_refill)

    def latencies_s(self) -> list[float]:
        return [r.latency_ns / NS for r in self.inferences if r.has_event]

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.inferences]
        return percentile(values, 50)

    @property
    def verdict(self) -> str:
        votes = Counter(r.verdict for r in self.inferences)
        return votes.most_common(1)[0][0] if votes else VERDICT_NA

    def summary_json(self) -> dict:
        lat = self.latencies_s()
        overlaps = [r.overlap for r in self.inferences]
        rates = [r.stream_rate_Bps for r in self.inferences if r.stream_rate_Bps]
        host = [r.host_latency_ns / NS for r in self.inferences if r.host_latency_ns is not None]
        out = {
            "inferences": len(self.inferences),
            "cache_fill_bytes": self.cache_fill_bytes,
            "latency_median_s": percentile(lat, 50),
            "latency_p90_s": percentile(lat, 90),
            "latency_min_s": min(lat) if lat else None,
            "latency_max_s": max(lat) if lat else None,
            "first_inference_latency_s": lat[0] if lat else None,
            "steady_latency_median_s": percentile(lat[1:], 50),
            "overlap_median": percentile(overlaps, 50),
            "stream_rate_median_Bps": percentile(rates, 50),
            "link_peak_out_Bps": self.link_peak_out_Bps,
            "verdict": self.verdict,
            "verdict_share_median": percentile(
                [r.verdict_share for r in self.inferences if r.verdict_share is not None], 50
            ),
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
        if host:
            out["host_latency_median_s"] = percentile(host, 50)
            overhead = [
                (r.host_latency_ns - r.latency_ns) / NS
                for r in self.inferences
                if r.host_latency_ns is not None
            ]
            out["host_overhead_median_s"] = percentile(overhead, 50)
        if self.reconciliation is not None:
            out["reconciliation"] = self.reconciliation
        return out

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "device": self.device,
            "link_speed": self.link_speed,
            "model": self.model,
            "model_source": self.model_source,
            "requests": [r.to_json() for r in self.requests],
            "summary": self.summary_json(),
        }


def model_name(
    decoded: DecodedCapture, metrics: list[RequestMetrics], option: str | None = None
) -> ModelIdentity:
    """The capture's model: ``--model``, the metadata, a match of its bytes, or a guess.

    A guess (from the file name) is marked as one: see ``usbtrace.models.identify``.
    """
    caching = [(m.instructions, m.parameters) for m in metrics if m.kind == KIND_CACHING]
    inferences = [
        (m.instructions, m.input, m.parameters)
        for m in metrics
        if m.kind == KIND_INFERENCE and m.has_event and not m.problems
    ]
    return identify_model(
        option=option,
        metadata=decoded.metadata.model if decoded.metadata else None,
        seen=wire_bytes(caching, inferences),
        path=decoded.path,
    )


def option_model_name(model: str | Path) -> str:
    """The name ``--model`` gives: a catalog name, or a model file's stem (no ``_edgetpu``)."""
    path = Path(model)
    if path.is_file():
        return entry_for_path(path).name
    return resolve(model).name


def metadata_note(meta: CaptureMetadata) -> str:
    """The one line that says what of the capture's metadata was dropped, and why."""
    return "metadata: dropped " + "; ".join(meta.problems)


def _csr_counts(trace: EdgeTpuTrace) -> CsrCounts:
    submits = trace.table["t_submit_ns"]
    submits = submits[submits > 0]
    first_out = int(submits.min()) if len(submits) else None
    ev_t = trace.event_table["t_ns"]
    last_event = int(ev_t.max()) if len(ev_t) else None
    opening = [c for c in trace.csr if first_out is None or c.t_ns < first_out]
    closing = [c for c in trace.csr if last_event is not None and c.t_ns > last_event]
    return CsrCounts(
        total=len(trace.csr),
        at_open=len(opening),
        at_close=len(closing),
        open_start_ns=opening[0].t_ns if opening else None,
        open_duration_ns=(opening[-1].t_ns - opening[0].t_ns) if opening else None,
    )


def _align_host(metrics: list[RequestMetrics], meta: CaptureMetadata | None) -> None:
    """Give each inference the host invoke that contains its start on the wire.

    One binary search per invoke (the runner records one invoke per inference, so a long
    capture has as many invokes as inferences); an inference takes at most one invoke.
    """
    if not meta or not meta.invokes:
        return
    infs = sorted((m for m in metrics if m.kind == KIND_INFERENCE), key=lambda m: m.t_start_ns)
    starts = [m.t_start_ns for m in infs]
    taken = [False] * len(infs)
    for inv in meta.invokes:
        k = bisect_left(starts, inv.start_ns)
        while k < len(infs) and taken[k] and starts[k] <= inv.end_ns:
            k += 1
        if k < len(infs) and not taken[k] and starts[k] <= inv.end_ns:
            taken[k] = True
            infs[k].host_start_ns, infs[k].host_end_ns = inv.start_ns, inv.end_ns


def _integrity(
    decoded: DecodedCapture, trace: EdgeTpuTrace, metrics: list[RequestMetrics], chunks_left: int
) -> Integrity:
    problems = list(decoded.problems_for(trace))
    problems += trace.problems
    problems += impossible_rates(trace)
    for m in metrics:
        problems += [f"request {m.index}: {p}" for p in m.problems]
    if chunks_left:
        problems.append(f"{chunks_left} output chunk(s) outside any request")
    if decoded.metadata is not None and decoded.metadata.problems:
        problems.append(metadata_note(decoded.metadata))
    return Integrity(problems)


def _reconcile(
    trace: EdgeTpuTrace,
    seg: object,
    metrics: list[RequestMetrics],
    model: ModelSummary,
    integrity: Integrity,
) -> dict:
    """Compare every request's bytes (and bulk-OUT order) with the compiled model's."""
    sequences = dict(enumerate(tag_sequences(trace, seg)))
    result = reconcile_requests(model, metrics, sequences)
    integrity.problems.extend(f"model: {p}" for p in result.problems())
    return result.to_json()


def summarize_trace(
    decoded: DecodedCapture,
    trace: EdgeTpuTrace,
    model: ModelSummary | None = None,
    model_option: str | None = None,
) -> CaptureSummary:
    seg = segment_arrays(trace)
    metrics = all_request_metrics(trace, seg)
    peak = link_peak_out(trace, metrics)
    apply_verdicts(trace, seg, metrics)
    _align_host(metrics, decoded.metadata)
    integrity = _integrity(decoded, trace, metrics, unassigned_chunks(seg))
    reconciliation = None
    if model is not None and model.compiled:
        reconciliation = _reconcile(trace, seg, metrics, model, integrity)
    fw = trace.firmware
    identity = model_name(decoded, metrics, model_option)
    clock = runtime_clock_mhz(trace)
    return CaptureSummary(
        file=decoded.path,
        device=trace.name,
        link_speed=trace.link_speed,
        model=identity.name,
        model_source=identity.source,
        requests=metrics,
        link_peak_out_Bps=peak,
        integrity=integrity,
        reconciliation=reconciliation,
        csr=_csr_counts(trace),
        metadata=decoded.metadata,
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
        runtime_clock_mhz=clock,
        interrupts=interrupts_json(trace),
        findings=find(trace, metrics, clock),
    )


def summarize_file(
    path: str | Path, device: str | None = None, model: str | Path | None = None
) -> list[CaptureSummary]:
    """One summary per Edge TPU in the file; a broken tail is reported, the prefix still used.

    ``model`` (a compiled file or catalog name) is reconciled with every request; without it,
    the model named by the capture's metadata is used when it is at hand.
    """
    decoded = decode_capture(path, device, partial_ok=True)
    meta = decoded.metadata
    model_path = model_for_capture(
        model, meta.model_path if meta else None, meta.model if meta else None
    )
    summary = inspect_model(model_path) if model_path else None
    option = option_model_name(model) if model is not None else None
    return [summarize_trace(decoded, t, summary, option) for t in decoded.devices]
