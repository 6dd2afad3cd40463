"""Read + decode speed of each capture format on the same synthetic session; prints figures.

The session (dense_300-shaped, ``--inferences`` of them) is written as usbmon pcapng (the
reference), USBPcap pcap/pcapng, macOS pcap/pcapng and usbmon text by the lab's writers, then each
file is decoded in process (best of ``--repeat``). No timing is asserted anywhere: this prints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.synthetic import generate, preset
from lab.usb.darwin import write_darwin
from lab.usb.usbmon_text import write_usbmon_text
from lab.usb.usbpcap import write_usbpcap
from lab.usb.writer import write_capture
from usbtrace.pipeline import decode_capture


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inferences", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profile = preset("dense_300")
    devices = tuple(replace(d, inferences=args.inferences) for d in profile.devices)
    session = generate(replace(profile, devices=devices))
    records = session.records
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {"usbmon-pcapng": root / "s.pcapng"}
        write_capture(files["usbmon-pcapng"], records)
        for kind, writer in (("usbpcap", write_usbpcap), ("darwin", write_darwin)):
            for container in ("pcap", "pcapng"):
                path = root / f"s.{kind}.{container}"
                with open(path, "xb") as stream:
                    writer(records, stream, container=container)
                files[f"{kind}-{container}"] = path
        files["usbmon-text"] = root / "s.txt"
        with open(files["usbmon-text"], "x", encoding="ascii") as text:
            write_usbmon_text(records, text)
        print(f"{len(records):,} records, {args.inferences} inferences (dense_300-shaped)")
        print(f"{'format':16} {'MiB':>8} {'best s':>8} {'records/s':>12} {'vs usbmon':>10}")
        reference = None
        for name, path in files.items():
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                decoded = decode_capture(path)
                best = min(best, time.perf_counter() - t0)
            assert decoded.devices, name
            reference = reference or best
            mib = path.stat().st_size / 2**20
            rate = len(records) / best
            print(f"{name:16} {mib:8.1f} {best:8.3f} {rate:12,.0f} {best / reference:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
