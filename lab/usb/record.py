"""One usbmon event as the lab's generators describe it, and its binary header.

Field names are those of the usbmon header (``usbtrace.formats.usbmon.header_dtype``), so a
record reads like the row the product's reader makes of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from usbtrace.formats.usbmon import (
    HEADER_LEN_BY_LINKTYPE,
    LINKTYPE_USB_LINUX_MMAPPED,
    URB_SUBMIT,
    header_dtype,
)

FLAG_SETUP_ABSENT = ord("-")
FLAG_DATA_IN_SUBMIT = ord("<")
FLAG_DATA_OUT_COMPLETE = ord(">")


@dataclass
class UsbRecord:
    """One usbmon event.

    ``data_len`` is what usbmon attached to the event (after its own per-event cap); ``data`` is
    the part of it the capture kept, so it may be shorter (a snaplen cut) but is never longer.
    """

    ts_ns: int
    urb_id: int
    urb_type: int  # URB_SUBMIT, URB_COMPLETE or URB_ERROR
    xfer: int
    epnum: int  # endpoint address with the direction bit, e.g. 0x81
    devnum: int
    busnum: int
    status: int
    urb_len: int
    data_len: int
    data: bytes = b""
    setup: bytes | None = None
    interval: int = 0
    start_frame: int = 0
    xfer_flags: int = 0


def flag_data(urb_type: np.ndarray, epnum: np.ndarray) -> np.ndarray:
    """usbmon's data flag: '<' on IN submits, '>' on OUT completions, else 0 (mon_bin.c)."""
    is_in = (epnum & 0x80) != 0
    out = np.zeros(len(urb_type), np.uint8)
    out[(urb_type == URB_SUBMIT) & is_in] = FLAG_DATA_IN_SUBMIT
    out[(urb_type != URB_SUBMIT) & ~is_in] = FLAG_DATA_OUT_COMPLETE
    return out


def usbmon_headers(
    records: Sequence[UsbRecord],
    linktype: int = LINKTYPE_USB_LINUX_MMAPPED,
    order: str = "<",
) -> np.ndarray:
    """The usbmon headers of ``records`` as a structured array of the link type's layout."""
    n = len(records)
    hdr = np.zeros(n, header_dtype(LINKTYPE_USB_LINUX_MMAPPED, "<"))
    if n:
        ts = np.fromiter((r.ts_ns for r in records), np.int64, n)
        urb_type = np.fromiter((r.urb_type & 0xFF for r in records), np.uint8, n)
        epnum = np.fromiter((r.epnum & 0xFF for r in records), np.uint8, n)
        has_setup = np.fromiter((r.setup is not None for r in records), bool, n)
        hdr["urb_id"] = np.fromiter((r.urb_id & (1 << 64) - 1 for r in records), np.uint64, n)
        hdr["type"] = urb_type
        hdr["xfer"] = np.fromiter((r.xfer & 0xFF for r in records), np.uint8, n)
        hdr["epnum"] = epnum
        hdr["devnum"] = np.fromiter((r.devnum & 0xFF for r in records), np.uint8, n)
        hdr["busnum"] = np.fromiter((r.busnum & 0xFFFF for r in records), np.uint16, n)
        hdr["flag_setup"] = np.where(has_setup, 0, FLAG_SETUP_ABSENT)
        hdr["flag_data"] = flag_data(urb_type, epnum)
        # floor division: a negative time (a fuzz case) keeps 0 <= usec < 1e6, as the kernel's
        hdr["ts_sec"] = ts // 1_000_000_000
        hdr["ts_usec"] = ts % 1_000_000_000 // 1000
        hdr["status"] = np.fromiter((r.status for r in records), np.int32, n)
        hdr["urb_len"] = np.fromiter((r.urb_len & 0xFFFFFFFF for r in records), np.uint32, n)
        hdr["data_len"] = np.fromiter((r.data_len & 0xFFFFFFFF for r in records), np.uint32, n)
        for i in np.flatnonzero(has_setup).tolist():
            hdr["setup"][i] = np.frombuffer(records[i].setup or bytes(8), np.uint8)
        hdr["interval"] = np.fromiter((r.interval for r in records), np.int32, n)
        hdr["start_frame"] = np.fromiter((r.start_frame for r in records), np.int32, n)
        hdr["xfer_flags"] = np.fromiter((r.xfer_flags for r in records), np.uint32, n)
    out = hdr.astype(header_dtype(LINKTYPE_USB_LINUX_MMAPPED, order))
    if linktype == LINKTYPE_USB_LINUX_MMAPPED:
        return out
    # link type 189: the same fields up to the setup packet, copied field by field
    short = np.zeros(n, header_dtype(linktype, order))
    for name in short.dtype.names or ():
        short[name] = out[name]
    return short


def header_len(linktype: int) -> int:
    return HEADER_LEN_BY_LINKTYPE[linktype]
