"""What kind of capture a file holds, by its first bytes and never by its name.

Used wherever a file must not be mistaken for something else: above all by the output guard
(``usbtrace/cli/outputs.py``), which refuses to replace any file that holds a capture, whatever it
is called. Readers of new formats add their magic here so that the guard protects them too.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from usbtrace.formats import usbmon_text

SNIFF_BYTES = 512  # enough for every magic below and the first line of a usbmon text capture

_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
# pcap's magic in both byte orders: microseconds, nanoseconds, and Kuznetzov's modified pcap
_PCAP_MAGICS = tuple(
    m.to_bytes(4, order)
    for m in (0xA1B2C3D4, 0xA1B23C4D, 0xA1B2CD34)
    for order in ("little", "big")
)
_GZIP = b"\x1f\x8b"
# usbmon's text interface (Documentation/usb/usbmon.rst): URB tag, timestamp, event type,
# then the address word, "Bi:1:002:1" (1u format) or "Bi:002:1" (0u/1t)
_USBMON_TEXT = re.compile(rb"^[0-9a-fA-F]{4,16} +-?\d+ +[SCE] +[CBIZ][io]:(\d+:)?\d+:\d+")


def capture_format(head: bytes) -> str | None:
    """``"pcapng"``, ``"pcap"`` (USBPcap writes pcap too), ``"usbmon-text"``, the same with
    ``+gzip``, or None when the bytes do not start a capture."""
    if head.startswith(_PCAPNG_SHB):
        return "pcapng"
    if head[:4] in _PCAP_MAGICS:
        return "pcap"
    if head.startswith(_GZIP):
        try:  # a gzip-compressed capture (Wireshark reads them): look at what it starts with
            inner = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, SNIFF_BYTES)
        except zlib.error:
            return None
        fmt = capture_format(inner) if inner and not inner.startswith(_GZIP) else None
        return None if fmt is None else f"{fmt}+gzip"
    first = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    # the reader's own test, and a looser one: older usbmon text formats are captures too
    if usbmon_text.looks_like(head) or _USBMON_TEXT.match(first):
        return usbmon_text.FORMAT_NAME
    return None


def file_capture_format(path: str | Path) -> str | None:
    """The capture format of an existing regular file (see ``capture_format``). OSError
    propagates: a file that cannot be read cannot be shown not to be a capture."""
    with open(path, "rb") as f:
        return capture_format(f.read(SNIFF_BYTES))
