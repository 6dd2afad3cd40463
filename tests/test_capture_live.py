"""The live view: following a growing pcapng, the running figures, the feed, and the drawing in
a real pseudo-terminal."""

from __future__ import annotations

import os
import re
import select
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from capture_fakes import SessionWriter
from conftest import shared_path

from lab.usb.writer import encode
from usbtrace.analysis.live import IntegrityEvent, LiveRequest, LiveStats
from usbtrace.capture import live_feed
from usbtrace.capture.live_feed import PipelineFeed, SubprocessFeed
from usbtrace.formats.follow import PcapngFollower
from usbtrace.pipeline import summarize_file
from usbtrace.report.live_view import render_lines

PROJECT = Path(__file__).resolve().parents[1]


def _encoded(writer: SessionWriter) -> bytes:
    """The records a SessionWriter holds so far, as the pcapng it writes."""
    return encode(writer.records, writer.layout).data


def _blocks(data: bytes) -> list[int]:
    """Offsets of the ends of the blocks of a little-endian pcapng."""
    ends, pos = [], 0
    while pos < len(data):
        pos += struct.unpack_from("<I", data, pos + 4)[0]
        ends.append(pos)
    return ends


def test_follower_hands_on_complete_blocks_only(tmp_path):
    data = SessionWriter().session(2)
    ends = _blocks(data)
    path = tmp_path / "growing.pcapng"
    path.write_bytes(b"")
    follower = PcapngFollower(path)
    got = b""
    # the writer appends in pieces that end anywhere, also inside block headers
    for cut in (5, ends[1] + 3, ends[4] - 1, ends[4], ends[9] + 13, len(data)):
        with open(path, "ab") as f:
            f.write(data[path.stat().st_size : cut])
        poll = follower.poll()
        got += poll.data
        assert got == data[: poll.complete_size]
        assert poll.complete_size == max([0] + [e for e in ends if e <= cut])
        assert follower.damage is None
    assert got == data
    assert follower.packets == sum(
        1 for e, s in zip(ends, [0, *ends], strict=False) if data[s : s + 4] == b"\x06\0\0\0"
    )


def test_follower_reports_damage_instead_of_raising(tmp_path):
    data = bytearray(SessionWriter().session(1))
    ends = _blocks(bytes(data))
    struct.pack_into("<I", data, ends[2] + 4, 7)  # a length that can never be valid
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(data))
    follower = PcapngFollower(path)
    poll = follower.poll()
    assert poll.complete_size == ends[2]
    assert follower.damage == f"at byte {ends[2]}: block length 7 is not valid"
    assert follower.poll().blocks == 0  # stays stopped


def test_follower_reads_a_block_larger_than_one_read(tmp_path):
    writer = SessionWriter()
    writer.transfer(2, bytes(5000))
    data = _encoded(writer)
    path = tmp_path / "big.pcapng"
    path.write_bytes(data)
    follower = PcapngFollower(path, max_read=256)
    got = b""
    while (poll := follower.poll()).blocks:
        got += poll.data
    assert got == data


def _request(i, kind="inference", t_end_s=0.0, latency=0.01, streamed=2_000_000, v="usb-bound"):
    return LiveRequest("3.7", i, kind, int(t_end_s * 1e9), latency, streamed, v)


def test_stats_print_only_figures_that_can_be_true():
    stats = LiveStats()
    figures = stats.snapshot()
    assert (figures.requests, figures.inferences_per_s, figures.latency_median_s) == (0, None, None)
    assert figures.packets is None  # not "0 packets" before the feed has read anything
    assert "reading the capture" in render_lines(figures, 0.1, "x.pcapng")[0]
    stats.add(_request(0, kind="parameter-caching", streamed=0, v="n/a"))
    stats.add(_request(1, t_end_s=10.0, latency=0.010))
    one = stats.snapshot()
    assert (one.requests, one.inferences) == (2, 1)
    assert one.inferences_per_s is None  # a rate needs both ends of its interval
    assert one.latency_median_s == pytest.approx(0.010)
    for k in range(2, 6):  # one inference every 0.25 s
        stats.add(_request(k, t_end_s=10.0 + 0.25 * (k - 1), latency=0.010 * k, v="compute-paced"))
    f = stats.snapshot()
    assert f.inferences_per_s == pytest.approx(4.0)
    assert f.latency_median_s == pytest.approx(0.030)
    assert f.streamed_mb_per_inference == pytest.approx(2.0)
    assert f.verdict == "compute-paced"
    stats.warn(IntegrityEvent("3 packet(s) dropped by the capture"))
    lines = render_lines(stats.snapshot(), 1.5, "x.pcapng")
    assert "requests 6  inferences 5  inf/s 4.0" in lines
    assert any("median 30.00 ms" in line and "verdict compute-paced" in line for line in lines)
    assert "  ! 3 packet(s) dropped by the capture" in lines


