"""Read a usbmon pcap/pcapng capture back into the lab's ``UsbRecord``s, whole.

The product's reader keeps only the first bytes of each record (all the decoder needs); a
converter needs every captured byte, so this is a plain block walk. For the project's own and the
real captures (small files): little-endian pcapng or pcap, link type 220.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab.usb.record import UsbRecord
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.usbmon import LINKTYPE_USB_LINUX_MMAPPED, URB_SUBMIT, header_dtype

_HEADER = header_dtype(LINKTYPE_USB_LINUX_MMAPPED, "<")
_HLEN = _HEADER.itemsize


@dataclass
class UsbmonSource:
    records: list[UsbRecord]
    custom_blocks: list[tuple[int, bytes, int]] = field(default_factory=list)  # PEN, data, type
    comment: str | None = None
    snaplen: int = 0


def _record(packet: bytes, ts_ns: int) -> UsbRecord:
    h = np.frombuffer(packet[:_HLEN], dtype=_HEADER)[0]
    has_setup = int(h["flag_setup"]) == 0 and int(h["type"]) == URB_SUBMIT
    return UsbRecord(
        ts_ns=ts_ns,
        urb_id=int(h["urb_id"]),
        urb_type=int(h["type"]),
        xfer=int(h["xfer"]),
        epnum=int(h["epnum"]),
        devnum=int(h["devnum"]),
        busnum=int(h["busnum"]),
        status=int(h["status"]),
        urb_len=int(h["urb_len"]),
        data_len=int(h["data_len"]),
        data=packet[_HLEN:],
        setup=h["setup"].tobytes() if has_setup else None,
        interval=int(h["interval"]),
        start_frame=int(h["start_frame"]),
        xfer_flags=int(h["xfer_flags"]),
    )


def read_usbmon(path: str | Path) -> UsbmonSource:
    """Every record of a little-endian usbmon (link type 220) pcapng or pcap file."""
    raw = Path(path).read_bytes()
    out = UsbmonSource([])
    if raw[:4] == struct.pack("<I", bt.BT_SHB):
        pos, resol = 0, 10**6
        while pos + 12 <= len(raw):
            btype, blen = struct.unpack_from("<II", raw, pos)
            body = raw[pos + 8 : pos + blen - 4]
            if btype == bt.BT_IDB:
                linktype, _, out.snaplen = struct.unpack_from("<HHI", body)
                if linktype != LINKTYPE_USB_LINUX_MMAPPED:
                    raise ValueError(f"{path}: link type {linktype}, not 220")
                opt = 8
                while opt + 4 <= len(body):
                    code, length = struct.unpack_from("<HH", body, opt)
                    if code == bt.OPT_IF_TSRESOL and length:
                        resol = 10 ** body[opt + 4]
                    opt += 4 + length + (-length % 4)
            elif btype == bt.BT_EPB:
                _, hi, lo, cap, _ = struct.unpack_from("<IIIII", body)
                ts_ns = ((hi << 32) | lo) * 1_000_000_000 // resol
                out.records.append(_record(body[20 : 20 + cap], ts_ns))
            elif btype == bt.BT_SHB and out.comment is None:
                opt = 16
                while opt + 4 <= len(body):
                    code, length = struct.unpack_from("<HH", body, opt)
                    if code == bt.OPT_COMMENT:
                        out.comment = body[opt + 4 : opt + 4 + length].decode(errors="replace")
                    if code == bt.OPT_END:
                        break
                    opt += 4 + length + (-length % 4)
            elif btype in (bt.BT_CUSTOM_COPY, bt.BT_CUSTOM_NOCOPY):
                out.custom_blocks.append((struct.unpack_from("<I", body)[0], body[4:], btype))
            pos += blen
        return out
    magic, _, _, _, _, out.snaplen, linktype = struct.unpack_from("<IHHiIII", raw)
    if magic not in (0xA1B2C3D4, 0xA1B23C4D) or linktype != LINKTYPE_USB_LINUX_MMAPPED:
        raise ValueError(f"{path}: not a little-endian usbmon pcapng or pcap (link type 220)")
    scale = 1000 if magic == 0xA1B2C3D4 else 1
    pos = 24
    while pos + 16 <= len(raw):
        sec, frac, cap, _ = struct.unpack_from("<IIII", raw, pos)
        ts_ns = sec * 1_000_000_000 + frac * scale
        out.records.append(_record(raw[pos + 16 : pos + 16 + cap], ts_ns))
        pos += 16 + cap
    return out
