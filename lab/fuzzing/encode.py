"""Write a list of usbmon records as a pcapng or pcap file, in either byte order.

Unlike ``PcapngWriter`` (little-endian only, the project's normal output) this writer exists to
produce every *valid* layout a reader must accept: big-endian sections, link type 189 as well as
220, nanosecond timestamps, several sections, classic pcap. It also remembers where each block
starts, so mutations can aim at block boundaries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from lab.fuzzing.session import UsbRecord
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.capture import PCAP_MAGIC_NS, PCAP_MAGIC_US
from usbtrace.formats.usbmon import (
    HEADER_LEN_BY_LINKTYPE,
    LINKTYPE_USB_LINUX_MMAPPED,
    header_dtype,
    pack_header,
)


@dataclass
class Layout:
    """How to write a capture. Every combination is a valid file."""

    format: str = "pcapng"  # or "pcap"
    order: str = "<"
    linktype: int = LINKTYPE_USB_LINUX_MMAPPED
    tsresol_exp: int = 6  # pcapng: power of ten; pcap: 6 (µs magic) or 9 (ns magic)
    statistics: bool = True  # pcapng: an Interface Statistics Block at the end
    sections: int = 1  # pcapng: records spread over this many sections


@dataclass
class Encoded:
    data: bytes
    layout: Layout
    block_starts: list[int] = field(default_factory=list)  # every block / pcap record
    record_starts: list[int] = field(default_factory=list)  # the block of each usbmon record
    header_len: int = 0  # bytes before the first packet block (SHB + IDB, or pcap header)


def usbmon_bytes(r: UsbRecord, linktype: int, order: str) -> bytes:
    """The usbmon header in the capturing host's byte order, then the captured data."""
    le = pack_header(
        urb_id=r.urb_id,
        urb_type=r.urb_type,
        xfer=r.xfer,
        epnum=r.ep,
        devnum=r.dev,
        busnum=r.bus,
        ts_ns=r.ts_ns,
        status=r.status,
        urb_len=r.urb_len,
        data_len=r.data_len,
        setup=r.setup,
    )
    if order == ">":
        arr = np.frombuffer(le, dtype=header_dtype(LINKTYPE_USB_LINUX_MMAPPED, "<"))
        le = arr.astype(header_dtype(LINKTYPE_USB_LINUX_MMAPPED, ">")).tobytes()
    return le[: HEADER_LEN_BY_LINKTYPE[linktype]] + r.data


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def options(order: str, opts: list[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack(order + "HH", c, len(v)) + _pad(v) for c, v in opts)
    return out + struct.pack(order + "HH", 0, 0) if opts else b""


def shb(order: str) -> bytes:
    body = struct.pack(order + "IHHq", bt.BYTE_ORDER_MAGIC, 1, 0, -1)
    return block(order, bt.BT_SHB, body + options(order, [(bt.OPT_SHB_USERAPPL, b"usbtrace-fuzz")]))


def idb(
    order: str,
    linktype: int,
    tsresol_exp: int,
    snaplen: int = 0,
    extra: list[tuple[int, bytes]] | None = None,
) -> bytes:
    opts = [(bt.OPT_IF_NAME, b"usbmon2"), (bt.OPT_IF_TSRESOL, bytes([tsresol_exp]))]
    opts += extra or []
    return block(
        order, bt.BT_IDB, struct.pack(order + "HHI", linktype, 0, snaplen) + options(order, opts)
    )


def epb(order: str, iface: int, ts_units: int, data: bytes, orig_len: int) -> bytes:
    ts_units &= (1 << 64) - 1
    head = struct.pack(
        order + "IIIII",
        iface,
        ts_units >> 32,
        ts_units & 0xFFFFFFFF,
        len(data),
        orig_len & 0xFFFFFFFF,
    )
    return block(order, bt.BT_EPB, head + data)


def isb(order: str, received: int, dropped: int) -> bytes:
    opts = [
        (bt.OPT_ISB_IFRECV, struct.pack(order + "Q", received)),
        (bt.OPT_ISB_IFDROP, struct.pack(order + "Q", dropped)),
    ]
    return block(order, bt.BT_ISB, struct.pack(order + "III", 0, 0, 0) + options(order, opts))


def encode(records: list[UsbRecord], layout: Layout | None = None) -> Encoded:
    lay = layout or Layout()
    if lay.format == "pcap":
        return _pcap(records, lay)
    o = lay.order
    out = bytearray()
    enc = Encoded(b"", lay)

    def put(b: bytes) -> int:
        enc.block_starts.append(len(out))
        out.extend(b)
        return enc.block_starts[-1]

    per_section = max(1, -(-len(records) // max(1, lay.sections)))
    hdr_len = HEADER_LEN_BY_LINKTYPE[lay.linktype]
    for i, r in enumerate(records):
        if i % per_section == 0:
            put(shb(o))
            put(idb(o, lay.linktype, lay.tsresol_exp))
            if i == 0:
                enc.header_len = len(out)
        data = usbmon_bytes(r, lay.linktype, o)
        ts = r.ts_ns * 10**lay.tsresol_exp // 1_000_000_000
        enc.record_starts.append(put(epb(o, 0, ts, data, hdr_len + r.data_len)))
    if not records:
        put(shb(o))
        put(idb(o, lay.linktype, lay.tsresol_exp))
        enc.header_len = len(out)
    if lay.statistics:
        put(isb(o, len(records), 0))
    enc.data = bytes(out)
    return enc


def _pcap(records: list[UsbRecord], lay: Layout) -> Encoded:
    o = lay.order
    magic = PCAP_MAGIC_NS if lay.tsresol_exp == 9 else PCAP_MAGIC_US
    out = bytearray(struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 262_144, lay.linktype))
    enc = Encoded(b"", lay, header_len=len(out))
    hdr_len = HEADER_LEN_BY_LINKTYPE[lay.linktype]
    div = 1 if lay.tsresol_exp == 9 else 1000
    for r in records:
        data = usbmon_bytes(r, lay.linktype, o)
        sec, frac = divmod(r.ts_ns // div, 10**lay.tsresol_exp)
        enc.block_starts.append(len(out))
        enc.record_starts.append(len(out))
        out += struct.pack(
            o + "IIII", sec & 0xFFFFFFFF, frac, len(data), (hdr_len + r.data_len) & 0xFFFFFFFF
        )
        out += data
    enc.data = bytes(out)
    return enc
