"""A minimal, independent walk over pcapng blocks: is a file whole, and its usbtrace metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from usbtrace.formats.metadata import METADATA_MAGIC, METADATA_PEN

SHB = 0x0A0D0D0A
EPB = 0x00000006
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
