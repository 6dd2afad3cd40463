"""``usbtrace inspect FILE``: every logical transfer, event, output and CSR access in time order."""

from __future__ import annotations

import argparse
import sys
import warnings

from usbtrace.edgetpu.decode import decode_capture
from usbtrace.report.inspect_view import device_heading, inspect_rows
from usbtrace.report.jsonout import write_json_lines
from usbtrace.report.table import Column, fmt_bytes, fmt_rate, render_table

COLUMNS = (
    Column("time s", "right", priority=90),
    Column("frame", "right", priority=40),
    Column("dir", priority=60),
    Column("ep", priority=70),
    Column("kind", priority=100),
    Column("bytes", "right", priority=95),
    Column("duration", "right", priority=80),
    Column("MB/s", "right", priority=75),
    Column("note", priority=50),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="list logical transfers, events, outputs and CSR accesses of a capture",
        description=(
            "Decode one usbmon capture (pcap or pcapng) and print, in time order, one line per "
            "Edge TPU logical bulk-OUT transfer (tag, length), completion event, output, "
            "interrupt, CSR read/write and firmware-download block. Times are seconds from the "
            "first record of the capture."
        ),
    )
    p.add_argument("file", help="capture file (.pcapng or .pcap, usbmon link type 220 or 189)")
    p.add_argument("--device", metavar="BUS.ADDR", help="decode this device (default: find it)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = decode_capture(args.file, args.device)
    for w in caught:
        print(f"usbtrace: warning: {w.message}", file=sys.stderr)
    if not decoded.devices:
        others = ", ".join(f"{b}.{a}" for b, a, _ in decoded.other_devices) or "none"
        print(
            f"usbtrace: {args.file}: no Edge TPU found (devices seen: {others}); "
            "name one with --device BUS.ADDR",
            file=sys.stderr,
        )
        return 1
    t0 = decoded.first_ts_ns
    for trace in decoded.devices:
        rows = inspect_rows(trace)
        if args.json:
            write_json_lines(r.to_json(trace.name) for r in rows)
            continue
        cells = [
            [
                f"{(r.t_ns - t0) / 1e9:.6f}",
                str(r.frame),
                r.direction,
                f"{r.endpoint:#04x}",
                r.kind,
                fmt_bytes(r.nbytes),
                "-" if r.duration_ns is None else f"{r.duration_ns / 1e6:.3f} ms",
                fmt_rate(r.rate_bps),
                r.note,
            ]
            for r in rows
        ]
        render_table(COLUMNS, cells, title=device_heading(decoded, trace))
        for p in trace.problems:
            print(f"usbtrace: {args.file}: {trace.name}: {p}", file=sys.stderr)
    return 0
