"""Write USB records as macOS captures (``LINKTYPE_USB_DARWIN``, 266), pcap or pcapng.

One packet per record: the 32-byte header (bcdVersion 0x0100), then the data: a control submit
carries its setup packet and any OUT data, other submits their OUT data, completions their IN
data. ioLength is the bytes requested (submit) or transferred (completion), without the setup
packet; ioID is the usbmon URB id; the status is usbmon's -errno mapped back to an IOReturn.
This follows ``usbtrace/formats/darwin.py``'s reading of the format; no real macOS capture was
available to compare with.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from lab.usb.record import UsbRecord
from lab.usb.writer import write_packets
from usbtrace.formats.darwin import (
    HEADER_LEN,
    LINKTYPE_USB_DARWIN,
    REQUEST_COMPLETE,
    REQUEST_SUBMIT,
    TYPE_BY_XFER,
    errno_to_ioreturn,
)
from usbtrace.formats.usbmon import URB_SUBMIT, XFER_CONTROL, XFER_ISO

_HEADER = struct.Struct("<HBBIIIQIBBBB")
assert _HEADER.size == HEADER_LEN
SPEED_SUPER = 3  # kUSBHostConnectionSpeedSuper
PCAP_SNAPLEN = 65535


def packets(
    records: Iterable[UsbRecord], speed: int = SPEED_SUPER
) -> Iterator[tuple[int, bytes, int]]:
    """(timestamp ns, packet bytes kept, packet length) per record."""
    for rec in records:
        if rec.xfer == XFER_ISO:
            raise ValueError("isochronous records are not written (no Edge TPU uses them)")
        submit = rec.urb_type == URB_SUBMIT
        control_setup = rec.xfer == XFER_CONTROL and submit
        is_in = bool(rec.setup[0] & 0x80) if control_setup and rec.setup else bool(rec.epnum & 0x80)
        carries = submit != is_in
        length = rec.urb_len if carries else 0
        data = rec.data[:length] if carries else b""
        if control_setup:
            data, length = (rec.setup or bytes(8)) + data, length + 8
        head = _HEADER.pack(
            0x0100, HEADER_LEN, REQUEST_SUBMIT if submit else REQUEST_COMPLETE, rec.urb_len,
            0 if submit else errno_to_ioreturn(rec.status), 0, rec.urb_id, rec.busnum << 24, speed,
            rec.devnum, rec.epnum, TYPE_BY_XFER[rec.xfer],
        )  # fmt: skip
        yield rec.ts_ns, head + data, HEADER_LEN + length


def write_darwin(
    records: Iterable[UsbRecord],
    stream: BinaryIO,
    *,
    container: str = "pcapng",
    snaplen: int = PCAP_SNAPLEN,
    comment: str | None = None,
    custom_blocks: Iterable[tuple[int, bytes, int]] = (),
) -> None:
    """Write ``records`` as a macOS USB ``container`` ("pcap" or "pcapng")."""
    write_packets(
        stream,
        packets(records),
        linktype=LINKTYPE_USB_DARWIN,
        interface="XHC20",
        container=container,
        snaplen=snaplen,
        comment=comment,
        custom_blocks=custom_blocks,
    )
