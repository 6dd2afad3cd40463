"""A stand-in for a user's own Edge TPU program: replays a recorded session with pyusb.

``python3 -m lab.testbed.replay_app CAPTURE --count N [--bus B]`` opens the device, runs the
recording's open sequence, N inferences (the first carries the parameter caching) and its close,
printing one line per inference, as a camera loop or a benchmark would. It knows nothing of
usbtrace's capture runner: the testbed wraps it with ``usbtrace capture -- python3 -m
lab.testbed.replay_app ...`` (and captures it with ``--attach``) to test those modes on a real
kernel USB stack. Exit status 0, 1 on a device or replay failure, 130 on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from usbtrace.capture.backends.replay import ReplayBackend
from usbtrace.errors import UsbtraceError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m lab.testbed.replay_app", description=__doc__)
    p.add_argument("capture", type=Path, help="the recorded session to replay")
    p.add_argument("--count", type=int, default=5, help="inferences (default: %(default)s)")
    p.add_argument("--bus", type=int, help="only a device on this USB bus")
    p.add_argument(
        "--interval", type=float, default=0.0, help="seconds between inferences (default: 0)"
    )
    p.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        help="wait this long before opening the device (default: 0)",
    )
    return p


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    backend = ReplayBackend(args.capture, bus=args.bus)
    opened = False
    try:
        backend.probe()
        time.sleep(args.start_delay)
        backend.open()
        opened = True
        for i in range(args.count):
            if i and args.interval:
                time.sleep(args.interval)
            t0 = time.perf_counter()
            backend.invoke()
            print(f"inference {i}: {(time.perf_counter() - t0) * 1e3:.2f} ms", flush=True)
    except KeyboardInterrupt:
        print("replay_app: interrupted", file=sys.stderr)
        return 130
    except UsbtraceError as exc:
        print(f"replay_app: {exc}", file=sys.stderr)
        return 1
    finally:
        if opened:
            backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
