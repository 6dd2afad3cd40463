#!/usr/bin/env python3
"""Write the committed synthetic sample captures (deterministic: same code, same bytes).

    python3 scripts/make_sample.py            # captures/sample-synthetic-{conv,dense}.pcapng
    python3 scripts/make_sample.py --check    # exit 1 if the committed files are out of date

* sample-synthetic-conv.pcapng: a conv_50-like session (caching request, 5 inferences, no
  streamed parameters), with a metadata block naming model conv_50 and the host invoke times.
* sample-synthetic-dense.pcapng: a dense_300-like session (2.8 MiB of parameters streamed every
  inference, link-bound).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the lab package lives in the checkout, outside the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.synthetic import preset, session_bytes

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "sample-synthetic-conv.pcapng": "conv_50",
    "sample-synthetic-dense.pcapng": "dense_300",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the synthetic sample captures.")
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "captures", help="where to write (default captures/)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare with the files already there"
    )
    parser.add_argument("--force", action="store_true", help="replace files whose contents differ")
    args = parser.parse_args(argv)
    stale = 0
    for filename, name in SAMPLES.items():
        path = args.dir / filename
        data, session = session_bytes(preset(name))
        current = path.read_bytes() if path.exists() else None
        if current == data:
            print(f"{path}: up to date ({len(data)} bytes)")
            continue
        stale += 1
        if args.check:
            print(f"{path}: out of date", file=sys.stderr)
            continue
        if current is not None and not args.force:
            print(f"{path}: exists with other contents; use --force to replace", file=sys.stderr)
            continue
        args.dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stale -= 1
        inferences = session.truth.devices[0].inferences
        print(
            f"{path}: {session.truth.frames} frames, {len(data)} bytes, "
            f"{len(inferences)} inferences of {inferences[-1].latency_us / 1000:.3f} ms"
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
