"""Write a list of ``UsbRecord`` as a pcapng or pcap file, in every layout the reader accepts.

pcapng or classic pcap, either byte order, link type 220 (64-byte usbmon header) or 189 (48-byte),
micro-, nano- or millisecond timestamps, one or several sections, a snaplen cut, an Interface
Statistics Block with the drop count and usbtrace's metadata block. The encoding remembers where
each block starts, so the fuzzer can aim mutations at block boundaries. Blocks and options are
encoded by the product's ``usbtrace.formats.pcapng_writer``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lab.usb.record import UsbRecord, header_len, usbmon_headers
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.capture import PCAP_MAGIC_NS, PCAP_MAGIC_US
from usbtrace.formats.metadata import METADATA_PEN, CaptureMetadata, encode_metadata
from usbtrace.formats.usbmon import LINKTYPE_USB_LINUX_MMAPPED

U64 = (1 << 64) - 1
PCAP_DEFAULT_SNAPLEN = 262_144


@dataclass
class Layout:
    """How to write a capture. Every combination is a valid file."""

    format: str = "pcapng"  # or "pcap"
    order: str = "<"
    linktype: int = LINKTYPE_USB_LINUX_MMAPPED
    tsresol_exp: int = 6  # pcapng: power of ten; pcap: 6 (µs magic) or 9 (ns magic)
    snaplen: int = 0  # bytes kept per packet, usbmon header included; 0: all of ``data``
    statistics: bool = True  # pcapng: an Interface Statistics Block at the end
    dropped: int = 0  # the drop count that block reports
    sections: int = 1  # pcapng: records spread over this many sections
    comment: str | None = None  # pcapng: the section's comment
    application: str = "usbtrace"
    interface: str = "usbmon0"


@dataclass
class Encoded:
    data: bytes
    layout: Layout
    block_starts: list[int] = field(default_factory=list)  # every block / pcap record
    record_starts: list[int] = field(default_factory=list)  # the block of each usbmon record
    header_len: int = 0  # bytes before the first packet block (SHB + IDB, or pcap header)


def shb(layout: Layout) -> bytes:
    o = layout.order
    options = [(bt.OPT_COMMENT, layout.comment.encode())] if layout.comment else []
    options.append((bt.OPT_SHB_USERAPPL, layout.application.encode()))
    body = struct.pack(o + "IHHq", bt.BYTE_ORDER_MAGIC, 1, 0, -1) + bt.encode_options(options, o)
    return bt.encode_block(bt.BT_SHB, body, o)


def idb(layout: Layout, extra: list[tuple[int, bytes]] | None = None) -> bytes:
    """An Interface Description Block; ``extra`` options follow the name and resolution."""
    o = layout.order
    options = [
        (bt.OPT_IF_NAME, layout.interface.encode()),
        (bt.OPT_IF_TSRESOL, bytes([layout.tsresol_exp])),
        *(extra or []),
    ]
    head = struct.pack(o + "HHI", layout.linktype, 0, layout.snaplen)
    return bt.encode_block(bt.BT_IDB, head + bt.encode_options(options, o), o)


def epb(order: str, interface: int, ts_units: int, data: bytes, orig_len: int) -> bytes:
    ts_units &= U64
    head = struct.pack(
        order + "IIIII",
        interface,
        ts_units >> 32,
        ts_units & 0xFFFFFFFF,
        len(data),
        orig_len & 0xFFFFFFFF,
    )
    return bt.encode_block(bt.BT_EPB, head + data, order)


def isb(order: str, ts_units: int, received: int, dropped: int) -> bytes:
    ts_units &= U64
    options = [
        (bt.OPT_ISB_IFRECV, struct.pack(order + "Q", received)),
        (bt.OPT_ISB_IFDROP, struct.pack(order + "Q", dropped)),
    ]
    body = struct.pack(order + "III", 0, ts_units >> 32, ts_units & 0xFFFFFFFF)
    return bt.encode_block(bt.BT_ISB, body + bt.encode_options(options, order), order)


def custom(order: str, pen: int, payload: bytes) -> bytes:
    return bt.encode_block(bt.BT_CUSTOM_COPY, struct.pack(order + "I", pen) + payload, order)


def _packets(records: Sequence[UsbRecord], layout: Layout) -> list[tuple[bytes, int]]:
    """(captured bytes, original length) of every record: its header, then what is kept."""
    hlen = header_len(layout.linktype)
    raw = usbmon_headers(records, layout.linktype, layout.order).tobytes()
    keep = layout.snaplen - hlen if layout.snaplen else None
    out = []
    for i, r in enumerate(records):
        data = r.data if keep is None else r.data[: max(0, keep)]
        out.append((raw[i * hlen : (i + 1) * hlen] + data, hlen + r.data_len))
    return out


def encode(
    records: Sequence[UsbRecord],
    layout: Layout | None = None,
    *,
    metadata: CaptureMetadata | None = None,
) -> Encoded:
    """The file of ``records`` (in the order given) and where its blocks start."""
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
    scale = 10**lay.tsresol_exp
    for i, (data, orig_len) in enumerate(_packets(records, lay)):
        if i % per_section == 0:
            put(shb(lay))
            put(idb(lay))
            if i == 0:
                enc.header_len = len(out)
        ts = records[i].ts_ns * scale // 1_000_000_000
        enc.record_starts.append(put(epb(o, 0, ts, data, orig_len)))
    if not records:
        put(shb(lay))
        put(idb(lay))
        enc.header_len = len(out)
    if lay.statistics:
        end = records[-1].ts_ns * scale // 1_000_000_000 if records else 0
        put(isb(o, end, len(records) + lay.dropped, lay.dropped))
    if metadata is not None:
        put(custom(o, METADATA_PEN, encode_metadata(metadata)))
    enc.data = bytes(out)
    return enc


def _pcap(records: Sequence[UsbRecord], lay: Layout) -> Encoded:
    o = lay.order
    magic = PCAP_MAGIC_NS if lay.tsresol_exp == 9 else PCAP_MAGIC_US
    snaplen = lay.snaplen or PCAP_DEFAULT_SNAPLEN
    out = bytearray(struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, lay.linktype))
    enc = Encoded(b"", lay, header_len=len(out))
    div = 1 if lay.tsresol_exp == 9 else 1000
    for r, (data, orig_len) in zip(records, _packets(records, lay)):
        sec, frac = divmod(r.ts_ns // div, 10**lay.tsresol_exp)
        enc.block_starts.append(len(out))
        enc.record_starts.append(len(out))
        out += struct.pack(o + "IIII", sec & 0xFFFFFFFF, frac, len(data), orig_len & 0xFFFFFFFF)
        out += data
    enc.data = bytes(out)
    return enc


def write_capture(
    target: str | os.PathLike[str] | BinaryIO,
    records: Sequence[UsbRecord],
    layout: Layout | None = None,
    *,
    metadata: CaptureMetadata | None = None,
    overwrite: bool = False,
) -> Encoded:
    """Write the file of ``records`` to a path (a new file unless ``overwrite``) or a stream."""
    enc = encode(records, layout, metadata=metadata)
    if isinstance(target, (str, os.PathLike)):
        with open(Path(target), "wb" if overwrite else "xb") as stream:
            stream.write(enc.data)
    else:
        target.write(enc.data)
    return enc


class StreamWriter:
    """A pcapng file written as records come, for captures too large to hold in memory.

    One section and one interface, as ``encode`` writes them; ``close`` adds the statistics
    block when the layout asks for it. The caller owns the stream.
    """

    def __init__(self, stream: BinaryIO, layout: Layout | None = None) -> None:
        self.stream = stream
        self.layout = layout or Layout()
        if self.layout.format != "pcapng" or self.layout.sections != 1:
            raise ValueError("StreamWriter writes one pcapng section")
        self.records = 0
        self._last_ts_ns = 0
        stream.write(shb(self.layout) + idb(self.layout))

    def write(self, records: Sequence[UsbRecord]) -> None:
        o, scale = self.layout.order, 10**self.layout.tsresol_exp
        for r, (data, orig_len) in zip(records, _packets(records, self.layout)):
            self.stream.write(epb(o, 0, r.ts_ns * scale // 1_000_000_000, data, orig_len))
        if records:
            self.records += len(records)
            self._last_ts_ns = records[-1].ts_ns

    def close(self) -> None:
        lay = self.layout
        if lay.statistics:
            end = self._last_ts_ns * 10**lay.tsresol_exp // 1_000_000_000
            self.stream.write(isb(lay.order, end, self.records + lay.dropped, lay.dropped))


# A packet of another link type: (time in ns, the bytes of the packet, its original length).
Packet = tuple[int, bytes, int]


def write_packets(
    stream: BinaryIO,
    packets: Iterable[Packet],
    *,
    linktype: int,
    interface: str,
    container: str = "pcapng",
    snaplen: int = 65535,
    comment: str | None = None,
    custom_blocks: Iterable[tuple[int, bytes, int]] = (),
) -> None:
    """Packets of any link type (USBPcap, macOS) in a pcap or pcapng ``container``, cut at
    ``snaplen``. ``custom_blocks`` (pcapng only: PEN, data, block type) carry usbtrace's
    metadata along."""
    if container == "pcap":
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        for ts_ns, data, orig in packets:
            sec, nsec = divmod(ts_ns, 1_000_000_000)
            kept = data[:snaplen]
            stream.write(struct.pack("<IIII", sec, nsec // 1000, len(kept), orig) + kept)
        return
    if container != "pcapng":
        raise ValueError(f"unknown container {container!r}")
    writer = bt.PcapngWriter(stream, comment=comment, application="usbtrace lab.usb")
    writer.interface(linktype=linktype, snaplen=snaplen, name=interface)
    for ts_ns, data, orig in packets:
        writer.packet(data[:snaplen], ts_ns, orig_len=orig)
    for pen, payload, btype in custom_blocks:
        writer.custom(pen, payload, copyable=btype == 0x00000BAD)
