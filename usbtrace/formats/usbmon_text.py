"""The usbmon text format (``/sys/kernel/debug/usb/usbmon/Nu``) read into usbmon records.

One line per event, words separated by spaces (Linux ``Documentation/usb/usbmon.rst``, the "1u"
format)::

    ffff8f0c8e2f4c00 3575914555 S Ci:1:004:0 s c0 01 a30c 0001 0008 8 <
    ffff8f0c8e2f4c00 3575914560 C Ci:1:004:0 0 8 = 00000000 00000000
    ffff8f0c4b1e9000 3575915001 S Bo:1:004:1 -115 8 = 0c6d0100 00000000

URB tag; timestamp in µs; event type S/C/E; address word (transfer type C/Z/I/B and direction i/o,
bus, device, endpoint number); setup words (``s`` then bmRequestType, bRequest, wValue, wIndex,
wLength) or the status (``status:interval`` for interrupt, ``status:interval:start_frame`` for
isochronous); the length (urb_len); then ``=`` and up to 32 data bytes in words of 4 bytes, or a
character saying why there is no data (``<`` a read's submission, ``>`` a write's completion).

What the format does not carry (see the README's format table): the timestamp is the kernel's
monotonic clock in µs with the seconds taken modulo 4096, so times are seconds since an unknown
origin, not since the epoch (the reader unwraps the 4096 s turns); only the first 32 data bytes of
an event (the decoder needs 16); usbmon's own data_len (taken as the bytes shown); transfer flags.
Isochronous descriptors are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from usbtrace.errors import InputError
from usbtrace.formats.records import HEAD_BYTES, RECORD, RecordBatch
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_ERROR,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
    XFER_ISO,
)

FORMAT_NAME = "usbmon-text"
DATA_MAX = 32  # bytes of data mon_text.c prints per event
SETUP_LEN = 8
TIMESTAMP_TURN_US = 4096 * 1_000_000  # mon_text keeps the monotonic seconds modulo 4096
LINES_PER_BATCH = 1 << 16  # bounds the memory of one batch
XFER_BY_LETTER = {"Z": XFER_ISO, "I": XFER_INTERRUPT, "C": XFER_CONTROL, "B": XFER_BULK}
LETTER_BY_XFER = {v: k for k, v in XFER_BY_LETTER.items()}
TYPE_BY_LETTER = {"S": URB_SUBMIT, "C": URB_COMPLETE, "E": URB_ERROR}

# the first line of a text capture: tag, timestamp, event, address word
_LINE = re.compile(rb"^[0-9a-f]{1,16} \d{1,10} [SCE] [CZIB][io]:\d{1,3}:\d{1,3}:\d{1,2} ")


def looks_like(head: bytes) -> bool:
    """Whether a file starting with ``head`` is usbmon text (by content, not by name)."""
    first = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    return bool(_LINE.match(first))


class UsbmonTextReader:
    """Streams a text capture in batches of records; ``frame`` numbers count events."""

    def __init__(self, path: str | Path, stream: BinaryIO, keep_data: bool = False) -> None:
        self.path = path
        self.stream = stream
        self.keep_data = keep_data  # every event's data in ``RecordBatch.data`` (replay)
        self.events = 0
        self.turns = 0  # 4096 s turns of the timestamp seen so far
        self.last_us: int | None = None

    def batches(self) -> Iterator[RecordBatch]:
        offset = 0
        lines: list[tuple[int, bytes]] = []
        error: InputError | None = None
        for raw in self.stream:
            at = offset
            offset += len(raw)
            line = raw.strip()
            if not line:
                continue
            lines.append((at, line))
            if len(lines) >= LINES_PER_BATCH:
                batch, error = self._parse(lines)
                lines = []
                yield batch
                if error is not None:
                    raise error
        if lines:
            batch, error = self._parse(lines)
            yield batch
            if error is not None:
                raise error

    def _parse(self, lines: list[tuple[int, bytes]]) -> tuple[RecordBatch, InputError | None]:
        """Records of ``lines``; stops at the first malformed line (returned as the error).

        Each line is split in Python (the words vary in number and kind), its numbers collected
        in lists and its setup and first data bytes in one buffer; the records are then filled
        column by column with numpy (a field assignment per line was most of the time).
        """
        ints: list[tuple[int, ...]] = []
        tags: list[int] = []
        raw = bytearray()  # per line: 8 setup bytes, then HEAD_BYTES data bytes
        payloads: dict[int, bytes] = {}
        kept: dict[int, bytes] = {}
        error: InputError | None = None
        zero_setup = bytes(SETUP_LEN)
        for at, line in lines:
            try:
                words = line.decode("ascii").split()
                tag, stamp, event, address = int(words[0], 16), int(words[1]), words[2], words[3]
                xfer = XFER_BY_LETTER[address[0]]
                _, bus_s, dev_s, ep_s = address.split(":")
                bus, dev = int(bus_s), int(dev_s)
                epnum = int(ep_s) | (0x80 if address[1] == "i" else 0)
                rest = words[4:]
                setup = None
                if rest[0] == "s":
                    setup = bytes.fromhex("".join(rest[1:6]))
                    # wValue, wIndex, wLength are printed as 16-bit numbers: to little-endian
                    setup = setup[:2] + b"".join(setup[i + 1 : i - 1 : -1] for i in (2, 4, 6))
                    status, rest = STATUS_IN_PROGRESS, rest[6:]
                else:
                    status, rest = int(rest[0].split(":")[0]), rest[1:]
                if xfer == XFER_ISO and rest and event != "S":
                    rest = rest[1:]  # error count
                if xfer == XFER_ISO and rest:
                    rest = rest[1 + int(rest[0]) :]  # descriptors
                length = int(rest[0])
                data = b""
                flag = 0
                if len(rest) > 1:
                    if rest[1] == "=":
                        data = bytes.fromhex("".join(rest[2:]))[:DATA_MAX]
                    else:
                        flag = ord(rest[1][0])
                if (
                    event not in TYPE_BY_LETTER
                    or len(setup or zero_setup) != SETUP_LEN
                    or not (0 <= bus <= 0xFFFF and 0 <= dev <= 0xFF and 0 <= epnum <= 0xFF)
                    or not (0 <= length < 1 << 32 and -(1 << 31) <= status < 1 << 31)
                    or not (0 <= stamp < 1 << 53 and tag < 1 << 64)
                ):
                    raise ValueError(line)
            except (ValueError, IndexError, KeyError, UnicodeDecodeError):
                error = InputError(self.path, "not a usbmon text event line", at)
                break
            self.events += 1
            tags.append(tag)
            ints.append(
                (
                    self.events,
                    stamp,
                    TYPE_BY_LETTER[event],
                    xfer,
                    epnum,
                    dev,
                    bus,
                    status,
                    length,
                    len(data),
                    0 if setup is not None else ord("-"),
                    flag,
                )
            )
            raw += setup or zero_setup
            raw += data[:HEAD_BYTES].ljust(HEAD_BYTES, b"\0")
            if xfer == XFER_CONTROL and data:
                payloads[self.events] = data
            if self.keep_data and data:
                kept[self.events] = data
        n = len(ints)
        out = np.zeros(n, dtype=RECORD)
        if n:
            cols = np.array(ints, dtype=np.int64).T
            frame, stamp_us, utype, xf, ep, dv, bs, st, ln, dl, fs, fd = cols
            blob = np.frombuffer(bytes(raw), np.uint8).reshape(n, SETUP_LEN + HEAD_BYTES)
            hdr = out["hdr"]
            out["frame"] = frame
            hdr["urb_id"] = np.array(tags, dtype=np.uint64)
            hdr["type"], hdr["xfer"], hdr["epnum"], hdr["devnum"] = utype, xf, ep, dv
            hdr["busnum"], hdr["status"], hdr["urb_len"], hdr["data_len"] = bs, st, ln, dl
            hdr["flag_setup"], hdr["flag_data"] = fs, fd
            hdr["setup"] = blob[:, :SETUP_LEN]
            out["head"] = blob[:, SETUP_LEN:]
            out["caplen"] = dl
            ts_us = self._unwrap(stamp_us)
            out["ts_ns"] = ts_us * 1000
            hdr["ts_sec"], hdr["ts_usec"] = np.divmod(ts_us, 1_000_000)
        return RecordBatch(out, payloads, data=kept), error

    def _unwrap(self, ts_us: np.ndarray) -> np.ndarray:
        """Undo the timestamp's 4096 s turns: a step back of more than half a turn is a turn."""
        if not len(ts_us):
            return ts_us
        prev = np.empty_like(ts_us)
        prev[0] = ts_us[0] if self.last_us is None else self.last_us
        prev[1:] = ts_us[:-1]
        turned = (prev - ts_us) > TIMESTAMP_TURN_US // 2
        turns = self.turns + np.cumsum(turned)
        self.turns = int(turns[-1])
        self.last_us = int(ts_us[-1])
        return ts_us + turns * TIMESTAMP_TURN_US
