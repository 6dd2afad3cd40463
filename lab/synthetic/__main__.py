"""``python3 -m lab.synthetic PRESET OUT``: write a synthetic Edge TPU capture.

Also writes the exact ground truth as JSON with ``--truth``, for golden tests and fuzzing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from lab.synthetic.presets import PRESETS, preset
from lab.synthetic.session import write_session
from lab.synthetic.truth import truth_to_json

DESCRIPTION = """\
Write a synthetic Coral Edge TPU USB session as a usbmon pcapng file (link type 220), made by a
deterministic simulator of the driver, the link and the device. Presets: conv_50 and dense_300
reproduce the real captures' requests; overlap_full/overlap_half/overlap_none have an exactly
known overlap (1, 1/2, 0); dense_300_usb2, multi_ep, firmware and two_tpus cover modes known only
from the driver source. The file is marked synthetic (section comment and metadata block)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m lab.synthetic",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", choices=sorted(PRESETS), help="which session")
    parser.add_argument("out", type=Path, help="new pcapng file (refuses to overwrite)")
    parser.add_argument("--inferences", type=int, help="inferences per device (preset default 5)")
    parser.add_argument("--snaplen", type=int, default=128, help="captured bytes per record")
    parser.add_argument("--dropped", type=int, default=0, help="drop count for a statistics block")
    parser.add_argument("--no-metadata", action="store_true", help="leave out the metadata block")
    parser.add_argument(
        "--jitter-us",
        type=int,
        default=0,
        help="vary each inference's compute time by up to this many µs (reproducibly)",
    )
    parser.add_argument("--truth", type=Path, help="also write the ground truth as JSON here")
    parser.add_argument("--force", action="store_true", help="overwrite OUT and --truth")
    args = parser.parse_args(argv)
    if args.snaplen < 64:
        parser.error("--snaplen must be at least 64 (the usbmon header)")
    profile = preset(
        args.preset, snaplen=args.snaplen, dropped=args.dropped, metadata=not args.no_metadata
    )
    if args.inferences is not None and args.inferences < 1:
        parser.error("--inferences must be at least 1")
    if args.jitter_us < 0:
        parser.error("--jitter-us must not be negative")
    devices = tuple(
        replace(
            d.with_timing(compute_jitter_us=args.jitter_us),
            inferences=d.inferences if args.inferences is None else args.inferences,
        )
        for d in profile.devices
    )
    profile = replace(profile, devices=devices)
    for path in (args.out, args.truth):
        if path is not None and path.exists() and not args.force:
            print(f"lab.synthetic: {path}: exists; use --force to overwrite", file=sys.stderr)
            return 2
    session = write_session(profile, args.out, overwrite=args.force)
    if args.truth is not None:
        args.truth.write_text(json.dumps(truth_to_json(session.truth), indent=1) + "\n")
    truth = session.truth
    requests = sum(len(d.requests) for d in truth.devices)
    print(f"{args.out}: {truth.frames} frames, {len(truth.devices)} device(s), {requests} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