def _grow(path, data, ends, feed):
    """Append the capture a few blocks at a time, each time stopping inside a block, polling
    after each piece; then the writer stops. What the feed handed on, and the polls made."""
    seen: list[LiveRequest] = []
    warnings: list[IntegrityEvent] = []
    polls = 0
    for end in [*ends[3::6], len(data)]:
        with open(path, "ab") as f:
            f.write(data[path.stat().st_size : min(end + 9, len(data))])
        time.sleep(0.05)  # let the follower see it (the result must not depend on it)
        update = feed.poll()
        polls += 1
        seen += update.requests
        warnings += update.warnings
    last = feed.finish()
    seen += last.requests
    warnings += last.warnings
    return seen, warnings, last, polls


@pytest.mark.parametrize("feed_class", [PipelineFeed, SubprocessFeed])
def test_feed_on_a_growing_capture(tmp_path, feed_class):
    data = SessionWriter().session(3)
    truth = summarize_file(_whole(tmp_path, data))[0]
    ends = _blocks(data)
    path = tmp_path / "live.pcapng"
    path.write_bytes(b"")
    feed = feed_class(path)
    seen, warnings, last, _ = _grow(path, data, ends, feed)
    feed.close()
    assert [(r.index, r.kind) for r in seen] == [(m.index, m.kind) for m in truth.requests]
    assert [r.latency_s for r in seen] == pytest.approx(
        [m.latency_ns / 1e9 for m in truth.requests]
    )
    assert [r.streamed_bytes for r in seen] == [
        m.parameters if m.kind == "inference" else 0 for m in truth.requests
    ]
    assert warnings == []  # a block still being written is not damage
    assert last.packets == truth_packets(data)


def test_pipeline_feed_reads_each_byte_once_in_many_windows(tmp_path):
    """A poll costs the new data, not the file: the pipeline runs once over the growing file
    (bytes read about the file's size, not polls x size), in many windows, and its counts equal
    ``summarize``'s."""
    data = SessionWriter().session(40)
    truth = summarize_file(_whole(tmp_path, data))[0]
    ends = _blocks(data)
    path = tmp_path / "live.pcapng"
    path.write_bytes(b"")
    feed = PipelineFeed(path, window_s=0.0)  # a window after every batch read
    seen, warnings, _, polls = _grow(path, data, ends, feed)
    feed.close()
    assert warnings == []
    assert [(r.index, r.kind) for r in seen] == [(m.index, m.kind) for m in truth.requests]
    assert polls > 20 and feed.windows > 10
    assert feed.capture is not None and feed.capture.info.bytes_read == len(data)
    # the follower reads a block being written again at the next poll: a few bytes each
    assert len(data) <= feed.source.follower.bytes_read < len(data) + polls * 2048


@pytest.mark.parametrize("name", ["conv_50.pcapng", "dense_300.pcapng"])
def test_pipeline_feed_on_a_real_capture_growing(tmp_path, name):
    """A real capture (../shared) written piece by piece: the feed ends with summarize's
    requests and integrity problems."""
    source = shared_path(f"captures/real/{name}")
    data = source.read_bytes()
    truth = summarize_file(source)[0]
    path = tmp_path / name
    path.write_bytes(b"")
    feed = PipelineFeed(path)
    seen, warnings, _, _ = _grow(path, data, _blocks(data)[::3], feed)
    feed.close()
    assert [(r.index, r.kind) for r in seen] == [(m.index, m.kind) for m in truth.requests]
    assert [r.latency_s for r in seen] == pytest.approx(
        [m.latency_ns / 1e9 for m in truth.requests]
    )
    assert sorted(w.message for w in warnings) == sorted(truth.integrity.problems)


def _whole(tmp_path, data):
    path = tmp_path / "whole.pcapng"
    path.write_bytes(data)
    return path


def truth_packets(data: bytes) -> int:
    ends = _blocks(data)
    return sum(1 for s in [0, *ends[:-1]] if data[s : s + 4] == b"\x06\0\0\0")


def test_pipeline_feed_reports_real_damage_once(tmp_path):
    data = bytearray(SessionWriter().session(2))
    ends = _blocks(bytes(data))
    struct.pack_into("<I", data, ends[-3] + 4, 7)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(data))
    feed = PipelineFeed(path)
    first, second = feed.finish(), feed.poll()
    feed.close()
    assert [w.message for w in first.warnings] == [
        f"capture file damaged at byte {ends[-3]}: block length 7 is not valid"
    ]
    assert second.warnings == []


