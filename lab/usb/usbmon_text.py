"""Write USB records in the usbmon text format (``/sys/kernel/debug/usb/usbmon/Nu``).

As ``drivers/usb/mon/mon_text.c`` prints them: the URB tag in hex, the timestamp in µs with the
seconds modulo 4096, the event, the address word, setup words or the status, the length and at most
32 data bytes in 4-byte words (or ``<`` / ``>`` when a read's submission or a write's completion
has no data).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from lab.usb.record import UsbRecord
from usbtrace.formats.usbmon import URB_COMPLETE, URB_SUBMIT, XFER_INTERRUPT, XFER_ISO
from usbtrace.formats.usbmon_text import DATA_MAX, LETTER_BY_XFER

_EVENT = {URB_SUBMIT: "S", URB_COMPLETE: "C"}


def line(rec: UsbRecord) -> str:
    seconds, micros = divmod(rec.ts_ns // 1000, 1_000_000)
    stamp = (seconds & 0xFFF) * 1_000_000 + micros
    direction = "i" if rec.epnum & 0x80 else "o"
    address = f"{LETTER_BY_XFER[rec.xfer]}{direction}:{rec.busnum}:{rec.devnum:03d}:"
    address += str(rec.epnum & 0x7F)
    words = [f"{rec.urb_id:x}", str(stamp), _EVENT.get(rec.urb_type, "E"), address]
    if rec.setup is not None and rec.urb_type == URB_SUBMIT:
        s = rec.setup
        words += ["s", f"{s[0]:02x}", f"{s[1]:02x}"]
        words += [f"{int.from_bytes(s[i : i + 2], 'little'):04x}" for i in (2, 4, 6)]
    elif rec.xfer in (XFER_INTERRUPT, XFER_ISO):
        words.append(f"{rec.status}:{rec.interval}")
    else:
        words.append(str(rec.status))
    words.append(str(rec.urb_len))
    data = rec.data[: min(rec.data_len, DATA_MAX)]
    if data:
        words.append("=")
        words += [data[i : i + 4].hex() for i in range(0, len(data), 4)]
    elif rec.urb_len:
        is_in = bool(rec.epnum & 0x80)
        if rec.urb_type == URB_SUBMIT and is_in:
            words.append("<")
        elif rec.urb_type != URB_SUBMIT and not is_in:
            words.append(">")
    return " ".join(words)


def write_usbmon_text(records: Iterable[UsbRecord], stream: TextIO) -> None:
    for rec in records:
        stream.write(line(rec) + "\n")
