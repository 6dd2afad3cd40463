"""``usbtrace timeline`` takes its request from the streaming pipeline (issue 14): the same
timeline as the old whole-capture way on every test capture, and the right request when it
becomes final windows after the capture's start."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from builders import CaptureBuilder, inference
from conftest import SHARED_HINT

from lab.synthetic import PRESETS, preset, write_session
from usbtrace import pipeline
from usbtrace.analysis.metrics import RequestMetrics
from usbtrace.analysis.requests import KIND_INFERENCE, Request, segment
from usbtrace.analysis.summary import summarize_trace
from usbtrace.errors import UsageError, UsbtraceError
from usbtrace.pipeline import decode_capture, summarize_file, timeline_file
from usbtrace.report.timeline import (
    LANE_EVENT,
    LANE_HOST,
    LANE_ORDER,
    LANE_OUTPUT,
    OUT_LANES,
    Lane,
    Timeline,
)
from usbtrace.usb.link import link_ceiling_Bps

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("USBTRACE_SHARED", ROOT.parent / "shared"))
REAL = SHARED / "captures" / "real"
SMALL_WINDOW = 256  # frames: a synthetic session spans many windows


# -- the old way: the whole capture decoded and kept, then summarised and segmented again ------


def _old_default(metrics: list[RequestMetrics]) -> int:
    infs = [m for m in metrics if m.kind == KIND_INFERENCE]
    streaming = [m for m in infs if m.parameters]
    if streaming:
        return streaming[0].index
    if len(infs) > 1:
        return infs[1].index
    return infs[0].index if infs else 0


def _old_build(file: str, trace, request: Request, m: RequestMetrics) -> Timeline:
    tags = {t.index: t.tag for t in request.transfers}
    ceiling = link_ceiling_Bps(trace.link_speed)
    lanes = {name: Lane(name, ceiling_Bps=ceiling) for name in LANE_ORDER}
    if m.host_start_ns is not None and m.host_end_ns is not None:
        lanes[LANE_HOST].starts_ns.append(m.host_start_ns)
        lanes[LANE_HOST].ends_ns.append(m.host_end_ns)
    urbs = trace.out_urbs[np.isin(trace.out_urbs["tidx"], list(tags))]
    for u in urbs[urbs["c_frame"] > 0]:
        lane = lanes.get(OUT_LANES.get(tags[int(u["tidx"])], ""))
        if lane is not None:
            lane.starts_ns.append(int(u["s_ts"]))
            lane.ends_ns.append(int(u["c_ts"]))
    for t in request.transfers:
        if OUT_LANES.get(t.tag):
            lanes[OUT_LANES[t.tag]].nbytes += t.length
    if len(request.chunk_rows):
        chunks = trace.output_chunks[request.chunk_rows]
        lanes[LANE_OUTPUT].starts_ns += chunks["t_ns"].tolist()
        lanes[LANE_OUTPUT].ends_ns += chunks["t_ns"].tolist()
        lanes[LANE_OUTPUT].nbytes = int(chunks["length"].sum())
    if request.event is not None:
        lanes[LANE_EVENT].starts_ns.append(request.event.t_ns)
        lanes[LANE_EVENT].ends_ns.append(request.event.t_ns)
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


def _old_timeline(path: Path, request: int | None, device: str | None = None) -> Timeline:
    """``timeline_for_file`` as it was before the streaming pipeline fed it."""
    decoded = decode_capture(path, device, partial_ok=True)
    if not decoded.devices:
        raise UsageError(f"{path}: no Edge TPU traffic found (try --device BUS.ADDR)")
    if len(decoded.devices) > 1 and device is None:
        names = ", ".join(t.name for t in decoded.devices)
        raise UsageError(f"{path}: several Edge TPUs ({names}); choose one with --device")
    trace = decoded.devices[0]
    metrics = summarize_trace(decoded, trace).requests
    requests = segment(trace)
    if not requests:
        raise UsageError(f"{path}: no request on the device")
    k = _old_default(list(metrics)) if request is None else request
    if not 0 <= k < len(requests):
        raise UsageError(
            f"{path}: --request {k}: the capture has requests 0 to {len(requests) - 1}"
        )
    return _old_build(str(path), trace, requests[k], metrics[k])


def _outcome(make, *args, **kw) -> object:
    """The timeline's JSON and the dataclass itself, or the error's type and line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tl = make(*args, **kw)
        except UsbtraceError as exc:
            return type(exc).__name__, str(exc)
    return tl.to_json(), tl


