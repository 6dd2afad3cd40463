"""The usbmon binary header (Linux drivers/usb/mon/mon_bin.c) as numpy structured types.

Link type 220 carries the 64-byte "mmapped" header, link type 189 the 48-byte one (the same fields
up to the setup packet). Header fields are in the byte order of the capturing host, which is the
byte order of the pcap/pcapng section that holds them.
"""

from __future__ import annotations

import numpy as np

LINKTYPE_USB_LINUX = 189
LINKTYPE_USB_LINUX_MMAPPED = 220
HEADER_LEN_BY_LINKTYPE = {LINKTYPE_USB_LINUX: 48, LINKTYPE_USB_LINUX_MMAPPED: 64}

URB_SUBMIT = ord("S")
URB_COMPLETE = ord("C")
URB_ERROR = ord("E")  # submission failed: treated as a completion carrying an error status

XFER_ISO = 0
XFER_INTERRUPT = 1
XFER_CONTROL = 2
XFER_BULK = 3
XFER_NAMES = {
    XFER_ISO: "iso",
    XFER_INTERRUPT: "interrupt",
    XFER_CONTROL: "control",
    XFER_BULK: "bulk",
}

STATUS_IN_PROGRESS = -115  # -EINPROGRESS on every submit
STATUS_CANCELLED = -2  # -ENOENT: URB killed (timeout re-post, close)
STATUS_CONNRESET = -104  # -ECONNRESET: URB unlinked

_FIELDS_48 = [
    ("urb_id", "u8"),
    ("type", "u1"),
    ("xfer", "u1"),
    ("epnum", "u1"),
    ("devnum", "u1"),
    ("busnum", "u2"),
    ("flag_setup", "u1"),
    ("flag_data", "u1"),
    ("ts_sec", "i8"),
    ("ts_usec", "i4"),
    ("status", "i4"),
    ("urb_len", "u4"),
    ("data_len", "u4"),
    ("setup", "u1", (8,)),
]
_FIELDS_64 = [
    *_FIELDS_48,
    ("interval", "i4"),
    ("start_frame", "i4"),
    ("xfer_flags", "u4"),
    ("ndesc", "u4"),
]


def header_dtype(linktype: int, byteorder: str) -> np.dtype:
    """Structured dtype of the usbmon header for a link type, ``byteorder`` '<' or '>'."""
    fields = _FIELDS_64 if linktype == LINKTYPE_USB_LINUX_MMAPPED else _FIELDS_48
    return np.dtype([(str(f[0]), byteorder + str(f[1]), *f[2:]) for f in fields])
