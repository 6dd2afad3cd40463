"""Walk the blocks of a pcapng file dumpcap wrote: is it complete, what does it hold.

The capture runner only needs block boundaries (to check a file before appending its metadata and
to cut off a block a killed dumpcap left half-written), the packet records for building a replay
script, and usbtrace's own metadata blocks. Full decoding is the capture reader's job.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usbtrace.errors import InputError
from usbtrace.formats.metadata import METADATA_PEN, decode_metadata_payload
from usbtrace.formats.pcapng_writer import (
    BT_CUSTOM_COPY,
    BT_CUSTOM_NOCOPY,
    BT_EPB,
    BT_IDB,
    BT_ISB,
    BT_SHB,
    BYTE_ORDER_MAGIC,
    OPT_IF_TSRESOL,
)

_MIN_BLOCK = 12


@dataclass(frozen=True)
class Block:
    offset: int
    type: int
    body: bytes  # between the leading length and the trailing length
    byteorder: str  # "<" or ">", from the section this block belongs to


@dataclass(frozen=True)
class Packet:
    """One Enhanced Packet Block: 1-based frame number, link type, time, data, original length."""

    frame: int
    linktype: int
    ts_ns: int
    data: bytes
    orig_len: int
    byteorder: str


@dataclass
class FileCheck:
    """What a walk over a pcapng file found."""

    size: int
    complete_size: int  # bytes up to the end of the last complete block
    sections: int = 0
    interfaces: int = 0
    packets: int = 0
    statistics: int = 0
    metadata_blocks: int = 0
    dropped: int | None = None  # from the last interface statistics block, if any
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None and self.complete_size == self.size and self.sections > 0


def iter_blocks(data: bytes) -> Iterator[Block]:
    """The complete blocks of ``data``; stops quietly at the first incomplete or bad one."""
    for block, _ in _walk(data):
        if block is None:
            return
        yield block


def _walk(data: bytes) -> Iterator[tuple[Block | None, str | None]]:
    offset = 0
    order = "<"
    while offset < len(data):
        if len(data) - offset < _MIN_BLOCK:
            yield None, f"at byte {offset}: {len(data) - offset} trailing bytes, not a block"
            return
        (block_type,) = struct.unpack_from("<I", data, offset)
        if block_type == BT_SHB:
            (magic,) = struct.unpack_from("<I", data, offset + 8)
            if magic == BYTE_ORDER_MAGIC:
                order = "<"
            elif magic == struct.unpack("<I", struct.pack(">I", BYTE_ORDER_MAGIC))[0]:
                order = ">"
            else:
                yield None, f"at byte {offset}: section header with a bad byte-order magic"
                return
        elif offset == 0:
            yield None, "not a pcapng file (no section header block at the start)"
            return
        block_type, total = struct.unpack_from(order + "II", data, offset)
        if total < _MIN_BLOCK or total % 4:
            yield None, f"at byte {offset}: block length {total} is not valid"
            return
        if offset + total > len(data):
            yield None, f"at byte {offset}: last block cut short ({len(data) - offset} of {total})"
            return
        (trailer,) = struct.unpack_from(order + "I", data, offset + total - 4)
        if trailer != total:
            yield None, f"at byte {offset}: block lengths disagree ({total} vs {trailer})"
            return
        yield Block(offset, block_type, data[offset + 8 : offset + total - 4], order), None
        offset += total


def check_file(path: str | Path) -> FileCheck:
    data = Path(path).read_bytes()
    result = FileCheck(size=len(data), complete_size=0)
    for block, problem in _walk(data):
        if block is None:
            result.problem = problem
            break
        result.complete_size = block.offset + len(block.body) + 12
        if block.type == BT_SHB:
            result.sections += 1
        elif block.type == BT_IDB:
            result.interfaces += 1
        elif block.type == BT_EPB:
            result.packets += 1
        elif block.type == BT_ISB:
            result.statistics += 1
            dropped = _isb_dropped(block)
            if dropped is not None:
                result.dropped = dropped
        elif block.type in (BT_CUSTOM_COPY, BT_CUSTOM_NOCOPY) and _metadata_of(block) is not None:
            result.metadata_blocks += 1
    return result


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            return
        yield code, body[pos + 4 : pos + 4 + length]
        pos += 4 + length + (-length % 4)


def _isb_dropped(block: Block) -> int | None:
    for code, value in _options(block.body, 12, block.byteorder):
        if code == 5 and len(value) == 8:  # isb_ifdrop
            return struct.unpack(block.byteorder + "Q", value)[0]
    return None


def _metadata_of(block: Block) -> dict[str, Any] | None:
    if len(block.body) < 4:
        return None
    (pen,) = struct.unpack_from(block.byteorder + "I", block.body, 0)
    if pen != METADATA_PEN:
        return None
    return decode_metadata_payload(block.body[4:])


def read_metadata_payloads(path: str | Path) -> list[dict[str, Any]]:
    """usbtrace's metadata objects in the file, in file order."""
    out = []
    for block in iter_blocks(Path(path).read_bytes()):
        if block.type in (BT_CUSTOM_COPY, BT_CUSTOM_NOCOPY):
            meta = _metadata_of(block)
            if meta is not None:
                out.append(meta)
    return out


def iter_packets(path: str | Path) -> Iterator[Packet]:
    """Every packet of the file with its interface's link type and time in nanoseconds."""
    data = Path(path).read_bytes()
    if not data:
        raise InputError(path, "empty file")
    interfaces: list[tuple[int, int]] = []  # (linktype, units per second)
    frame = 0
    for block, problem in _walk(data):
        if block is None:
            if problem and frame == 0 and not interfaces:
                raise InputError(path, problem)
            return
        order = block.byteorder
        if block.type == BT_SHB:
            interfaces = []
        elif block.type == BT_IDB:
            linktype = struct.unpack_from(order + "H", block.body, 0)[0]
            units = 10**6
            for code, value in _options(block.body, 8, order):
                if code == OPT_IF_TSRESOL and value:
                    exp = value[0]
                    units = 2 ** (exp & 0x7F) if exp & 0x80 else 10**exp
            interfaces.append((linktype, units))
        elif block.type == BT_EPB:
            iface, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", block.body, 0)
            if iface >= len(interfaces):
                raise InputError(path, f"packet refers to unknown interface {iface}", block.offset)
            linktype, units = interfaces[iface]
            frame += 1
            ts = (hi << 32) | lo
            yield Packet(
                frame=frame,
                linktype=linktype,
                ts_ns=ts * 1_000_000_000 // units,
                data=block.body[20 : 20 + caplen],
                orig_len=orig,
                byteorder=order,
            )


def cut_incomplete_tail(path: str | Path, check: FileCheck) -> int:
    """Drop the half-written block a killed writer left at the end; returns bytes removed.

    Only ever removes bytes after the last complete block, which no reader could use anyway, so
    the metadata block appended next is reachable.
    """
    if check.sections == 0 or check.complete_size >= check.size:
        return 0
    with open(path, "r+b") as stream:
        stream.truncate(check.complete_size)
    return check.size - check.complete_size
