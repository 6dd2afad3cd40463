#!/usr/bin/env python3
"""Reader benchmark (issue "usbtrace core"): usbtrace read + decode against tshark's field dump.

    python3 scripts/bench_reader.py [--frames 1000000] [--big-size 1.5G] [--dir bench]

1. Makes (once) a synthetic 1,000,000-frame Edge TPU capture, snaplen 128.
2. Times, in the same run, usbtrace reading and decoding it (in process, best of 3) and
   ``tshark -r FILE -T fields -e frame.time_epoch -e usb.urb_type -e usb.transfer_type
   -e usb.endpoint_address -e usb.urb_len -e usb.data_len -e usb.capdata`` (best of 2).
3. Checks usbtrace's per-endpoint URB counts and urb_len/data_len totals equal tshark's.
4. Measures usbtrace's peak RSS decoding a 1.5 GB capture (made once), in a fresh process.
Prints every figure, the ratio, and whether each target is met (20x tshark, 2M frames/s, same
totals, < 200 MB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    bench_capture,
    best_of,
    child_peak_rss_kib,
    default_dir,
    timed_run,
    tshark_command,
)

from lab.synthetic.bench import parse_size
from usbtrace.formats.crosscheck import compare, ours, tshark_tally
from usbtrace.pipeline import decode_capture


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--big-size", default="1.5G", help="size of the memory-test capture")
    ap.add_argument(
        "--big-snaplen",
        type=int,
        default=0,
        help="snaplen of the memory-test capture (0: whole URBs up to usbmon's cap, "
        "as dumpcap's default keeps them)",
    )
    ap.add_argument("--dir", type=Path, default=default_dir())
    ap.add_argument("--skip-big", action="store_true")
    args = ap.parse_args()

    path = bench_capture(args.dir, f"reader-{args.frames}.pcapng", frames=args.frames, snaplen=128)

    def ours_once() -> float:
        t = time.perf_counter()
        decode_capture(path)
        return time.perf_counter() - t

    ours_s = best_of(3, ours_once)
    frames = decode_capture(path).info.packets
    tshark_s = best_of(2, lambda: timed_run(tshark_command(path))[0])
    ratio = tshark_s / ours_s
    rate = frames / ours_s
    diffs = compare(ours(path), tshark_tally(path))

    print(f"capture: {path} ({path.stat().st_size / 2**20:.1f} MiB, {frames:,} frames)")
    print(f"usbtrace read+decode: {ours_s:.3f} s = {rate / 1e6:.2f} M frames/s")
    print(f"tshark -T fields (7 fields incl. usb.capdata): {tshark_s:.3f} s")
    print(f"ratio: {ratio:.1f}x tshark")
    print(f"per-endpoint totals vs tshark: {'identical' if not diffs else diffs[:3]}")
    ok = ratio >= 20 and rate >= 2e6 and not diffs
    print(f"target >= 20x tshark: {'met' if ratio >= 20 else 'NOT met'}")
    print(f"target >= 2,000,000 frames/s: {'met' if rate >= 2e6 else 'NOT met'}")

    if not args.skip_big:
        size = parse_size(args.big_size)
        big = bench_capture(
            args.dir,
            f"reader-big-{args.big_size}-snap{args.big_snaplen}.pcapng",
            size=size,
            snaplen=args.big_snaplen or 65_536,
        )
        code = (
            "from usbtrace.pipeline import decode_capture\n"
            f"d = decode_capture({str(big)!r})\n"
            "print(d.info.packets)\n"
        )
        secs, kib = child_peak_rss_kib(code)
        mib = kib / 1024
        print(
            f"big capture: {big} ({big.stat().st_size / 2**30:.2f} GiB): decoded in {secs:.1f} s "
            f"({big.stat().st_size / 2**20 / secs:.0f} MiB/s), peak RSS {mib:.0f} MiB"
        )
        print(f"target peak RSS < 200 MB: {'met' if mib * 1.048576 < 200 else 'NOT met'}")
        ok = ok and mib * 1.048576 < 200
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
