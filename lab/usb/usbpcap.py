"""Write USB records as USBPcap captures (link type 249), pcap or pcapng, as USBPcap 1.5+ does.

Every URB gives two packets: FDO -> PDO when submitted (info 0) and PDO -> FDO when completed
(info 1). Bulk and interrupt OUT data rides on the submission, IN data on the completion; a read's
submission and a write's completion carry no data and no length. A control transfer is a SETUP
packet (the setup packet followed by any OUT data) and a COMPLETE packet (any IN data). The IRP id
is the usbmon URB id; the status is usbmon's -errno mapped back to its USBD_STATUS.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from lab.usb.record import UsbRecord
from lab.usb.writer import write_packets
from usbtrace.formats.usbmon import URB_SUBMIT, XFER_CONTROL, XFER_ISO
from usbtrace.formats.usbpcap import (
    BASE_LEN,
    CONTROL_LEN,
    INFO_PDO_TO_FDO,
    LINKTYPE_USBPCAP,
    STAGE_COMPLETE,
    STAGE_SETUP,
    URB_FUNCTION_BULK_OR_INTERRUPT_TRANSFER,
    URB_FUNCTION_CONTROL_TRANSFER,
    errno_to_usbd,
)

_BASE = struct.Struct("<HQIHBHHBBI")
assert _BASE.size == BASE_LEN
PCAP_SNAPLEN = 65535


def packets(records: Iterable[UsbRecord]) -> Iterator[tuple[int, bytes, int]]:
    """(timestamp ns, packet bytes kept, packet length) per record, in record order."""
    for rec in records:
        if rec.xfer == XFER_ISO:
            raise ValueError("isochronous records are not written (no Edge TPU uses them)")
        submit = rec.urb_type == URB_SUBMIT
        is_in = bool(rec.epnum & 0x80)
        info = 0 if submit else INFO_PDO_TO_FDO
        status = 0 if submit else errno_to_usbd(rec.status)
        carries = submit != is_in  # OUT data on the way down, IN data on the way back
        length = rec.urb_len if carries else 0
        data = rec.data[:length] if carries else b""
        if rec.xfer == XFER_CONTROL:
            function = URB_FUNCTION_CONTROL_TRANSFER
            stage = bytes([STAGE_SETUP if submit else STAGE_COMPLETE])
            if submit:
                setup = rec.setup or bytes(8)
                data, length = setup + data, length + len(setup)
            head = _BASE.pack(
                CONTROL_LEN, rec.urb_id, status, function, info, rec.busnum, rec.devnum,
                rec.epnum, rec.xfer, length,
            ) + stage  # fmt: skip
        else:
            head = _BASE.pack(
                BASE_LEN, rec.urb_id, status, URB_FUNCTION_BULK_OR_INTERRUPT_TRANSFER, info,
                rec.busnum, rec.devnum, rec.epnum, rec.xfer, length,
            )  # fmt: skip
        yield rec.ts_ns, head + data, len(head) + length


def write_usbpcap(
    records: Iterable[UsbRecord],
    stream: BinaryIO,
    *,
    container: str = "pcapng",
    snaplen: int = PCAP_SNAPLEN,
    comment: str | None = None,
    custom_blocks: Iterable[tuple[int, bytes, int]] = (),
) -> None:
    """Write ``records`` as a USBPcap ``container`` ("pcap" or "pcapng"), cut at ``snaplen``.

    ``custom_blocks`` (pcapng only: PEN, data, block type) carry usbtrace's metadata along.
    """
    write_packets(
        stream,
        packets(records),
        linktype=LINKTYPE_USBPCAP,
        interface="USBPcap1",
        container=container,
        snaplen=snaplen,
        comment=comment,
        custom_blocks=custom_blocks,
    )
