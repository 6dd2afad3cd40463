#!/usr/bin/env python3
"""summarize benchmark (issue "summarize"): `usbtrace summarize --json` end to end vs tshark.

    python3 scripts/bench_summarize.py [--frames 1000000] [--dir bench]

On the same synthetic 1,000,000-frame capture as the reader benchmark, times (best of 3) the
whole `python -m usbtrace summarize --json FILE` process from start to exit, and (best of 2)
tshark's field extraction with usb.capdata; prints both, the ratio and frames/s (targets of
issue 14: 30x or more, 3 M frames/s or more).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    best_of,
    compile_bytecode,
    frames_capture,
    timed_run,
    tshark_command,
)


def main() -> int:
    args, path = frames_capture(__doc__, 1_000_000)
    compile_bytecode()
    cmd = [sys.executable, "-m", "usbtrace", "summarize", "--json", str(path)]
    ours_s = best_of(3, lambda: timed_run(cmd)[0])
    tshark_s = best_of(2, lambda: timed_run(tshark_command(path))[0])
    ratio = tshark_s / ours_s
    print(f"capture: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"usbtrace summarize --json (process start to exit): {ours_s:.3f} s")
    print(f"tshark -T fields (7 fields incl. usb.capdata): {tshark_s:.3f} s")
    frames = args.frames
    print(f"{frames / ours_s / 1e6:.2f} M frames/s (about {frames:,} frames)")
    ok = ratio >= 30 and frames / ours_s >= 3e6
    verdict = "met" if ok else "NOT met"
    print(f"ratio: {ratio:.1f}x tshark; targets >= 30x and >= 3 M frames/s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
