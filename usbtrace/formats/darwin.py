"""macOS USB captures (``LINKTYPE_USB_DARWIN``, 266) read into the same usbmon-shaped records.

macOS (``tcpdump -i XHC20`` and the like) writes one packet when an I/O request is enqueued
(request type 0) and one when it completes (1). Each starts with a little-endian header, as
Wireshark's ``packet-usb.c`` reads it and as Apple described it when the link type was assigned:
bcdVersion (u16), header length (u8), request type (u8), ioLength (u32: bytes requested on submit,
transferred on completion), ioStatus (u32, an IOReturn), ioFrameCount (u32, isochronous frames),
ioID (u64, unique per I/O), location ID (u32, bus number in the top byte), speed, device address,
endpoint address and endpoint type (u8 each: 0 control, 1 isochronous, 2 bulk, 3 interrupt). The
data follows at the header length: on a control submit the 8-byte setup packet, then any OUT data
(as Wireshark dissects it).

Each packet becomes one usbmon record: ioID is the URB id, ioStatus is mapped to the -errno usbmon
shows. Not carried: interval, start frame, transfer flags, usbmon's per-event data cap.
What Wireshark's dissector and Apple's description leave open, and usbtrace assumes: on a control
transfer, ioLength counts the data stage only (not the setup packet); the request length of a
control submit is taken from the setup packet's wLength anyway. No real macOS capture of an Edge
TPU has been checked; the project's own writer (``lab/usb/darwin.py``) follows the same reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.formats.records import (
    RECORD,
    PacketSums,
    RecordBatch,
    gather_heads,
    payloads_of,
    tally_packets,
)
from usbtrace.formats.status import StatusMap
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
    XFER_ISO,
)

LINKTYPE_USB_DARWIN = 266
HEADER = np.dtype(
    [
        ("bcd_version", "<u2"),
        ("header_len", "u1"),
        ("request_type", "u1"),
        ("io_len", "<u4"),
        ("io_status", "<u4"),
        ("frame_count", "<u4"),
        ("io_id", "<u8"),
        ("location", "<u4"),
        ("speed", "u1"),
        ("device", "u1"),
        ("endpoint", "u1"),
        ("endpoint_type", "u1"),
    ]
)
HEADER_LEN = 32
assert HEADER.itemsize == HEADER_LEN
REQUEST_SUBMIT = 0
REQUEST_COMPLETE = 1
SETUP_LEN = 8
# Darwin endpoint type -> usbmon transfer type (the order of bmAttributes' transfer type)
XFER_BY_TYPE = np.array([XFER_CONTROL, XFER_ISO, XFER_BULK, XFER_INTERRUPT], dtype=np.uint8)
TYPE_BY_XFER = {int(x): i for i, x in enumerate(XFER_BY_TYPE)}

# IOReturn -> the -errno Linux reports for the same outcome; others keep their value (negative)
IORETURN_TO_ERRNO = {
    0x00000000: 0,  # kIOReturnSuccess
    0xE00002EB: -2,  # kIOReturnAborted -> ENOENT (killed request)
    0xE00002D6: -110,  # kIOReturnTimeout -> ETIMEDOUT
    0xE00002ED: -71,  # kIOReturnNotResponding -> EPROTO
    0xE00002C0: -19,  # kIOReturnNoDevice -> ENODEV
    0xE00002E8: -75,  # kIOReturnOverrun -> EOVERFLOW
    0xE00002E7: -121,  # kIOReturnUnderrun -> EREMOTEIO
    0xE000404F: -32,  # kIOUSBPipeStalled -> EPIPE
}
_STATUS = StatusMap(IORETURN_TO_ERRNO)


def ioreturn_to_errno(status: np.ndarray) -> np.ndarray:
    return _STATUS.to_errno(status)


def errno_to_ioreturn(status: int) -> int:
    return _STATUS.from_errno(status)


@dataclass
class DarwinConverter:
    """Turns batches of Darwin packets into usbmon records."""

    skipped: int = 0  # request types or endpoint types this reader does not know
    keep_data: bool = False  # every record's captured data in ``RecordBatch.data`` (replay)
    # per (bus, device, endpoint, "S"/"C"): packets, 0, sum of ioLength (what ``verify`` compares)
    packet_sums: PacketSums = field(default_factory=dict)

    def convert(
        self,
        buf: np.ndarray,
        data_pos: np.ndarray,
        caplen: np.ndarray,
        ts_ns: np.ndarray,
        frames: np.ndarray,
    ) -> RecordBatch:
        ok = caplen >= HEADER_LEN
        idx = data_pos[:, None] + np.arange(HEADER_LEN, dtype=np.int64)
        np.minimum(idx, max(len(buf) - 1, 0), out=idx)
        h = np.ascontiguousarray(buf[idx]).view(HEADER).reshape(len(data_pos))
        hlen = h["header_len"].astype(np.int64)
        ok &= (hlen >= HEADER_LEN) & (hlen <= caplen)
        short = int(np.count_nonzero(~ok))
        self._tally(h[ok])
        good = ok & (h["request_type"] <= REQUEST_COMPLETE) & (h["endpoint_type"] <= 3)
        self.skipped += int(np.count_nonzero(ok & ~good))
        h, hlen = h[good], hlen[good]
        data_pos, caplen, ts_ns, frames = data_pos[good], caplen[good], ts_ns[good], frames[good]
        n = len(h)
        out = np.zeros(n, dtype=RECORD)
        if n == 0:
            return RecordBatch(out, short_records=short)
        completion = h["request_type"] == REQUEST_COMPLETE
        xfer = XFER_BY_TYPE[h["endpoint_type"]]
        is_in = (h["endpoint"] & 0x80) != 0
        start = data_pos + hlen
        cap = caplen - hlen
        setup_pkt = (xfer == XFER_CONTROL) & ~completion & (cap >= SETUP_LEN)
        hdr = out["hdr"]
        out["frame"] = frames
        out["ts_ns"] = ts_ns
        hdr["urb_id"] = h["io_id"]
        hdr["type"] = np.where(completion, URB_COMPLETE, URB_SUBMIT)
        hdr["xfer"] = xfer
        hdr["epnum"] = h["endpoint"]
        hdr["devnum"] = h["device"]
        hdr["busnum"] = h["location"] >> 24
        sec, nsec = np.divmod(ts_ns, 1_000_000_000)
        hdr["ts_sec"], hdr["ts_usec"] = sec, nsec // 1000
        hdr["status"] = np.where(completion, ioreturn_to_errno(h["io_status"]), STATUS_IN_PROGRESS)
        if setup_pkt.any():
            hdr["setup"][setup_pkt] = buf[start[setup_pkt][:, None] + np.arange(SETUP_LEN)]
        hdr["flag_setup"] = np.where(setup_pkt, 0, ord("-"))
        skip = np.where(setup_pkt, SETUP_LEN, 0)
        start, cap = start + skip, cap - skip
        io_len = h["io_len"].astype(np.int64)
        wlength = hdr["setup"][:, 6].astype(np.int64) | hdr["setup"][:, 7].astype(np.int64) << 8
        control_in = setup_pkt & ((hdr["setup"][:, 0] & 0x80) != 0)
        hdr["urb_len"] = np.where(setup_pkt, wlength, io_len)
        # data travels with an OUT submit and an IN completion (a control submit: its setup
        # packet's direction)
        out_submit = ~completion & np.where(setup_pkt, ~control_in, ~is_in)
        carries = out_submit | (completion & is_in) | (completion & (xfer == XFER_CONTROL))
        data_len = np.where(carries, np.where(setup_pkt, wlength, io_len), 0)
        data_len = np.where(completion & (xfer == XFER_CONTROL) & (cap == 0), 0, data_len)
        hdr["data_len"] = data_len
        hdr["flag_data"] = np.where(data_len > 0, 0, np.where(completion, ord(">"), ord("<")))
        out["caplen"] = cap
        out["head"] = gather_heads(buf, start, cap)
        payloads = payloads_of(buf, xfer == XFER_CONTROL, start, cap, frames)
        kept: dict[int, bytes] = {}
        if self.keep_data:
            kept = payloads_of(buf, np.ones(n, dtype=bool), start, cap, frames)
        return RecordBatch(out, payloads, short, kept)

    def _tally(self, h: np.ndarray) -> None:
        tally_packets(
            self.packet_sums,
            h["location"] >> 24,
            h["device"],
            h["endpoint"],
            (h["request_type"] & 1) != 0,
            h["io_len"],
        )
