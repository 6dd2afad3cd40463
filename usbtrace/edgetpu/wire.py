"""The Edge TPU's small wire structures, one record at a time: the 8-byte bulk-OUT header, the
16-byte event and the 4-byte interrupt word. Writers (the synthetic sessions, the emulator, the
fuzzer) and per-record readers use these; the decoder applies the same rules to whole arrays at
once (``framing.header_candidates``, and ``event_columns`` and ``interrupt_words`` here).
"""

from __future__ import annotations

import struct

import numpy as np

from usbtrace.edgetpu.constants import (
    EVENT_ADDRESS_OFFSET,
    EVENT_LEN,
    EVENT_LENGTH_OFFSET,
    EVENT_TAG_OFFSET,
    HEADER_LEN,
    INTERRUPT_BITS,
    INTERRUPT_LEN,
    TAG_MASK,
    Tag,
)

_HEADER = struct.Struct("<IB3x")  # u32 length of the whole logical transfer, tag, 3 zero bytes
_EVENT = struct.Struct("<QIB3x")  # u64 DMA address, u32 length, tag, 3 zero bytes
assert _HEADER.size == HEADER_LEN and _EVENT.size == EVENT_LEN

# The same 16 bytes as a numpy record, to decode a whole column of captured events at once.
_EVENT_RECORD = np.dtype(
    {
        "names": ["address", "length", "tag"],
        "formats": ["<u8", "<u4", "u1"],
        "offsets": [EVENT_ADDRESS_OFFSET, EVENT_LENGTH_OFFSET, EVENT_TAG_OFFSET],
        "itemsize": EVENT_LEN,
    }
)
assert np.frombuffer(_EVENT.pack(1, 2, 3), _EVENT_RECORD)[0].tolist() == (1, 2, 3)


def encode_header(tag: int, length: int) -> bytes:
    """No checks: the fuzzer writes out-of-range tags on purpose."""
    return _HEADER.pack(length, tag & 0xFF)


def decode_header(data: bytes) -> tuple[int, int] | None:
    """(tag, length) of a bulk-OUT header, or None when these bytes cannot be one (tag 0-7,
    high nibble and bytes 5-7 zero)."""
    if len(data) != HEADER_LEN or data[4] > 7 or data[5:8] != bytes(3):
        return None
    length = int.from_bytes(data[:4], "little")
    return data[4], length


def encode_event(tag: int = Tag.INTERRUPT0, address: int = 0, length: int = 0) -> bytes:
    """Interrupt events (tag 4-7) carry address and length 0."""
    return _EVENT.pack(address, length, int(tag))


def decode_event(data: bytes) -> tuple[int, int, int]:
    """(tag, address, length) of a 16-byte event; the tag is the low nibble of byte 12."""
    address, length, tag = _EVENT.unpack(data[:EVENT_LEN])
    return tag & TAG_MASK, address, length


def event_columns(head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tag, address, length) columns of many events: ``head`` holds each event's first 16
    bytes as a row of uint8 (bytes that were not captured read as zeros)."""
    raw = np.ascontiguousarray(head[:, :EVENT_LEN], dtype=np.uint8)
    rec = raw.view(_EVENT_RECORD).reshape(len(raw))
    return rec["tag"] & TAG_MASK, rec["address"], rec["length"]


def event_tag_captured(captured: np.ndarray) -> np.ndarray:
    """Whether an event's tag byte is among the ``captured`` data bytes of its completion."""
    return captured > EVENT_TAG_OFFSET


def interrupt_words(head: np.ndarray, captured: np.ndarray) -> np.ndarray:
    """The 4-byte interrupt word (u32 little-endian) of many completions on 0x83: ``head`` holds
    each completion's first data bytes as a row of uint8, ``captured`` how many of them the file
    has. A byte that was not captured reads as zero, whatever ``head`` holds there: a short
    snaplen then loses high bits, never invents them."""
    raw = np.ascontiguousarray(head[:, :INTERRUPT_LEN], dtype=np.uint8)
    kept = np.arange(INTERRUPT_LEN) < np.minimum(captured, INTERRUPT_LEN)[:, None]
    raw = np.ascontiguousarray(np.where(kept, raw, 0), dtype=np.uint8)
    return raw.view("<u4").reshape(len(raw))


def interrupt_names(value: int) -> list[str]:
    """The names of the bits set in a 4-byte interrupt word on 0x83 (bit 0 fatal error, bits 1-4
    the top-level interrupts: thermal shutdown, PCIe error, MBIST, thermal warning); a bit
    without a name is given as ``bit N``."""
    return [INTERRUPT_BITS.get(b, f"bit {b}") for b in range(32) if value >> b & 1]
