"""The one pipeline, from a capture to summaries, read top to bottom.

    source    formats/capture.py     a file, a FIFO or stdin -> RecordBatch (numpy records)
    urbs      usb/pairing.py         submit/completion -> Paired (in the reader thread:
                                     usb/devices.UrbStage)
    devices   usb/devices.py         per device: descriptors, frames, standard requests, URB
                                     statistics, its URBs -> DeviceBatch; UsbCapture at the end
    edgetpu   edgetpu/decode.py      CSR, DFU, framing, events, outputs -> EdgeTpuTrace
    requests  analysis/requests.py   the completion rule -> Segmentation; final_count
    metrics   analysis/metrics.py    per request -> RequestTable
    summary   analysis/summary.py    RequestLog per device while streaming -> CaptureSummary
    model     models/identify,       which model ran (option, metadata, bytes, guess), then
              models/expectations    reconcile(summary, model): its own step at the end

Streaming: every ``WINDOW_FRAMES`` frames (fixed frame numbers, so results do not depend on
how the file was read), each device's traffic not yet released becomes a window trace; the
requests that nothing later in the capture can change (``final_count``) are measured, kept as
compact rows in the device's ``RequestLog``, and their URBs, transfers, events and chunks are
released. Memory follows the requests in flight, not the length of the capture. Each request's
timing and verdict are measured in its window; host timing is taken as rows are kept when the
runner's metadata block (appended at the end) could be read first, else at the end. What needs
the whole capture (the link peak, medians, findings) is computed at the end, from the compact
rows; ``summarize --json`` writes each row as it is kept when nothing at the end can change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usbtrace.allocator import give_back
from usbtrace.analysis.hosttiming import InvokeMatcher
from usbtrace.analysis.metrics import REQUEST, RequestTable, all_request_metrics, take_all
from usbtrace.analysis.predict import (
    PREDICTED,
    Prediction,
    Scenario,
    predict_window,
    prediction_from_rows,
)
from usbtrace.analysis.requests import Segmentation, final_count, segment_arrays
from usbtrace.analysis.summary import CaptureSummary, RequestLog, summarize_trace
from usbtrace.analysis.timing import runtime_clock_mhz
from usbtrace.background import prefetch
from usbtrace.edgetpu.constants import APP_IDS, DFU_IDS, Tag
from usbtrace.edgetpu.decode import DecodedCapture, Decoder, stamped_at_submit
from usbtrace.edgetpu.trace import EdgeTpuTrace, group_outputs
from usbtrace.errors import InputError, UsageError
from usbtrace.formats.capture import Capture, CaptureInfo, trailing_custom_blocks
from usbtrace.formats.metadata import (
    CaptureMetadata,
    InvokeTiming,
    metadata_from_blocks,
    trailing_invokes,
)
from usbtrace.formats.records import RecordBatch
from usbtrace.report.inspect_view import (
    InspectRows,
    control_rows,
    event_rows,
    open_output,
    output_rows,
    transfer_rows,
)
from usbtrace.report.timeline import (
    DefaultRequest,
    RequestTraffic,
    Timeline,
    build_timeline,
    default_request,
)
from usbtrace.usb.devices import Paired, UrbStage, UsbDevices

WINDOW_FRAMES = 1 << 16  # frames between two windows: bounds what is held between them
INSPECT_WINDOW_FRAMES = 1 << 13  # inspect's first rows come out after this many frames
# ... or after this long, whichever comes first: 8,192 records of whole 1 MiB payloads are 8 GB
# (seconds of reading, minutes from a slow card), and inspect's rows do not depend on where its
# windows end (tests/test_pipeline.py), so its windows may also end by the clock
INSPECT_WINDOW_S = 0.25
# a source quiet for this long (a live capture with no traffic) still gets its clock-ended
# windows: the rows already read go out
IDLE_S = 0.1

Progress = Callable[[int], None]  # called with the bytes read so far


def parse_device(text: str | None) -> tuple[int, int] | None:
    """``--device BUS.ADDRESS`` as numbers (a usage error when it is not that)."""
    if not text:
        return None
    try:
        bus, dev = text.split(".")
        return int(bus), int(dev)
    except ValueError:
        raise UsageError(f"--device takes BUS.ADDRESS, e.g. 2.4 (got {text!r})") from None


def open_capture(path: str | Path) -> Capture:
    """The source stage: a capture file, a FIFO or ``-`` (standard input), format by content."""
    return Capture(path)


def _windows(batches: Iterator[RecordBatch], every: int) -> Iterator[tuple[RecordBatch, bool]]:
    """Batches cut at every ``every``-th frame; True marks a batch that ends a window."""
    for batch in batches:
        frames = batch.records["frame"]
        while len(frames):
            edge = ((int(frames[0]) - 1) // every + 1) * every  # this window's last frame
            k = int(np.searchsorted(frames, edge, "right"))
            if k == len(frames):
                yield batch, int(frames[-1]) == edge
                break
            head, batch = _split(batch, k)
            yield head, True
            frames = batch.records["frame"]


def _split(batch: RecordBatch, k: int) -> tuple[RecordBatch, RecordBatch]:
    recs = batch.records
    last = int(recs["frame"][k - 1])
    ctrl = batch.control_payloads
    first = RecordBatch(recs[:k], {f: d for f, d in ctrl.items() if f <= last})
    first.short_records = batch.short_records
    rest = RecordBatch(recs[k:], {f: d for f, d in ctrl.items() if f > last})
    return first, rest


Window = Callable[[Decoder], None]


def _paired(urbs: UrbStage, cap: Capture, every: int) -> Iterator[tuple[Paired, bool]]:
    """The URB stage, run in the reader thread: each batch paired, and whether it ends a
    window."""
    for batch, ends in _windows(cap.batches(), every):
        yield urbs.pair(batch), ends


@dataclass
class _Stages:
    """The URB, devices and Edge TPU stages of one capture."""

    urbs: UrbStage
    devices: UsbDevices
    decoder: Decoder

    @classmethod
    def new(cls, device: str | None) -> _Stages:
        devices = UsbDevices()
        return cls(UrbStage(stamped_at_submit), devices, Decoder(devices, parse_device(device)))

    def feed(self, paired: Paired) -> None:
        self.decoder.feed(self.devices.feed(paired))

    def close(self) -> None:
        """The end of the capture (the reader thread is done): the URBs still open are fed as
        submit-only URBs."""
        self.decoder.feed(self.devices.close(self.urbs.close()))

    def finish(self, info: CaptureInfo, error: InputError | None) -> DecodedCapture:
        """What the USB layer found in the capture, and the Edge TPUs in it."""
        return self.decoder.finish(info, self.devices.finish(self.urbs.pairer), error)


def decode(
    path: str | Path | Capture,
    device: str | None = None,
    *,
    partial_ok: bool = False,
    on_window: Window | None = None,
    progress: Progress | None = None,
    window_frames: int | None = None,
    window_due: Callable[[], bool] | None = None,
) -> DecodedCapture:
    """Read and decode a capture, streaming; ``on_window`` is called at every window's end.

    ``path`` may be a capture already open (the live feed's stream of a growing file).
    ``window_due``, asked after each batch and whenever the source has been quiet for
    ``IDLE_S``, ends a window early when it says so: the live feed's timer. Of ``decode``'s
    callers only the live feed uses it, since the per-window verdicts then depend on when the
    data arrived (counts and latencies do not: ``final_count``); ``inspect``'s rows do not
    depend on it.

    With ``partial_ok`` a file that breaks off in the middle (a lying block length, garbage)
    still yields what its readable prefix holds, with the error recorded; otherwise the
    ``InputError`` propagates.
    """
    stages = _Stages.new(device)
    cap = path if isinstance(path, Capture) else open_capture(path)
    every = window_frames or WINDOW_FRAMES
    error = _stream(stages, cap, every, on_window, progress, window_due, partial_ok)
    stages.close()
    decoded = stages.finish(cap.info, error)
    # the streaming is over: the batches' freed memory goes back before the callers join
    # their rows (summarize, timeline, predict: ``usbtrace/allocator.py``)
    give_back()
    return decoded


def _every(seconds: float) -> Callable[[], bool]:
    """A ``window_due`` that says yes once ``seconds`` have passed since it last did."""
    last = time.monotonic()

    def due() -> bool:
        nonlocal last
        now = time.monotonic()
        if now - last < seconds:
            return False
        last = now
        return True

    return due


def _stream(
    stages: _Stages,
    cap: Capture,
    every: int,
    on_window: Window | None,
    progress: Progress | None = None,
    window_due: Callable[[], bool] | None = None,
    partial_ok: bool = True,
    on_idle: Callable[[], None] | None = None,
) -> InputError | None:
    """The read loop of ``decode`` and ``inspect``: every batch through the stages, a window
    ended every ``every`` frames (or when ``window_due`` says so). ``on_idle`` is called
    whenever the source has been quiet for ``IDLE_S`` (an exception it raises ends the
    reading). Returns the error a file that broke off gave (``partial_ok``), which otherwise
    propagates."""
    try:
        idle = IDLE_S if window_due is not None or on_idle is not None else None
        for got in prefetch(_paired(stages.urbs, cap, every), idle_s=idle):
            if got is None:  # nothing came for a while: a window may be due all the same
                if window_due is not None and window_due() and on_window is not None:
                    on_window(stages.decoder)
                if on_idle is not None:
                    on_idle()
                continue
            item, ends = got
            stages.feed(item)
            ends = ends or (window_due is not None and window_due())
            if ends and on_window is not None:
                on_window(stages.decoder)
            if progress is not None:
                progress(cap.info.bytes_read)
    except InputError as exc:
        if not partial_ok or exc.offset is None or not cap.info.interfaces:
            raise
        return exc
    return None


def damaged_before_any_edgetpu(decoded: DecodedCapture) -> InputError | None:
    """The error to give for a file in which no Edge TPU was found because it breaks off (a
    lying length, garbage, a cut) before any Edge TPU traffic; None when it does not. Its
    damage is then what is wrong with it, not a missing ``--device`` as "no Edge TPU traffic
    found (try --device BUS.ADDR)" would tell the user."""
    if decoded.devices:
        return None
    if decoded.error is not None:
        err = decoded.error
        return InputError(decoded.path, f"{err.message} (no Edge TPU traffic before)", err.offset)
    if decoded.info.cut_at is not None:
        why = "file ends in the middle of a block (no Edge TPU traffic before)"
        return InputError(decoded.path, why, decoded.info.cut_at)
    return None


def _found(decoded: DecodedCapture) -> DecodedCapture:
    """``decoded``, unless it holds no Edge TPU because the file broke off first: see
    ``damaged_before_any_edgetpu``."""
    damage = damaged_before_any_edgetpu(decoded)
    if damage is not None:
        raise damage
    return decoded


def decode_capture(
    path: str | Path, device: str | None = None, *, partial_ok: bool = False
) -> DecodedCapture:
    """The whole capture's traces, nothing released (for inspecting and tests)."""
    return decode(path, device, partial_ok=partial_ok)


# also told of each window's requests before their URBs are released: (device, window trace,
# its segmentation, its requests' metrics, how many of them are final)
RowsHook = Callable[[tuple[int, int], EdgeTpuTrace, Segmentation, RequestTable, int], None]
# told of the lead Edge TPU's requests as they become final, every column final:
# (file, device, rows), file and device as the summary names them
LeadSink = Callable[[str, str, RequestTable], None]


@dataclass
class _Streamer:
    """The requests, metrics and summary stages while the capture streams.

    ``invokes``, when the host invokes are known before the capture streams, lets inferences
    take theirs as they finish. The lead is the first device to finish a request, when what it
    is cannot change later (an app-mode descriptor or ``--device``); ``on_lead`` is told of its
    requests as they finish.
    """

    logs: dict[tuple[int, int], RequestLog]
    on_rows: RowsHook | None = None
    invokes: EarlyInvokes | None = None
    on_lead: LeadSink | None = None
    file: str = ""  # as the summaries name the capture
    lead: tuple[int, int] | None = None
    _led: bool = False  # the first finished request has been seen: ``lead`` is settled

    def __call__(self, decoder: Decoder) -> None:
        watermark = decoder.last_ts
        if watermark is None:
            return
        for key in decoder.candidates():
            trace = decoder.window(key)
            seg = segment_arrays(trace)
            k = final_count(trace, seg, watermark)
            log = self.log_for(key)
            table = all_request_metrics(trace, seg) if k else RequestTable(np.zeros(0, REQUEST))
            done = log.add(trace, seg, table, k)
            if k and self.on_rows is not None:
                self.on_rows(key, trace, seg, table, k)
            if k and not self._led:
                self._led = True
                how = decoder.identify(key)
                if (
                    how == "--device"
                    or (how == "descriptor" and decoder.devices[key].usb.ids == APP_IDS)
                ) and self._invokes_settled(key):
                    self.lead = key
            if k and key == self.lead and self.on_lead is not None:
                self.on_lead(self.file, trace.name, done)
            decoder.release(key, *log.released(trace, seg, k))

    def _invokes_settled(self, key: tuple[int, int]) -> bool:
        """Whether the device's requests, as they finish, already have the host timing they
        will have at the end: the invokes are known and were made on it, or none are known
        for it. One the metadata does not name may still turn out, at the end, to be the
        device its boot loader came back as (``summary.metadata_describes``)."""
        if self.invokes is None:
            return True
        return self.invokes.made_on(key) or not self.invokes.invokes

    def log_for(self, key: tuple[int, int]) -> RequestLog:
        """The device's log, made on first use (matching the invokes known before, if any,
        when they were made on it)."""
        log = self.logs.get(key)
        if log is None:
            log = self.logs[key] = RequestLog()
            if self.invokes is not None and self.invokes.made_on(key):
                log.host = InvokeMatcher(self.invokes.invokes)
        return log


@dataclass(frozen=True)
class EarlyInvokes:
    """The host invokes, when they are known before the capture streams, with the metadata
    they came in, which names the device they were made on (None: no metadata, any device)."""

    invokes: list[InvokeTiming]
    metadata: CaptureMetadata | None = None

    def made_on(self, key: tuple[int, int]) -> bool:
        return self.metadata is None or self.metadata.names_device(*key)


def early_invokes(cap: Capture) -> EarlyInvokes | None:
    """The host invokes, when they are known before the capture streams: from the metadata
    at the end of a pcapng file (walked back to), or none at all in a format that cannot carry
    metadata. None when only the end of the capture can tell (a pcapng pipe)."""
    if cap.info.format != "pcapng":
        return EarlyInvokes([])
    found = trailing_custom_blocks(cap)
    invokes = trailing_invokes(found)
    if invokes is None or found is None:
        return None
    return EarlyInvokes(invokes, metadata_from_blocks(found[0]))


def summarize_file(
    path: str | Path,
    device: str | None = None,
    model: str | Path | None = None,
    *,
    progress: Progress | None = None,
    window_frames: int | None = None,
    on_lead: LeadSink | None = None,
) -> list[CaptureSummary]:
    """One summary per Edge TPU in the capture; a broken tail is reported, the prefix used.

    ``model`` (a compiled file or catalog name) is reconciled with every request; without it,
    the model named by the capture's metadata is used when it is at hand. ``on_lead`` is told
    of the lead Edge TPU's requests as they finish, when nothing at the end can change them:
    when the host invokes are known before the capture streams (``early_invokes``).
    """
    from usbtrace.models.catalog import option_model_name

    # before the capture is read: a --model that names nothing fails at once
    option = option_model_name(model) if model is not None else None
    cap = open_capture(path)
    invokes = early_invokes(cap)
    streamer = _Streamer(
        {},
        invokes=invokes,
        on_lead=on_lead if invokes is not None else None,
        file=cap.info.path,
    )
    decoded = _found(
        decode(
            cap,
            device,
            partial_ok=True,
            on_window=streamer,
            progress=progress,
            window_frames=window_frames,
        )
    )
    summaries = []
    for t in decoded.devices:
        key = (t.bus, t.address)
        # with invokes known before, a device none of whose requests streamed matches them too
        log = streamer.log_for(key) if invokes is not None else streamer.logs.get(key)
        summary = summarize_trace(decoded, t, log)
        summary.lead = key == streamer.lead
        summaries.append(summary)
    identify_models(summaries, option)
    reconcile_all(summaries, decoded, model)
    return summaries


@dataclass
class _TimelineKeeper:
    """``timeline``'s stage while the capture streams: of each window's final requests, the
    traffic of the one asked for, or of the one the default can still be among those seen, is
    kept; the rest of the window is released as ``summarize`` releases it."""

    request: int | None  # None: ``DefaultRequest`` chooses
    kept: dict[tuple[int, int], dict[int, RequestTraffic]] = field(default_factory=dict)  # 0-1
    choices: dict[tuple[int, int], DefaultRequest] = field(default_factory=dict)
    counts: dict[tuple[int, int], int] = field(default_factory=dict)  # final requests so far

    def __call__(
        self,
        key: tuple[int, int],
        trace: EdgeTpuTrace,
        seg: Segmentation,
        table: RequestTable,
        k: int,
    ) -> None:
        offset = self.counts.get(key, 0)  # the window's request r is the capture's offset + r
        self.counts[key] = offset + k
        kept = self.kept.setdefault(key, {})
        wanted = self.request
        if wanted is None:
            choice = self.choices.setdefault(key, DefaultRequest())
            choice.add(table.rows[:k])
            wanted = choice.wanted
            for g in [g for g in kept if g != wanted]:
                del kept[g]
        if offset <= wanted < offset + k:
            kept[wanted] = RequestTraffic.of(trace, seg, wanted - offset)


def timeline_file(
    path: str | Path,
    request: int | None,
    device: str | None,
    *,
    window_frames: int | None = None,
) -> Timeline:
    """``usbtrace timeline``: request ``request`` of the capture's one Edge TPU (default: see
    ``DefaultRequest``), its lanes from the traffic kept while streaming, its numbers from the
    summary's metrics (verdict, host invoke, execution window)."""
    keeper = _TimelineKeeper(request)
    streamer = _Streamer({}, keeper)
    decoded = _found(
        decode(path, device, partial_ok=True, on_window=streamer, window_frames=window_frames)
    )
    if not decoded.devices:
        raise UsageError(f"{path}: no Edge TPU traffic found (try --device BUS.ADDR)")
    if len(decoded.devices) > 1 and device is None:
        names = ", ".join(t.name for t in decoded.devices)
        raise UsageError(f"{path}: several Edge TPUs ({names}); choose one with --device")
    trace = decoded.devices[0]
    key = (trace.bus, trace.address)
    log = streamer.logs.get(key)
    offset = log.count if log is not None else 0  # the requests still in ``trace`` follow
    metrics = summarize_trace(decoded, trace, log).requests
    if not len(metrics):
        raise UsageError(f"{path}: no request on the device")
    k = default_request(metrics) if request is None else request
    if not 0 <= k < len(metrics):
        raise UsageError(f"{path}: --request {k}: the capture has requests 0 to {len(metrics) - 1}")
    if k >= offset:
        traffic = RequestTraffic.of(trace, segment_arrays(trace), k - offset)
    else:
        traffic = keeper.kept.get(key, {})[k]  # final in an earlier window, and kept then
    return build_timeline(str(path), traffic, metrics[k])


ScenarioOf = Callable[[str | None, float | None], Scenario]  # (link speed, clock) -> scenario


@dataclass
class _Predictor:
    """``predict``'s stage while the capture streams: each window's final requests replayed
    on the window's URBs, one ``PREDICTED`` row each; the URBs are then released."""

    scenario_of: ScenarioOf
    scenarios: dict[tuple[int, int], Scenario] = field(default_factory=dict)
    rows: dict[tuple[int, int], list[np.ndarray]] = field(default_factory=dict)

    def scenario(self, key: tuple[int, int], trace: EdgeTpuTrace) -> Scenario:
        """One scenario per device, from what is known when its first requests are final."""
        if key not in self.scenarios:
            clock = runtime_clock_mhz(trace)
            self.scenarios[key] = self.scenario_of(trace.link_speed, clock)
        return self.scenarios[key]

    def __call__(
        self,
        key: tuple[int, int],
        trace: EdgeTpuTrace,
        seg: Segmentation,
        table: RequestTable,
        k: int,
    ) -> None:
        done = predict_window(trace, seg, table, self.scenario(key, trace))[:k]
        self.rows.setdefault(key, []).append(done)


def predict_file(
    path: str | Path,
    device: str | None,
    scenario_of: ScenarioOf,
    *,
    window_frames: int | None = None,
) -> list[tuple[CaptureSummary, Prediction]]:
    """``usbtrace predict``, streaming: per Edge TPU its summary and the replay of its
    requests under ``scenario_of(link speed, clock)``, window by window (a capture shorter
    than one window is replayed whole, as ``predict_trace`` does)."""
    predictor = _Predictor(scenario_of)
    streamer = _Streamer({}, predictor)
    decoded = _found(
        decode(path, device, partial_ok=True, on_window=streamer, window_frames=window_frames)
    )
    out = []
    for t in decoded.devices:
        key = (t.bus, t.address)
        seg = segment_arrays(t)
        rest = predict_window(t, seg, all_request_metrics(t, seg), predictor.scenario(key, t))
        rows = take_all([*predictor.rows.pop(key, []), rest], PREDICTED)
        summary = summarize_trace(decoded, t, streamer.logs.get(key))
        identify_models([summary], None)
        out.append(
            (summary, prediction_from_rows(t, summary.requests, rows, predictor.scenario(key, t)))
        )
    return out


def identify_models(summaries: list[CaptureSummary], option: str | None) -> None:
    """The model stage, part one: which model each summary's capture ran, and how that is known
    (``--model``, the metadata, a match of its bytes with a compiled model, or a guess from the
    file name: ``usbtrace.models.identify``). After the summary, so the analysis never imports
    the model parser. ``option`` is the name ``--model`` gives."""
    from usbtrace.models.identify import identify_summary

    for s in summaries:
        identity = identify_summary(s, option)
        s.model, s.model_source = identity.name, identity.source


def reconcile_all(
    summaries: list[CaptureSummary], decoded: DecodedCapture, model: str | Path | None
) -> None:
    """The model stage, part two: every request against the compiled model, a mismatch an integrity
    problem. The model is ``model`` or the one the capture's metadata names, when at hand."""
    from usbtrace.models.catalog import model_for_capture
    from usbtrace.models.expectations import reconcile_requests
    from usbtrace.models.inspect import inspect_model

    meta = decoded.metadata
    path = model_for_capture(model, meta.model_path if meta else None, meta.model if meta else None)
    found = inspect_model(path) if path else None
    if found is None or not found.compiled:
        return
    for s in summaries:
        if model is None and not s.ran_here:
            continue  # the metadata's model ran on another Edge TPU of the capture
        result = reconcile_requests(found, list(s.requests), s.sequences())
        s.integrity.problems.extend(f"model: {p}" for p in result.problems())
        s.reconciliation = result.to_json()


# a device's trace (for its name and heading), rows in time order, the capture's first time
RowSink = Callable[[EdgeTpuTrace, InspectRows, int], None]


@dataclass
class _Inspector:
    """inspect's stages while the capture streams: rows go out, in time order, as soon as
    nothing read later can come before them; what they show is released."""

    emit: RowSink
    held: dict[tuple[int, int], InspectRows] = field(default_factory=dict)
    problems: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    t0: int = 0  # the first record's time

    def __call__(self, decoder: Decoder) -> None:
        if decoder.last_ts is None:
            return
        self.t0 = decoder.first_ts or 0
        floor = decoder.last_ts
        oldest = decoder.usb.oldest_open_ns
        if oldest is not None:
            floor = min(floor, oldest)
        for key in decoder.candidates():
            if decoder.identify(key) is None:
                continue
            trace = decoder.window(key)
            unsettled = trace.unsettled
            assert unsettled is not None  # a window trace says which transfers may grow
            mark = floor
            starts = trace.table["t_submit_ns"][unsettled]
            if (starts > 0).any():
                mark = min(mark, int(starts[starts > 0].min()))
            chunks, events = trace.output_chunks, trace.event_table
            k = open_output(chunks, events, decoder.last_ts)
            if k < len(chunks):
                mark = min(mark, int(chunks["t_ns"][k]))
            closing = events["t_ns"][events["tag"] == Tag.INTERRUPT0]
            # an event stamped at the watermark may still split the open output from a chunk
            # read next: it stays (and is shown) until the next window
            seen = events["t_ns"] < decoder.last_ts
            rows = [
                transfer_rows(trace, ~unsettled),
                event_rows(events[seen]),
                output_rows(group_outputs(chunks[:k], closing)),
                control_rows(*decoder.take_controls(key)),
                *self._download(decoder, key),
            ]
            self._note(key, trace, ~unsettled)
            self._send(key, trace, rows, mark)
            keep_chunks = np.zeros(len(chunks), dtype=bool)
            keep_chunks[:k] = True
            assert trace.transfer_index is not None
            decoder.release(
                key,
                trace.transfer_index[~unsettled],
                seen,
                keep_chunks,
            )

    def _download(self, decoder: Decoder, key: tuple[int, int]) -> list[InspectRows]:
        """The DFU steps of a boot loader that left the bus before this Edge TPU appeared on
        it: its firmware download, shown with it (as ``EdgeTpuTrace.dfu_steps`` does)."""
        d = decoder.devices[key].usb
        rows: list[InspectRows] = []
        for k, x in decoder.devices.items():
            u = x.usb
            gone = k != key and u.bus == d.bus and x.dfu and u.last_frame < d.first_frame
            if gone and (decoder.identify(k) is None or u.ids == DFU_IDS):
                rows.append(control_rows([], [], decoder.take_controls(k)[2], []))
        return rows

    def _note(self, key: tuple[int, int], trace: EdgeTpuTrace, which: np.ndarray) -> None:
        self.problems.setdefault(key, []).extend(trace.numbered_problems(which))

    def _send(
        self, key: tuple[int, int], trace: EdgeTpuTrace, rows: list[InspectRows], mark: int | None
    ) -> None:
        held = self.held.get(key)
        every = InspectRows.concat([held, *rows] if held is not None else rows)
        if mark is None:
            ready, self.held[key] = every, InspectRows.empty()
        else:
            ready, self.held[key] = every.split(mark)
        if len(ready):
            self.emit(trace, ready.in_time_order(), self.t0)

    def finish(
        self, stages: _Stages, info: CaptureInfo, error: InputError | None
    ) -> DecodedCapture:
        stages.close()
        # taken before ``finish`` puts the controls in frame order
        tails = {k: stages.decoder.take_controls(k) for k in stages.decoder.devices}
        decoded = stages.finish(info, error)
        self.t0 = decoded.first_ts_ns
        for trace in decoded.devices:
            key = (trace.bus, trace.address)
            rows = [
                transfer_rows(trace, np.ones(len(trace.table), dtype=bool)),
                event_rows(trace.event_table),
                output_rows(trace.outputs),
                control_rows(*tails[key]),
            ]
            fw = trace.firmware
            if fw is not None and (fw.bus, fw.address) != key:
                rows.append(control_rows([], [], tails[(fw.bus, fw.address)][2], []))
            self._send(key, trace, rows, None)
            trace.released_problems = self.problems.get(key, [])
        return decoded


def inspect(
    path: str | Path,
    device: str | None,
    emit: RowSink,
    progress: Progress | None = None,
    on_idle: Callable[[], None] | None = None,
) -> DecodedCapture:
    """Every logical transfer, event, output, interrupt and control access of each Edge TPU,
    handed to ``emit`` in time order as soon as it is known (a window at a time, ended every
    ``INSPECT_WINDOW_FRAMES`` frames or ``INSPECT_WINDOW_S`` seconds); a file that breaks off
    gives its readable prefix, the damage in ``DecodedCapture.problems``. ``on_idle`` is
    called while a live source is quiet (see ``_stream``): the CLI's check that someone still
    reads the rows."""
    inspector = _Inspector(emit)
    stages = _Stages.new(device)
    cap = open_capture(path)
    due = _every(INSPECT_WINDOW_S)
    error = _stream(stages, cap, INSPECT_WINDOW_FRAMES, inspector, progress, due, on_idle=on_idle)
    return inspector.finish(stages, cap.info, error)
