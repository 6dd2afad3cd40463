#!/usr/bin/env python3
"""The least a numpy program must do to summarize a pcapng usbmon capture (``bench_floor.py``).

    python3 scripts/floor_scan.py FILE

Reads the file, finds its enhanced packet blocks, and takes from each record's usbmon header the
fields any summary needs (URB id, type, endpoint, status, lengths, timestamp), vectorised, in
one thread. No pairing, no Edge TPU decoding, no requests, no output: whatever usbtrace does
on top of this costs more time, never less. Prints the record count and the bytes summed, so
the work cannot be skipped.
"""

from __future__ import annotations

import argparse
import mmap

import numpy as np

from usbtrace.formats.pcapng_writer import BT_EPB
from usbtrace.formats.usbmon import LINKTYPE_USB_LINUX_MMAPPED, header_dtype

EPB_DATA = 28  # an EPB's packet data starts 28 bytes into the block (pcapng, section 4.3)
FIELDS = ("urb_id", "type", "epnum", "status", "urb_len", "data_len", "ts_sec", "ts_usec")


def main(path: str) -> None:
    with open(path, "rb") as f:
        buf = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)
    words = buf[: len(buf) - len(buf) % 4].view("<u4")
    # the same candidate rule as the reader: a block type, a plausible length, and the length
    # repeated at the block's end
    w = np.flatnonzero(words[:-1] == BT_EPB)
    length = words[w + 1].astype(np.int64)
    ok = (length >= 32) & ((length & 3) == 0) & (w + length // 4 <= len(words))
    w, length = w[ok], length[ok]
    start = w[words[w + length // 4 - 1] == length] * 4 + EPB_DATA
    hdr = header_dtype(LINKTYPE_USB_LINUX_MMAPPED, "<")
    # each header as one row of a zero-copy window over the words: one row gather (the
    # reader's own trick), the cheapest way numpy has to copy a fixed span per record
    span = hdr.itemsize // 4
    if len(start) and int(start[-1] >> 2) + span > len(words):  # a header cut by the file's end
        start = start[:-1]
    rows = np.lib.stride_tricks.sliding_window_view(words, span)[start >> 2]
    h = rows.view(hdr).reshape(len(start))
    # a checksum of every field taken (wrapping), printed so that none of the work is skipped
    check = 0
    for name in FIELDS:
        check ^= int(h[name].astype(np.uint64).sum())
    print(len(start), check)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a usbmon pcapng capture")
    main(parser.parse_args().file)
