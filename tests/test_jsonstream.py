"""``summarize --json`` written as requests finish: the document equals the one written at the
end, requests reach a reader of the pipe while the capture is still being read, and the
per-request fields (host timing, cache refills) are final when a request is."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import warnings
from bisect import bisect_left
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pipeline import captures  # noqa: F401 (the fixture: every test capture)

from lab.synthetic.bench import make_bench_capture
from lab.usb.source import read_usbmon
from lab.usb.writer import Layout, write_capture
from usbtrace.analysis.hosttiming import InvokeMatcher
from usbtrace.analysis.metrics import REQUEST
from usbtrace.analysis.requests import KIND_INFERENCE, KINDS
from usbtrace.cli.summarize_cmd import order
from usbtrace.errors import InputError
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.capture import Capture, trailing_custom_blocks
from usbtrace.formats.metadata import (
    METADATA_PEN,
    CaptureMetadata,
    InvokeTiming,
    encode_metadata,
    trailing_invokes,
)
from usbtrace.pipeline import summarize_file
from usbtrace.report.jsonout import CapturesJson
from usbtrace.report.summary_table import sort_key

ROOT = Path(__file__).resolve().parents[1]
INFERENCE = KINDS.index(KIND_INFERENCE)


def _documents(path: Path, window: int | None) -> tuple[object, object, int] | None:
    """(the document written as requests finish, the one from ``CaptureSummary.to_json``,
    how many requests were written before the end)."""
    out = io.StringIO()
    doc = CapturesJson(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            streamed = summarize_file(path, window_frames=window, on_lead=doc.requests)
            whole = summarize_file(path, window_frames=window)
        except InputError:
            return None
    order(streamed)
    order(whole)
    doc.finish(streamed)
    written = doc.written if doc.lead is not None else 0
    want = json.loads(json.dumps({"captures": [s.to_json() for s in whole]}))
    return json.loads(out.getvalue()), want, written


@pytest.mark.parametrize("window", [None, 500, 31])
def test_streamed_document_equals_the_end_written_one(captures, window):  # noqa: F811
    early = hosts = 0
    for path in captures:
        got = _documents(path, window)
        if got is None:
            continue
        streamed, want, written = got
        assert streamed == want, (path.name, window)
        early += written
        if written:
            out = streamed["captures"][0]["requests"][:written]  # type: ignore[index]
            hosts += sum("host_latency_s" in r for r in out)
    if window is not None:  # the test captures fit in one default window: nothing before it
        # requests written before the end of their capture, host timing among them: the
        # synthetic captures alone write 19 (15 with host timing) early in windows of 500
        # frames; ../shared's real captures, when present, add more
        assert early > 15
        assert hosts > 10


def _align_before(rows: np.ndarray, invokes: list[InvokeTiming]) -> None:
    """Host timing as usbtrace matched it before requests were written as they finish: each
    invoke, in metadata order, takes the earliest inference it contains (by t_start)."""
    which = np.flatnonzero(rows["kind"] == INFERENCE)
    which = which[np.argsort(rows["t_start_ns"][which], kind="stable")]
    starts = rows["t_start_ns"][which].tolist()
    taken = [False] * len(starts)
    for inv in invokes:
        k = bisect_left(starts, inv.start_ns)
        while k < len(starts) and taken[k] and starts[k] <= inv.end_ns:
            k += 1
        if k < len(starts) and not taken[k] and starts[k] <= inv.end_ns:
            taken[k] = True
            rows["has_host"][which[k]] = True
            rows["host_start_ns"][which[k]] = inv.start_ns
            rows["host_end_ns"][which[k]] = inv.end_ns


def _host_columns(rows: np.ndarray) -> list[tuple[bool, int, int]]:
    return list(zip(*(rows[n].tolist() for n in ("has_host", "host_start_ns", "host_end_ns"))))


def test_host_timing_is_matched_as_before_on_every_capture(captures):  # noqa: F811
    matched = 0
    for path in captures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found = summarize_file(path)
            except InputError:
                continue
        for s in found:
            before = s.requests.rows.copy()
            before["has_host"], before["host_start_ns"], before["host_end_ns"] = False, 0, 0
            _align_before(before, s.metadata.invokes if s.metadata else [])
            assert _host_columns(before) == _host_columns(s.requests.rows), path.name
            matched += int(np.count_nonzero(before["has_host"]))
    assert matched > 10


def _rows(starts: list[int]) -> np.ndarray:
    rows = np.zeros(len(starts), dtype=REQUEST)
    rows["kind"] = INFERENCE
    rows["t_start_ns"] = starts
    return rows


invokes_st = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 30)).map(
        lambda p: InvokeTiming(0, p[0], p[0] + p[1])
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(invokes_st, st.lists(st.integers(0, 100), max_size=12))
def test_matching_from_the_inferences_equals_matching_from_the_invokes(invokes, starts):
    """Overlapping, nested and equal invokes, equal starts: the same matching from both sides
    whenever inferences finish in t_start order, and fed in pieces as in from one."""
    starts.sort()
    want = _rows(starts)
    _align_before(want, invokes)
    got = _rows(starts)
    matcher = InvokeMatcher(invokes)
    for lo in range(0, len(starts), 3):  # a window's rows at a time
        matcher.apply(got[lo : lo + 3])
    assert _host_columns(got) == _host_columns(want)


@settings(max_examples=400, deadline=None)
@given(invokes_st, st.lists(st.integers(0, 100), max_size=12))
def test_an_inference_that_starts_before_an_earlier_one_still_gets_the_rule(invokes, starts):
    """Timestamps that go backwards: each inference, in index order, takes the first free
    invoke (in metadata order) that contains its t_start, as the README says."""
    got = _rows(starts)
    InvokeMatcher(invokes).apply(got)
    taken: set[int] = set()
    for row, t in enumerate(starts):
        free = [j for j, i in enumerate(invokes) if j not in taken and i.start_ns <= t <= i.end_ns]
        want = (True, invokes[free[0]].start_ns, invokes[free[0]].end_ns) if free else None
        assert (_host_columns(got)[row] if got["has_host"][row] else None) == want
        taken.update(free[:1])


def _custom(pen: int, payload: bytes) -> bytes:
    body = struct.pack("<I", pen) + payload
    body += b"\0" * (-len(body) % 4)
    return (
        struct.pack("<II", bt.BT_CUSTOM_COPY, len(body) + 12)
        + body
        + struct.pack("<I", len(body) + 12)
    )


def _meta(*spans: tuple[int, int]) -> bytes:
    meta = CaptureMetadata(invokes=[InvokeTiming(i, a, b) for i, (a, b) in enumerate(spans)])
    return _custom(METADATA_PEN, encode_metadata(meta))


def _early(path: Path) -> list[tuple[int, int]] | None:
    cap = Capture(path)
    try:
        found = trailing_invokes(trailing_custom_blocks(cap))
    finally:
        cap.close()
    return None if found is None else [(i.start_ns, i.end_ns) for i in found]


def test_metadata_at_the_end_is_read_before_the_capture_streams(tmp_path):
    sample = (ROOT / "captures" / "sample-synthetic-conv.pcapng").read_bytes()
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(sample)
    known = _early(plain)  # the sample carries its runner's metadata, with invokes
    assert known and len(known) >= 5
    cases = {
        "later block wins": (sample + _meta((1, 2)) + _custom(7, b"other"), [(1, 2)]),
        "a block without invokes": (sample + _custom(METADATA_PEN, b"USBTRACE-META\0{}"), known),
        "cut in the last block": (sample[:-6], None),
        "lying last length": (sample[:-4] + struct.pack("<I", 1 << 30), None),
        "too many blocks to walk": (sample + _custom(7, b"x") * 40, None),
    }
    for name, (data, want) in cases.items():
        path = tmp_path / f"{name}.pcapng"
        path.write_bytes(data)
        assert _early(path) == want, name


def test_no_metadata_block_means_no_invokes_and_a_pipe_cannot_tell(tmp_path):
    big = tmp_path / "bench.pcapng"
    make_bench_capture(big, frames=2_000)  # no metadata: the file ends with packet blocks
    assert _early(big) == []
    read, write = os.pipe()
    threading.Thread(target=lambda: (os.write(write, big.read_bytes()), os.close(write))).start()
    with open(read, "rb") as stream:
        cap = Capture(stream, "pipe")
        assert trailing_custom_blocks(cap) is None
        for _ in cap.batches():
            pass


def _usbtrace(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", *args], capture_output=True, env=env, **kw
    )


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory) -> Path:
    """Longer than three pipeline windows, in classic pcap (no metadata can follow)."""
    folder = tmp_path_factory.mktemp("jsonstream")
    make_bench_capture(folder / "long.pcapng", frames=240_000)
    records = read_usbmon(folder / "long.pcapng").records
    write_capture(folder / "long.pcap", records, Layout(format="pcap"))
    return folder / "long.pcap"


def test_stdout_and_output_file_hold_the_end_written_document(long_capture, tmp_path):
    (whole,) = summarize_file(long_capture)
    want = json.loads(json.dumps({"captures": [whole.to_json()]}))
    out = _usbtrace("summarize", "--json", str(long_capture))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == want
    assert out.stdout.index(b'"requests"') < out.stdout.index(b'"link_speed"')  # streamed
    target = tmp_path / "doc.json"
    assert _usbtrace("summarize", "--json", "-o", str(target), str(long_capture)).returncode == 0
    assert json.loads(target.read_bytes()) == want


def test_a_reader_of_the_pipe_sees_requests_before_the_capture_is_read(long_capture, tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    data = long_capture.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "usbtrace", "summarize", "--json", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    deadline = time.monotonic() + 60
    got = bytearray()
    reader = threading.Thread(
        target=lambda: [got.extend(b) for b in iter(lambda: proc.stdout.read1(1 << 16), b"")],
        daemon=True,
    )
    reader.start()
    fd = None
    try:
        while fd is None:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.02)
        os.set_blocking(fd, True)
        os.write(fd, data[: len(data) * 3 // 5])  # two windows and more: the rest held back
        while b'{"index":1,' not in got:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no request object within 60 s"
            time.sleep(0.02)
        assert proc.poll() is None  # still reading: the rest of the capture is not written
        assert got.startswith(b'{"captures":[{"file":')
        first = bytes(got[got.index(b'"requests":[') + 12 : got.index(b',{"index":1,')])
        assert json.loads(first)["index"] == 0
        os.write(fd, data[len(data) * 3 // 5 :])
    finally:
        if fd is not None:
            os.close(fd)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    reader.join(timeout=10)
    doc = json.loads(bytes(got))
    (want,) = summarize_file(long_capture)
    want_doc = json.loads(json.dumps(want.to_json())) | {"file": str(fifo)}
    assert doc == {"captures": [want_doc]}


def test_several_edge_tpus_the_lead_comes_first(tmp_path, monkeypatch):
    """The first Edge TPU to finish a request is written first, before the others' requests
    are known: the document puts it first (here 2.7, which the sort alone puts after 2.5)."""
    from dataclasses import replace

    from lab.synthetic import preset, write_session
    from usbtrace import pipeline
    from usbtrace.formats.metadata import CaptureMetadata, append_metadata

    base = preset("two_tpus")
    first, second = base.devices
    later = replace(second, enumeration=True, start_offset_us=20_000_000)
    session = replace(base, devices=(replace(first, address=7), later), metadata=False)
    path = write_session(session, tmp_path / "two.pcapng") and tmp_path / "two.pcapng"
    # metadata that names no device describes both: the same model, so only the device
    # number sorts them
    append_metadata(str(path), CaptureMetadata(model="conv_50"))
    monkeypatch.setattr(pipeline, "WINDOW_FRAMES", 100)  # 2.7 is done before 2.5 starts
    got = _documents(path, None)
    assert got is not None
    streamed, want, written = got
    assert streamed == want and written > 0
    assert [c["device"] for c in streamed["captures"]] == ["2.7", "2.5"]  # type: ignore[index]
    found = summarize_file(path)
    assert [s.device for s in found if s.lead] == ["2.7"]
    assert [s.device for s in sorted(found, key=sort_key)] == ["2.5", "2.7"]
