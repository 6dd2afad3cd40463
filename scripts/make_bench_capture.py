#!/usr/bin/env python3
"""Write a large synthetic Edge TPU-shaped usbmon capture for benchmarks; print what it took.

    python3 scripts/make_bench_capture.py --frames 1000000 --snaplen 128 bench/1M.pcapng
    python3 scripts/make_bench_capture.py --size 1.5G bench/big.pcapng

The capture is a whole session (enumeration, open, caching request, inferences back to back,
close) of a synthetic preset (default dense_300: parameter streaming every inference). Benchmark
scripts can call ``lab.synthetic.bench.make_bench_capture`` directly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the lab package lives in the checkout, outside the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.synthetic.bench import make_bench_capture, parse_size
from lab.synthetic.presets import PRESETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a large synthetic Edge TPU capture (usbmon pcapng) for benchmarks.",
    )
    parser.add_argument("out", type=Path, help="new pcapng file (refuses to overwrite)")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--frames", type=int, help="about this many records (at least)")
    size.add_argument("--size", help="about this many bytes, e.g. 1.5G or 200M")
    parser.add_argument(
        "--snaplen", type=int, default=128, help="captured bytes per record (default 128)"
    )
    parser.add_argument(
        "--preset",
        default="dense_300",
        choices=sorted(n for n in PRESETS if n not in ("two_tpus", "overlap_half")),
        help="which synthetic session to repeat (default dense_300)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)
    try:
        size_bytes = parse_size(args.size) if args.size else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.snaplen < 64:
        parser.error("--snaplen must be at least 64 (the usbmon header)")
    if args.out.exists() and not args.force:
        print(f"make_bench_capture: {args.out}: exists; use --force to overwrite", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = make_bench_capture(
        args.out,
        frames=args.frames,
        size=size_bytes,
        snaplen=args.snaplen,
        preset_name=args.preset,
        overwrite=args.force,
    )
    seconds = result.seconds
    print(
        f"{result.path}: {result.frames} frames, {result.bytes} bytes "
        f"({result.bytes / 2**20:.1f} MiB), {result.inferences} inferences, "
        f"written in {seconds:.2f} s ({result.frames / seconds / 1e6:.2f} M frames/s, "
        f"{result.bytes / seconds / 2**20:.0f} MiB/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
