"""What the live view's feed costs while a capture grows: prints figures, asserts nothing.

A synthetic capture (``lab.synthetic``) is written into a new file piece by piece over
``--seconds``, as dumpcap would (pieces end anywhere, also inside blocks), while the live view
follows it as during ``usbtrace capture`` (``LiveView`` with its console sent to a buffer), except
that the feed's analysis runs in this process (``PipelineFeed``) rather than in the child process
``usbtrace capture`` gives it, so that its cost can be measured. Prints the polls and windows
made, the bytes the feed read against the file's size, the processor time used as a share of the
wall time, how long after the last byte the view had every request (without the end of the
capture being announced: the last request in flight comes only with ``finish()``), and whether
its counts after ``finish()`` equal ``summarize``'s.

    python3 scripts/bench_live_feed.py --preset dense_300 --inferences 3000 --seconds 30
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from usbtrace.capture.live_feed import FeedUpdate, PipelineFeed  # noqa: E402
from usbtrace.pipeline import summarize_file  # noqa: E402
from usbtrace.report.live_view import LiveView  # noqa: E402


class MeteredFeed(PipelineFeed):
    """The real feed, with each poll's wall time kept (the analysis runs in its own threads:
    its processor time is in the whole process's)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.costs: list[float] = []

    def poll(self) -> FeedUpdate:
        update = super().poll()
        self.costs.append(update.seconds)
        return update


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="dense_300")
    p.add_argument("--inferences", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20.0, help="time over which the file grows")
    p.add_argument("--piece", type=int, default=48_017, help="bytes appended at a time")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.pcapng"
        subprocess.run(
            [
                *(sys.executable, "-m", "lab.synthetic", args.preset, str(source)),
                *("--inferences", str(args.inferences), "--no-metadata"),
            ],
            check=True,
            cwd=PROJECT,
        )
        data = source.read_bytes()
        truth = summarize_file(source)
        expected = sum(len(s.requests) for s in truth)
        growing = Path(tmp) / "growing.pcapng"
        growing.write_bytes(b"")

        feeds: list[MeteredFeed] = []

        def factory(path: Path) -> MeteredFeed:
            feeds.append(MeteredFeed(path))
            return feeds[-1]

        view = LiveView(console=Console(file=io.StringIO(), width=160), feed_factory=factory)
        view.start(growing)
        pieces = range(0, len(data), args.piece)
        pause = args.seconds / max(1, len(pieces))
        t0, cpu0 = time.monotonic(), time.process_time()

        def write() -> None:
            with open(growing, "ab", buffering=0) as f:
                for i in pieces:
                    f.write(data[i : i + args.piece])
                    time.sleep(pause)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        written = time.monotonic()
        # all but each device's last request: final only once the end of the capture is known
        while view.stats.requests < expected - len(truth) and time.monotonic() - written < 120:
            time.sleep(0.02)
        caught_up, cpu = time.monotonic(), time.process_time() - cpu0
        view.stop()  # finish(): the rest
        wall = caught_up - t0
        feed = feeds[0]
        costs = sorted(feed.costs)
        print(f"capture: {args.preset}, {len(data) / 2**20:.1f} MiB, {expected} requests,")
        print(f"  written in {written - t0:.1f} s ({len(data) / 2**20 / (written - t0):.2f} MiB/s)")
        print(
            f"feed: {len(costs)} polls, cost median {costs[len(costs) // 2] * 1e3:.2f} ms,"
            f" max {costs[-1] * 1e3:.2f} ms; {feed.windows} windows; read"
            f" {feed.source.follower.bytes_read / 2**20:.1f} MiB of a"
            f" {len(data) / 2**20:.1f} MiB file; whole process (feed and its threads, the"
            f" drawing, the writer) {cpu:.2f} s = {100 * cpu / wall:.1f} % of one core"
            f" over {wall:.1f} s"
        )
        print(f"view had all but the last request {caught_up - written:.2f} s after the last byte")
        print(
            f"view counts: requests {view.stats.requests} (summarize {expected}),"
            f" inferences {view.stats.inferences}"
            f" (summarize {sum(len(s.inferences) for s in truth)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
