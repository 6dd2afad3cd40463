"""``usbtrace verify FILE``: does usbtrace read the file exactly as Wireshark does?"""

from __future__ import annotations

import argparse
import os
import stat
import sys

from usbtrace.errors import InputError, printable
from usbtrace.formats.capture import STDIN
from usbtrace.formats.crosscheck import compare, ours, pyshark_tally, tshark_tally
from usbtrace.report.table import Column, render_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="cross-check usbtrace's reader against Wireshark's dissection of the same file",
        description=(
            "Read FILE with usbtrace and with Wireshark (tshark -T fields, or pyshark) and "
            "compare the frame count, first and last timestamps, and per device endpoint and URB "
            "type the record counts and urb_len/data_len totals. Prints agreement or the first "
            "differences; exit 0 when they agree, 1 when they differ, 2 when Wireshark cannot "
            "read the file (usbmon text). Needs Debian's tshark."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="captures (pcap or pcapng)")
    p.add_argument(
        "--engine",
        choices=("tshark", "pyshark"),
        default="tshark",
        help="Wireshark front end to compare with (pyshark is much slower)",
    )
    p.add_argument(
        "--max-differences",
        type=int,
        default=10,
        metavar="N",
        help="differences printed per file (10)",
    )
    p.set_defaults(func=run)


def _read_twice(path: str) -> None:
    """Refuse what cannot be read twice. usbtrace reads the file, then Wireshark reads it
    again: from standard input or a FIFO, Wireshark found the stream used up and the verdict
    was "DIFFERENT" (tshark: 0 frames), or tshark waited forever on the FIFO for a writer."""
    try:
        mode = os.stat(path).st_mode if path != STDIN else None
    except OSError:
        return  # missing, unreadable: the reader says so, in its words
    if mode is None or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(
            path,
            "verify reads the file twice (usbtrace, then Wireshark): give a regular file, "
            "not standard input, a pipe or a device",
        )


def run(args: argparse.Namespace) -> int:
    status = 0
    other = tshark_tally if args.engine == "tshark" else pyshark_tally
    for path in args.files:
        _read_twice(path)  # all of them before any is compared
    for path in args.files:
        mine = ours(path)
        theirs = other(path)
        diffs = compare(mine, theirs, ("usbtrace", args.engine))
        if diffs:
            status = 1
            print(f"{printable(path)}: DIFFERENT from {args.engine} ({len(diffs)} difference(s))")
            for d in diffs[: args.max_differences]:
                print(f"  {d}")
            continue
        rows = [
            [f"{b}.{d}", f"{ep:#04x}", t, f"{c:,}", f"{u:,}", f"{dl:,}"]
            for (b, d, ep, t), (c, u, dl) in sorted(mine.per_endpoint.items())
        ]
        render_table(
            [
                Column("device"),
                Column("ep"),
                Column("type"),
                Column("URBs", "right"),
                Column("urb_len", "right"),
                Column("data_len", "right"),
            ],
            rows,
            title=f"{path}: agrees with {args.engine}: {mine.frames:,} frames",
            stream=sys.stdout,
        )
    return status
