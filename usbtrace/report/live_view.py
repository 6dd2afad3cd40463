"""The live view while ``usbtrace capture`` runs: rich Live on stderr, fed as dumpcap writes.

A feed thread polls the feed (``usbtrace.capture.live_feed``; by default it analyses in a child
process at nice 10) and adds what it finds to the running figures (``LiveStats``); rich redraws
them four times a second from its own thread. Polls are spaced by three times what the last one
cost, so the capture (dumpcap, the user's program, the model's inferences) keeps the processor.
Only figures that can be true are drawn: a rate needs two completions, a percentile one
inference.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from usbtrace.analysis.live import LiveFigures, LiveStats
from usbtrace.capture.live_feed import FeedUpdate, LiveFeed, SubprocessFeed

REFRESH_PER_S = 4
MIN_POLL_S = 0.25
POLL_COST_FACTOR = 3.0  # wait at least this many times what the last poll took
FEED_NICE = 10


def render_lines(figures: LiveFigures, elapsed_s: float, path: str) -> list[str]:
    """The view as plain lines (what the terminal shows, without colour)."""
    f = figures
    packets = "reading the capture" if f.packets is None else f"{f.packets:,} packets"
    lines = [f"usbtrace live  {path}  {elapsed_s:.1f} s  {packets}"]
    rate = "-" if f.inferences_per_s is None else f"{f.inferences_per_s:.1f}"
    lines.append(f"requests {f.requests}  inferences {f.inferences}  inf/s {rate}")
    if f.window:
        med = f"{f.latency_median_s * 1e3:.2f} ms" if f.latency_median_s is not None else "-"
        p90 = f"{f.latency_p90_s * 1e3:.2f} ms" if f.latency_p90_s is not None else "-"
        mb = f.streamed_mb_per_inference
        streamed = "-" if mb is None else f"{mb:.2f}"
        lines.append(
            f"latency median {med}  p90 {p90}  streamed MB/inference {streamed}"
            f"  verdict {f.verdict}  (last {f.window} inferences)"
        )
    if f.warnings_seen:
        lines.append(f"integrity: {f.warnings_seen} warning(s)")
        lines += [f"  ! {w}" for w in f.warnings]
    else:
        lines.append("integrity: ok so far")
    return lines


class _Renderable:
    def __init__(self, view: LiveView) -> None:
        self.view = view

    def __rich__(self) -> Text:
        v = self.view
        lines = render_lines(v.stats.snapshot(), time.monotonic() - v.started, v.label)
        text = Text("\n".join(lines))
        text.highlight_regex(r"  ! .*", "bold yellow")
        return text


class _Relay:
    """A wrapped command's output, printed above the view line by line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.partial: dict[str, str] = {}
        self.lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            buffered = self.partial.get(stream, "") + text
            *lines, self.partial[stream] = buffered.split("\n")
            for line in lines:
                self.console.print(line, markup=False, highlight=False, emoji=False)

    def flush(self) -> None:
        with self.lock:
            for rest in self.partial.values():
                if rest:
                    self.console.print(rest, markup=False, highlight=False, emoji=False)
            self.partial.clear()


class LiveView:
    """``RunnerHooks.live``: started once dumpcap writes, stopped before it is stopped."""

    def __init__(
        self,
        console: Console | None = None,
        feed_factory: Callable[[Path], LiveFeed] = SubprocessFeed,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.feed_factory = feed_factory
        self.stats = LiveStats()
        self.started = time.monotonic()
        self.label = ""
        self._live: Live | None = None
        self._relay = _Relay(self.console)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feed: LiveFeed | None = None

    def start(self, path: Path) -> None:
        self.label = path.name
        self.started = time.monotonic()
        self._feed = self.feed_factory(path)
        self._live = Live(
            _Renderable(self),
            console=self.console,
            refresh_per_second=REFRESH_PER_S,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        self._thread = threading.Thread(target=self._follow, name="usbtrace-live", daemon=True)
        self._thread.start()

    def relay(self) -> _Relay:
        return self._relay

    def _follow(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # lower this thread only (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FEED_NICE)
        assert self._feed is not None
        while not self._stop.is_set():
            try:
                update = self._feed.poll()
            except Exception as exc:  # the view must never take the capture down
                self.console.print(f"usbtrace: live view stopped: {type(exc).__name__}: {exc}")
                return
            self._apply(update)
            self._stop.wait(max(MIN_POLL_S, POLL_COST_FACTOR * update.seconds))

    def _apply(self, update: FeedUpdate) -> None:
        self.stats.packets = update.packets
        for request in update.requests:
            self.stats.add(request)
        for warning in update.warnings:
            self.stats.warn(warning)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._relay.flush()
        if self._feed is not None:
            with contextlib.suppress(Exception):  # dumpcap has stopped: the rest of the file
                self._apply(self._feed.finish())
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
        if self._feed is not None:
            self._feed.close()
