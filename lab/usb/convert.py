"""``python3 -m lab.usb.convert IN OUT --to FORMAT``: a usbmon capture in another format.

The formats other than usbmon that usbtrace reads, each written by its lab writer from the same
``UsbRecord``s: USBPcap (``usbpcap``), macOS (``darwin``), usbmon text (``usbmon_text``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.usb.darwin import write_darwin
from lab.usb.source import read_usbmon
from lab.usb.usbmon_text import write_usbmon_text
from lab.usb.usbpcap import write_usbpcap

FORMATS = ("usbpcap-pcap", "usbpcap-pcapng", "darwin-pcap", "darwin-pcapng", "usbmon-text")


def convert(source: Path, out: Path, to: str, *, overwrite: bool = False) -> int:
    """Write ``source`` (usbmon pcap/pcapng) to a new file ``out`` as ``to``; records written."""
    src = read_usbmon(source)
    mode = "w" if overwrite else "x"
    if to == "usbmon-text":
        with open(out, mode, encoding="ascii") as text:
            write_usbmon_text(src.records, text)  # type: ignore[arg-type]
    else:
        kind, container = to.split("-")
        writer = write_usbpcap if kind == "usbpcap" else write_darwin
        with open(out, mode + "b") as stream:
            writer(
                src.records,
                stream,  # type: ignore[arg-type]
                container=container,
                comment=src.comment,
                custom_blocks=src.custom_blocks,
            )
    return len(src.records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.usb.convert", description=__doc__)
    parser.add_argument("source", type=Path, help="usbmon pcapng or pcap (link type 220)")
    parser.add_argument("out", type=Path, help="new file (refuses to overwrite)")
    parser.add_argument("--to", choices=FORMATS, required=True)
    args = parser.parse_args(argv)
    try:
        n = convert(args.source, args.out, args.to)
    except FileExistsError:
        print(f"lab.usb.convert: {args.out}: exists", file=sys.stderr)
        return 2
    print(f"{args.out}: {n} records as {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
