#!/usr/bin/env python3
"""What `summarize --json` could reach at best in CPython + numpy, against tshark (issue 14).

    python3 scripts/bench_floor.py [--frames 1000000] [--dir bench]

Issue 14 asks `summarize --json` to run 30x faster than tshark's field extraction on the
1,000,000-frame benchmark capture. This prints, in the same run (best of 3 each, process start
to exit), what bounds that from below:

- the interpreter starting and exiting (`python -c pass`), and with numpy imported;
- usbtrace's own start and exit: `summarize --json` on a capture of one or two thousand
  frames;
- `scripts/floor_scan.py` on the 1 M-frame capture: reading it and taking the usbmon fields
  of every record, vectorised, and nothing else (no pairing, decoding, requests or output);
- `summarize --json` itself, and tshark.

The 30x budget is tshark's time / 30; the script says how much of it the floor leaves for
everything usbtrace does on top of the floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    bench_capture,
    best_of,
    compile_bytecode,
    frames_capture,
    timed_run,
    tshark_command,
)


def main() -> int:
    args, big = frames_capture(__doc__, 1_000_000)
    tiny = bench_capture(args.dir, "reader-1000.pcapng", frames=1000, snaplen=128)
    compile_bytecode()
    py = sys.executable
    floor_scan = str(Path(__file__).resolve().parent / "floor_scan.py")
    small = [py, "-m", "usbtrace", "summarize", "--json", str(tiny)]
    runs = [
        ("python -c pass", [py, "-c", "pass"]),
        ("python -c 'import numpy'", [py, "-c", "import numpy"]),
        (f"summarize --json, {tiny.stat().st_size / 2**20:.1f} MiB capture", small),
        ("floor_scan.py (read + usbmon fields)", [py, floor_scan, str(big)]),
        ("summarize --json", [py, "-m", "usbtrace", "summarize", "--json", str(big)]),
    ]
    times = {}
    for name, cmd in runs:
        times[name] = best_of(3, lambda cmd=cmd: timed_run(cmd)[0])
    tshark_s = best_of(2, lambda: timed_run(tshark_command(big))[0])
    budget = tshark_s / 30
    print(f"capture: {big} ({big.stat().st_size / 2**20:.1f} MiB, about {args.frames:,} frames)")
    for name, secs in times.items():
        print(f"{name:40s} {secs:6.3f} s  {tshark_s / secs:6.1f}x tshark")
    print(f"{'tshark -T fields (7 fields)':40s} {tshark_s:6.3f} s")
    floor = times["floor_scan.py (read + usbmon fields)"]
    print(f"30x budget: {budget:.3f} s; the floor alone takes {floor / budget:.0%} of it, leaving")
    print(f"{max(budget - floor, 0):.3f} s for pairing, decoding, requests and the JSON")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
