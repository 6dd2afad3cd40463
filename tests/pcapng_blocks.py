"""The tests' own walk over pcapng blocks, independent of usbtrace's reader: is a file whole, its
packets (whatever their link type: the runner's tests capture the loopback interface), and its
usbtrace metadata. Little-endian sections only, as dumpcap and usbtrace write them."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usbtrace.formats.metadata import METADATA_MAGIC, METADATA_PEN

SHB = 0x0A0D0D0A
IDB = 0x00000001
EPB = 0x00000006
OPT_IF_TSRESOL = 9
CUSTOM_TYPES = (0x00000BAD, 0x40000BAD)


def blocks(path: Path) -> list[tuple[int, bytes]]:
    """(type, body) of every block; AssertionError if the file is cut or malformed."""
    data = path.read_bytes()
    assert len(data) >= 28 and struct.unpack_from("<I", data)[0] == SHB, f"{path}: not a pcapng"
    out, pos = [], 0
    while pos < len(data):
        assert pos + 12 <= len(data), f"{path}: cut inside a block header at byte {pos}"
        btype, length = struct.unpack_from("<II", data, pos)
        assert length >= 12 and length % 4 == 0, f"{path}: bad block length at byte {pos}"
        assert pos + length <= len(data), f"{path}: last block cut at byte {pos}"
        assert struct.unpack_from("<I", data, pos + length - 4)[0] == length
        out.append((btype, data[pos + 8 : pos + length - 4]))
        pos += length
    return out


def options(body: bytes) -> dict[int, bytes]:
    """The options after a block's fixed fields (the first of each code)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(body):
        code, length = struct.unpack_from("<HH", body, pos)
        if code == 0:
            break
        out.setdefault(code, body[pos + 4 : pos + 4 + length])
        pos += 4 + length + (-length % 4)
    return out


@dataclass(frozen=True)
class Packet:
    frame: int  # 1-based, as Wireshark counts
    linktype: int
    ts_ns: int
    data: bytes
    orig_len: int


def packets(path: Path) -> list[Packet]:
    """Every Enhanced Packet Block, with its interface's link type and the time in ns."""
    out: list[Packet] = []
    interfaces: list[tuple[int, int]] = []  # (link type, units per second)
    for btype, body in blocks(path):
        if btype == SHB:
            interfaces = []
        elif btype == IDB:
            resol = options(body[8:]).get(OPT_IF_TSRESOL, b"\x06")[0]
            units = 2 ** (resol & 0x7F) if resol & 0x80 else 10**resol
            interfaces.append((struct.unpack_from("<H", body)[0], units))
        elif btype == EPB:
            iface, hi, lo, caplen, orig = struct.unpack_from("<IIIII", body)
            linktype, units = interfaces[iface]
            ts_ns = ((hi << 32) | lo) * 1_000_000_000 // units
            out.append(Packet(len(out) + 1, linktype, ts_ns, body[20 : 20 + caplen], orig))
    return out


def packet_count(path: Path) -> int:
    return sum(1 for btype, _ in blocks(path) if btype == EPB)


def metadata(path: Path) -> dict[str, Any]:
    """usbtrace's metadata blocks merged in file order (later keys win); {} if none."""
    merged: dict[str, Any] = {}
    for btype, body in blocks(path):
        if btype in CUSTOM_TYPES and struct.unpack_from("<I", body)[0] == METADATA_PEN:
            payload = body[4:]
            if payload.startswith(METADATA_MAGIC):
                merged.update(json.loads(payload[len(METADATA_MAGIC) :].rstrip(b"\0")))
    return merged
