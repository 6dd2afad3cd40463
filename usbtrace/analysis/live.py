"""Running figures of a capture still being written: what the live view shows.

The consumer side of the live view's narrow interface: it takes finished requests
(``LiveRequest``) and integrity warnings (``IntegrityEvent``) one at a time, from whatever feed
(``live_feed.py``), and keeps bounded state however long the capture runs: counts, and the last
``WINDOW`` inferences for rates, percentiles and the current verdict.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from usbtrace.analysis.metrics import VERDICT_NA, percentile
from usbtrace.analysis.requests import KIND_INFERENCE

WINDOW = 256  # inferences behind the rate, the percentiles and the current verdict
MAX_WARNINGS = 5  # the most recent ones shown; all are counted


@dataclass(frozen=True)
class LiveRequest:
    """One request whose completion event has been captured."""

    device: str  # "BUS.ADDRESS"
    index: int
    kind: str
    t_end_ns: int
    latency_s: float
    streamed_bytes: int  # parameters sent with an inference (0 for other kinds)
    verdict: str


@dataclass(frozen=True)
class IntegrityEvent:
    """A problem that makes the numbers doubtful, as soon as it is seen (drops, errors)."""

    message: str


@dataclass
class LiveStats:
    """Thread-safe: a feed thread adds, the drawing thread reads ``snapshot()``."""

    requests: int = 0
    inferences: int = 0
    warnings_seen: int = 0
    packets: int | None = None  # None until the feed has looked at the file once
    _recent: deque[LiveRequest] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _warnings: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_WARNINGS))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: LiveRequest) -> None:
        with self._lock:
            self.requests += 1
            if request.kind == KIND_INFERENCE:
                self.inferences += 1
                self._recent.append(request)

    def warn(self, event: IntegrityEvent) -> None:
        with self._lock:
            self.warnings_seen += 1
            self._warnings.append(event.message)

    def snapshot(self) -> LiveFigures:
        with self._lock:
            recent = list(self._recent)
            warnings = list(self._warnings)
            requests, inferences, seen = self.requests, self.inferences, self.warnings_seen
            packets = self.packets
        latencies = [r.latency_s for r in recent]
        rate = None
        if len(recent) >= 2:
            # both ends measured: the first and last completion of the window
            span = (recent[-1].t_end_ns - recent[0].t_end_ns) / 1e9
            rate = (len(recent) - 1) / span if span > 0 else None
        streamed = percentile([float(r.streamed_bytes) for r in recent], 50)
        votes = Counter(r.verdict for r in recent[-32:])
        return LiveFigures(
            requests=requests,
            inferences=inferences,
            packets=packets,
            window=len(recent),
            inferences_per_s=rate,
            latency_median_s=percentile(latencies, 50),
            latency_p90_s=percentile(latencies, 90),
            streamed_mb_per_inference=None if streamed is None else streamed / 1e6,
            verdict=votes.most_common(1)[0][0] if votes else VERDICT_NA,
            warnings=warnings,
            warnings_seen=seen,
        )


@dataclass(frozen=True)
class LiveFigures:
    requests: int
    inferences: int
    packets: int | None
    window: int  # inferences behind the figures below
    inferences_per_s: float | None
    latency_median_s: float | None
    latency_p90_s: float | None
    streamed_mb_per_inference: float | None
    verdict: str
    warnings: list[str]
    warnings_seen: int
