"""Feeds for the live view: a growing capture in, finished requests and warnings out.

``LiveFeed`` is the narrow interface the view depends on. ``SnapshotFeed`` is the adapter used
until the streaming pipeline (``usbtrace/pipeline.py``: records → URBs → Edge TPU → requests
emitted one at a time) is available: it follows the file with ``PcapngFollower`` and, when the
file has grown, analyses its complete blocks again with the same code as ``summarize``,
handing on only what is new. That costs a pass over the file each time, so the caller spaces
the polls by the time the last one took. **This class is the one place to switch to the
pipeline**; the view and the runner do not change.

``SubprocessFeed`` runs a ``SnapshotFeed`` in a child process at a lower priority
(``python3 -m usbtrace.analysis.live_feed FILE``, one JSON line per poll), so the analysis never
holds the interpreter lock of the process that runs the model's inferences and stamps their
host times.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from usbtrace.analysis.live import IntegrityEvent, LiveRequest
from usbtrace.analysis.requests import KIND_INFERENCE
from usbtrace.analysis.summary import summarize_trace
from usbtrace.edgetpu.trace import NS
from usbtrace.errors import CaptureWarning, InputError
from usbtrace.formats.follow import PcapngFollower
from usbtrace.pipeline import decode_capture


@dataclass
class FeedUpdate:
    requests: list[LiveRequest] = field(default_factory=list)
    warnings: list[IntegrityEvent] = field(default_factory=list)
    packets: int = 0  # packets in the complete part of the file so far
    seconds: float = 0.0  # what this poll cost, for spacing the next one


class LiveFeed(Protocol):
    def poll(self) -> FeedUpdate: ...

    def close(self) -> None: ...


class SnapshotFeed:
    """Re-analyses the complete blocks of a growing capture; see the module's note."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.follower = PcapngFollower(self.path)
        self._analysed_size = 0
        self._emitted: dict[str, int] = {}  # device -> highest request index handed on
        self._previous: set[str] = set()  # problems of the last analysis (not yet handed on)
        self._reported: set[str] = set()
        self._damage_reported = False

    def poll(self) -> FeedUpdate:
        t0 = time.perf_counter()
        update = FeedUpdate()
        while self.follower.poll().blocks:
            pass  # catch up to the last complete block
        update.packets = self.follower.packets
        if self.follower.damage and not self._damage_reported:
            self._damage_reported = True
            update.warnings.append(IntegrityEvent(f"capture file damaged {self.follower.damage}"))
        size = self.follower.offset
        if size > self._analysed_size:
            self._analysed_size = size
            self._analyse(size, update)
        update.seconds = time.perf_counter() - t0
        return update

    def _analyse(self, complete_size: int, update: FeedUpdate) -> None:
        try:
            with warnings.catch_warnings():
                # the reader warns about the half-written tail; it is no news here, and a
                # warning printed to stderr would tear the live view
                warnings.simplefilter("ignore", CaptureWarning)
                decoded = decode_capture(self.path, partial_ok=True)
        except InputError:
            return  # no interface block or no usbmon yet: nothing to show
        # dumpcap's half-written last block is not damage: it is where the file ends for now
        tail = set()
        if decoded.error is not None and (decoded.error.offset or 0) >= complete_size:
            tail.add(f"unreadable after byte {decoded.error.offset}: {decoded.error.message}")
        if decoded.info.cut_at is not None and decoded.info.cut_at >= complete_size:
            tail.add(f"file is cut at byte {decoded.info.cut_at}")
        problems: set[str] = set()
        for trace in decoded.devices:
            summary = summarize_trace(decoded, trace)
            # a request still waiting for its event is unfinished, not a problem (yet)
            unfinished = {
                f"request {m.index}: {p}"
                for m in summary.requests
                if not m.has_event
                for p in m.problems
            }
            problems.update(p for p in summary.integrity.problems if p not in tail | unfinished)
            done = self._emitted.get(trace.name, -1)
            for m in summary.requests:
                if m.index <= done or not m.has_event:
                    continue
                update.requests.append(
                    LiveRequest(
                        device=trace.name,
                        index=m.index,
                        kind=m.kind,
                        t_end_ns=m.t_end_ns,
                        latency_s=m.latency_ns / NS,
                        streamed_bytes=m.parameters if m.kind == KIND_INFERENCE else 0,
                        verdict=m.verdict,
                    )
                )
                self._emitted[trace.name] = m.index
        # a problem at the moving end of the capture (a transfer still arriving) goes away with
        # the next packets: hand on only what two analyses in a row agree on
        stable = (problems & self._previous) - self._reported
        self._previous = problems
        self._reported |= stable
        update.warnings += [IntegrityEvent(p) for p in sorted(stable)]

    def close(self) -> None:
        self.follower.close()


FEED_NICE = 10  # the feed yields the processor to dumpcap and the program being captured


class SubprocessFeed:
    """A ``SnapshotFeed`` in a child process; the same answers, none of the interpreter lock."""

    def __init__(self, path: str | Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "usbtrace.analysis.live_feed", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal Ctrl-C is for the capture, not for the view
            text=True,
        )

    def poll(self) -> FeedUpdate:
        proc = self.process
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("poll\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise OSError(f"the live feed process ended (status {proc.poll()})")
        return decode_update(line)

    def close(self) -> None:
        proc = self.process
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: the child stops
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def encode_update(update: FeedUpdate) -> str:
    return json.dumps(
        {
            "requests": [
                [r.device, r.index, r.kind, r.t_end_ns, r.latency_s, r.streamed_bytes, r.verdict]
                for r in update.requests
            ],
            "warnings": [w.message for w in update.warnings],
            "packets": update.packets,
            "seconds": update.seconds,
        }
    )


def decode_update(line: str) -> FeedUpdate:
    data = json.loads(line)
    return FeedUpdate(
        requests=[LiveRequest(*r) for r in data["requests"]],
        warnings=[IntegrityEvent(m) for m in data["warnings"]],
        packets=data["packets"],
        seconds=data["seconds"],
    )


def serve(path: str) -> int:
    """The child's side: one poll per "poll" line on stdin, answered as one JSON line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, FEED_NICE)
    feed = SnapshotFeed(path)
    try:
        for _ in sys.stdin:  # ends when the parent closes the pipe, or dies
            sys.stdout.write(encode_update(feed.poll()) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass
    finally:
        feed.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
