"""Feeds for the live view: a growing capture in, finished requests and warnings out.

``LiveFeed`` is the narrow interface the view depends on. ``PipelineFeed`` runs the streaming
pipeline (``usbtrace/pipeline.py``) once over the file as dumpcap appends to it: the file is
followed as a stream (``FollowStream``: complete blocks only, waiting at the end of the file
until ``finish()``), so each byte is read and analysed once, and a poll costs what arrived
since the last one. Every window's final requests are handed on with their kind, latency,
streamed bytes and verdict, and integrity warnings as they appear.

Windows end whenever the analysis has caught up with the file, and every ``WINDOW_S`` while it
is behind, so the view moves at low traffic too. This feed's windows are the only ones that
depend on time: counts, kinds and latencies do not depend on where a window ends
(``final_count``), but a request's verdict is computed over its window's URBs, so the live
verdicts may differ from ``summarize``'s fixed-frame windows. The requests still in flight
when the writer stops (nothing after them to make them final) come with ``finish()``, when the
end of the capture is known.

``SubprocessFeed`` runs a ``PipelineFeed`` in a child process at a lower priority
(``python3 -m usbtrace.capture.live_feed FILE``, one JSON line per poll), so the analysis never
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
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from usbtrace.analysis.live import IntegrityEvent, LiveRequest
from usbtrace.analysis.metrics import VERDICTS, RequestTable, all_request_metrics
from usbtrace.analysis.requests import KIND_INFERENCE, KINDS, Segmentation, segment_arrays
from usbtrace.analysis.summary import summarize_trace
from usbtrace.edgetpu.decode import DecodedCapture, Decoder
from usbtrace.edgetpu.trace import NS, EdgeTpuTrace
from usbtrace.errors import CaptureWarning, InputError
from usbtrace.formats.capture import Capture
from usbtrace.formats.follow import FollowStream
from usbtrace.pipeline import _Streamer, decode

WINDOW_S = 0.2  # a window ends at least this often while data arrives: the view's pace
FINISH_WAIT_S = 10.0  # how long finish() waits for the analysis to reach the end of the file


@dataclass
class FeedUpdate:
    requests: list[LiveRequest] = field(default_factory=list)
    warnings: list[IntegrityEvent] = field(default_factory=list)
    packets: int = 0  # packets in the complete part of the file so far
    seconds: float = 0.0  # what this poll cost, for spacing the next one


class LiveFeed(Protocol):
    def poll(self) -> FeedUpdate: ...

    def finish(self) -> FeedUpdate:
        """The writer has stopped: what is left, up to the end of the file."""
        ...

    def close(self) -> None: ...


class PipelineFeed:
    """The pipeline over a growing capture, once; see the module's note."""

    def __init__(self, path: str | Path, *, window_s: float = WINDOW_S) -> None:
        self.path = Path(path)
        self.window_s = window_s
        self.source = FollowStream(self.path)
        self.capture: Capture | None = None  # once the file's first bytes have arrived
        self._streamer = _Streamer({}, self._rows)
        self._pending = FeedUpdate()
        self._lock = threading.Lock()
        self._reported: set[str] = set()
        self._transfer_problems: dict[tuple[int, int], int] = {}  # per device, handed on
        self._last_window = time.monotonic()
        self.windows = 0  # windows analysed so far
        self._thread = threading.Thread(target=self._run, name="usbtrace-feed", daemon=True)
        self._thread.start()

    # -- the analysis thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with warnings.catch_warnings():
                # a warning printed to stderr would tear the live view; problems come as events
                warnings.simplefilter("ignore", CaptureWarning)
                self.capture = Capture(self.source.stream, str(self.path))
                decoded = decode(
                    self.capture,
                    partial_ok=True,
                    on_window=self._window,
                    window_due=self._due,
                )
            self._tail(decoded)
        except InputError as exc:
            if self.source.follower.offset:  # not for a file that never got its first block
                self._warn(f"live analysis stopped: {exc.message}")
        except Exception as exc:  # the view goes on and says why its figures stopped
            if not self.source.stream.closed:  # (else close() came first: as asked)
                self._warn(f"live analysis stopped: {type(exc).__name__}: {exc}")
        finally:
            self.source.stream.close()  # the follower stops at once if it was still copying

    def _window(self, decoder: Decoder) -> None:
        self.windows += 1
        self._streamer(decoder)

    def _due(self) -> bool:
        """A window ends when the analysis has caught up with the file (what is known now is
        shown now, however little arrives), or ``window_s`` after the last one while it is
        behind."""
        now = time.monotonic()
        if now - self._last_window < self.window_s and not self.source.drained():
            return False
        self._last_window = now
        return True

    def _rows(
        self,
        key: tuple[int, int],
        trace: EdgeTpuTrace,
        seg: Segmentation,
        table: RequestTable,
        k: int,
    ) -> None:
        """The pipeline's per-window hook: the window's first ``k`` requests are final."""
        log = self._streamer.logs[key]
        offset = log.count - k  # the log has taken them already
        self._hand_on(trace.name, table.rows[:k], offset)
        # worded as the summary words them, so that the end's full list repeats none
        for r, problems in sorted(table.problems.items()):
            if r < k:
                for p in problems:
                    self._warn(f"request {r + offset}: {p}")
        for _, text in log.transfer_problems[self._transfer_problems.get(key, 0) :]:
            self._warn(text)
        self._transfer_problems[key] = len(log.transfer_problems)

    def _tail(self, decoded: DecodedCapture) -> None:
        """At the end of the file: the requests no later data made final, and every integrity
        problem ``summarize`` names (drops, errors), computed once."""
        for trace in decoded.devices:
            key = (trace.bus, trace.address)
            log = self._streamer.logs.get(key)
            seg = segment_arrays(trace)
            self._hand_on(trace.name, all_request_metrics(trace, seg).rows, log.count if log else 0)
            for p in summarize_trace(decoded, trace, log).integrity.problems:
                self._warn(p)

    def _hand_on(self, device: str, rows: np.ndarray, offset: int) -> None:
        rows = rows[rows["has_event"]]
        inference = rows["kind"] == KINDS.index(KIND_INFERENCE)
        streamed = np.where(inference, rows["parameters"], 0).tolist()
        latency = ((rows["t_end_ns"] - rows["t_start_ns"]) / NS).tolist()
        new = [
            LiveRequest(device, i + offset, KINDS[k], t_end, lat, sent, VERDICTS[v])
            for i, k, t_end, lat, sent, v in zip(
                rows["index"].tolist(),
                rows["kind"].tolist(),
                rows["t_end_ns"].tolist(),
                latency,
                streamed,
                rows["verdict"].tolist(),
                strict=True,
            )
        ]
        with self._lock:
            self._pending.requests += new

    def _warn(self, message: str) -> None:
        with self._lock:
            if message not in self._reported:
                self._reported.add(message)
                self._pending.warnings.append(IntegrityEvent(message))

    # -- the view's side -------------------------------------------------------------------------

    def poll(self) -> FeedUpdate:
        t0 = time.perf_counter()
        follower = self.source.follower
        if follower.damage is not None:
            self._warn(f"capture file damaged {follower.damage}")
        with self._lock:
            update, self._pending = self._pending, FeedUpdate()
        update.packets = follower.packets
        update.seconds = time.perf_counter() - t0
        return update

    def finish(self) -> FeedUpdate:
        """The rest of the file, once the analysis reaches its end (at most ``FINISH_WAIT_S``:
        the capture's own summary follows, and must not wait on the view)."""
        deadline = time.monotonic() + FINISH_WAIT_S
        self.source.stop(FINISH_WAIT_S)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return self.poll()

    def close(self) -> None:
        self.source.close()
        self._thread.join(5)


FEED_NICE = 10  # the feed yields the processor to dumpcap and the program being captured


class SubprocessFeed:
    """A ``PipelineFeed`` in a child process; the same answers, none of the interpreter lock."""

    def __init__(self, path: str | Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "usbtrace.capture.live_feed", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal Ctrl-C is for the capture, not for the view
            text=True,
        )

    def poll(self) -> FeedUpdate:
        return self._ask("poll")

    def finish(self) -> FeedUpdate:
        return self._ask("finish")

    def _ask(self, what: str) -> FeedUpdate:
        proc = self.process
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(what + "\n")
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
    """The child's side: a "poll" or "finish" line on stdin, answered as one JSON line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, FEED_NICE)
    feed = PipelineFeed(path)
    try:
        for line in sys.stdin:  # ends when the parent closes the pipe, or dies
            update = feed.finish() if line.strip() == "finish" else feed.poll()
            sys.stdout.write(encode_update(update) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass
    finally:
        feed.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