# -- the captures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tl-presets")
    out = {}
    for name in sorted(PRESETS):
        out[name] = folder / f"{name}.pcapng"
        write_session(preset(name), out[name])
    return out


def _test_captures() -> list[Path]:
    found = sorted((ROOT / "captures").glob("*.pcapng"))
    found += sorted((ROOT / "tests" / "corpus").glob("*.pcap*"))
    return found


def _requests_to_try(path: Path) -> list[int | None]:
    """The default, every request of a short capture (a long one: its first and last few),
    and one past the last (the usage error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            n = max((len(s.requests) for s in summarize_file(path)), default=0)
        except UsbtraceError:
            n = 0
    some = list(range(n)) if n <= 12 else [*range(6), *range(n - 6, n)]
    return [None, *some, n, -1]


def _same_as_old(path: Path, device: str | None = None) -> int:
    """Every request tried on ``path``: new == old; how many were timelines (not errors)."""
    built = 0
    for k in _requests_to_try(path):
        new = _outcome(timeline_file, path, k, device)
        old = _outcome(_old_timeline, path, k, device)
        assert new == old, (path.name, k)
        built += isinstance(new[1], Timeline)
    return built


def test_committed_and_corpus_captures_give_the_old_timelines():
    paths = _test_captures()
    assert len(paths) >= 10  # the samples and the fuzz corpus are in the checkout
    built = sum(_same_as_old(p) for p in paths)
    assert built >= 12  # timelines compared, not only errors


def test_synthetic_presets_give_the_old_timelines(presets):
    built = 0
    for name, path in presets.items():
        # two_tpus needs --device: without it both ways give the same usage error
        built += _same_as_old(path)
        if name == "two_tpus":
            built += _same_as_old(path, "2.5")
    assert built >= 40


# (file, its Edge TPU, timelines expected): the inout files hold one record each, no request
REAL_CASES = [
    ("conv_50", "2.4", 1),
    ("dense_300", "2.4", 1),
    ("inout_padding_256x256x3", "2.9", 0),
    ("inout_stride_256x256x3", "2.9", 0),
]


@pytest.mark.parametrize(("name", "device", "least"), REAL_CASES)
def test_real_captures_give_the_old_timelines(name, device, least):
    path = REAL / f"{name}.pcapng"
    if not path.exists():
        pytest.skip(f"real capture missing: {path} ({SHARED_HINT})")
    assert _same_as_old(path) + _same_as_old(path, device) >= 2 * least


# -- longer than one window -------------------------------------------------------------------


class _Watched(pipeline._TimelineKeeper):
    """The keeper, noting which requests it kept from which window, and how many at once."""

    seen: list[tuple[int, int]]  # (window offset, request kept)
    most: int

    def __call__(self, key, trace, seg, table, k) -> None:  # type: ignore[no-untyped-def]
        offset = self.counts.get(key, 0)
        before = set(self.kept.get(key, {}))
        super().__call__(key, trace, seg, table, k)
        now = self.kept[key]
        self.seen = getattr(self, "seen", []) + [(offset, g) for g in set(now) - before]
        self.most = max(getattr(self, "most", 0), len(now))


@pytest.fixture
def watched(monkeypatch) -> list[_Watched]:
    made: list[_Watched] = []

    def make(request: int | None) -> _Watched:
        made.append(_Watched(request))
        return made[-1]

    monkeypatch.setattr(pipeline, "_TimelineKeeper", make)
    return made


def _without_verdict(doc: dict) -> dict:
    # per window, as summarize measures it (README "The pipeline"): not the whole capture's
    return {k: v for k, v in doc.items() if k != "verdict"}


@pytest.fixture(scope="module")
def long_dense(tmp_path_factory) -> Path:
    """dense_300 with 20 inferences 20 ms apart: about 900 frames, windows of 256."""
    p = preset("dense_300")
    p = replace(p, devices=(replace(p.devices[0], inferences=20, interval_us=20_000),))
    path = tmp_path_factory.mktemp("tl-long") / "dense_300x20.pcapng"
    write_session(p, path)
    return path


def test_a_request_final_in_a_later_window(long_dense, watched):
    path = long_dense
    n = len(summarize_file(path)[0].requests)
    per_window = summarize_file(path, window_frames=SMALL_WINDOW)[0].requests
    for k in range(n):
        tl = timeline_file(path, k, None, window_frames=SMALL_WINDOW)
        old = _old_timeline(path, k)
        assert _without_verdict(tl.to_json()) == _without_verdict(old.to_json()), k
        assert tl.lanes == old.lanes and tl.verdict == per_window[k].verdict
    later = [(offset, g) for w in watched for offset, g in w.seen if offset > 0]
    assert later, "no request became final after the first window"
    assert all(w.most <= 1 for w in watched)  # --request keeps one request's traffic only


def _late_streaming_capture(path: Path, plain: int, after: int = 0) -> Path:
    """``plain`` inferences that stream nothing, three that stream parameters, and ``after``
    more that stream nothing (about 12 frames each)."""
    b = CaptureBuilder()
    b.device_descriptor(0)
    t = 1000
    for i in range(plain + 3 + after):
        streams = plain <= i < plain + 3
        t = inference(b, t, params=[300_000] if streams else None) + 500
    return b.write(path)


def test_default_is_the_first_streaming_inference_windows_later(tmp_path, watched):
    path = _late_streaming_capture(tmp_path / "late.pcapng", plain=80, after=40)
    tl = timeline_file(path, None, None, window_frames=SMALL_WINDOW)
    assert tl.request == 80 and tl.lane("parameters").nbytes == 300_000
    assert _without_verdict(tl.to_json()) == _without_verdict(_old_timeline(path, None).to_json())
    (w,) = watched
    kept_at = {g: offset for offset, g in w.seen}
    assert kept_at[80] > 0  # final in a later window than the first
    # the second inference from the first window on, until then
    assert kept_at == {1: 0, 80: kept_at[80]}
    assert w.most == 1 and list(w.kept[(2, 4)]) == [80]  # the others let go


def test_default_second_inference_when_none_streams(tmp_path, watched):
    b = CaptureBuilder()
    b.device_descriptor(0)
    t = 1000
    for _ in range(60):
        t = inference(b, t) + 500
    path = b.write(tmp_path / "plain.pcapng")
    tl = timeline_file(path, None, None, window_frames=SMALL_WINDOW)
    assert tl.request == 1 == _old_timeline(path, None).request
    (w,) = watched
    assert w.most == 1 and list(w.kept[(2, 4)]) == [1]


def test_request_out_of_range_after_streaming(tmp_path):
    path = _late_streaming_capture(tmp_path / "late.pcapng", plain=30)
    with pytest.raises(UsageError, match="requests 0 to 32"):
        timeline_file(path, 33, None, window_frames=SMALL_WINDOW)
    tl = timeline_file(path, 32, None, window_frames=SMALL_WINDOW)
    assert tl.request == 32 and tl.lane("parameters").nbytes == 300_000
    assert tl.lane("input").nbytes == 16 and len(tl.lane("event").starts_ns) == 1


def test_the_kept_traffic_is_the_requests_own(tmp_path):
    """Each lane holds only the request's own URBs: the instructions lane of an inference
    built with one 93,360-byte transfer shows its header and payload URB, no more."""
    path = _late_streaming_capture(tmp_path / "late.pcapng", plain=40)
    tl = timeline_file(path, 20, None, window_frames=SMALL_WINDOW)
    assert len(tl.lane("instructions").starts_ns) == 2
    assert tl.lane("instructions").nbytes == 93_360
    assert tl.lane("parameters").nbytes == 0 and tl.lane("output").nbytes == 8