def test_pipeline_feed_warns_of_a_failed_transfer_while_the_capture_goes_on(tmp_path, monkeypatch):
    # finish() gives up after FINISH_WAIT_S by design (the capture must not wait on the view);
    # on a loaded machine the tail's warnings then came too late: this test is about what is
    # warned, so it waits as long as that takes
    monkeypatch.setattr(live_feed, "FINISH_WAIT_S", 300.0)
    writer = SessionWriter()
    writer.session(20)
    # a bulk-OUT completion a third of the way in fails (-71: EPROTO)
    i = next(
        j
        for j in range(len(writer.records) // 3, len(writer.records))
        if writer.records[j].urb_type == ord("C") and writer.records[j].epnum == 1
    )
    writer.records[i] = replace(writer.records[i], status=-71)
    data = _encoded(writer)
    truth = summarize_file(_whole(tmp_path, data))[0]
    failed = [p for p in truth.integrity.problems if p.startswith("request ")]
    assert failed
    path = tmp_path / "live.pcapng"
    path.write_bytes(b"")
    feed = PipelineFeed(path)
    cut = len(data) * 2 // 3
    path.write_bytes(data[:cut])
    # the capture goes on: the failed request is final before the writer stops
    early = feed.poll()
    deadline = time.monotonic() + 20
    while not early.warnings and time.monotonic() < deadline:
        time.sleep(0.05)
        early = feed.poll()
    with open(path, "ab") as f:
        f.write(data[cut:])
    last = feed.finish()
    feed.close()
    assert [w.message for w in early.warnings] == failed
    assert sorted(w.message for w in early.warnings + last.warnings) == sorted(
        truth.integrity.problems
    )


def test_pipeline_feed_names_drops_when_the_writer_stops(tmp_path):
    """dumpcap writes its drop count in a statistics block when it stops: the feed's last
    update names it, as the summary does."""
    writer = SessionWriter()
    writer.session(3)
    writer.layout = replace(writer.layout, statistics=True, dropped=4)
    data = _encoded(writer)
    truth = summarize_file(_whole(tmp_path, data))[0]
    assert "4 packet(s) dropped by the capture" in truth.integrity.problems
    path = tmp_path / "live.pcapng"
    path.write_bytes(b"")
    feed = PipelineFeed(path)
    seen, warnings, _, _ = _grow(path, data, _blocks(data), feed)
    feed.close()
    assert [w.message for w in warnings] == ["4 packet(s) dropped by the capture"]
    assert len(seen) == len(truth.requests)


# -- in a pseudo-terminal -------------------------------------------------------------------------

CHILD = r"""
import sys, time
from pathlib import Path
from usbtrace.analysis.live import LiveRequest, IntegrityEvent
from usbtrace.capture.live_feed import FeedUpdate
from usbtrace.report.live_view import LiveView

class FakeFeed:
    def __init__(self, path):
        self.polls = 0
    def poll(self):
        self.polls += 1
        n = self.polls
        if n > 6:
            return FeedUpdate(packets=600)
        reqs = [LiveRequest("1.2", n - 1, "inference", int(n * 2e8), 0.004 * n, 3_000_000,
                            "usb-bound")]
        warn = [IntegrityEvent("2 packet(s) dropped by the capture")] if n == 4 else []
        return FeedUpdate(reqs, warn, packets=100 * n)
    def finish(self):
        return self.poll()
    def close(self):
        pass

view = LiveView(feed_factory=FakeFeed)
view.start(Path("cam-20260101T000000.pcapng"))
relay = view.relay()
relay.write("stdout", "line from the program\n")
time.sleep(float(sys.argv[1]))
view.stop()
print("CHILD DONE", file=sys.stderr)
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _run_in_pty(seconds: float) -> str:
    """The child's terminal output with the escape sequences removed."""
    import pty

    master, slave = pty.openpty()
    env = dict(
        os.environ,
        PYTHONPATH=f"{PROJECT}{os.pathsep}{PROJECT / 'tests'}",
        TERM="xterm-256color",
        COLUMNS="120",
        LINES="40",
    )
    env.pop("NO_COLOR", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(seconds)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        child.wait(30)
        os.close(master)
    assert child.returncode == 0
    return ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def test_live_view_draws_request_counts_in_a_terminal():
    text = _run_in_pty(2.5)
    assert "CHILD DONE" in text
    # the counts grow as the feed hands requests on, and end at the feed's six
    counts = [int(n) for n in re.findall(r"requests (\d+)  inferences", text)]
    assert counts and counts == sorted(counts)
    assert counts[-1] == 6
    assert "requests 6  inferences 6  inf/s 5.0" in text
    assert "! 2 packet(s) dropped by the capture" in text
    assert "line from the program" in text
    # redrawn at least twice a second: frames (the header line) over the 2.5 s it ran
    frames = text.count("usbtrace live  cam-20260101T000000.pcapng")
    assert frames >= 2 * 2.5, frames
