"""A small read-only FlatBuffers table reader that works from field slot numbers.

The TFLite model and the Edge TPU ``DWN1`` package are both FlatBuffers. usbtrace reads only a
handful of fields from each, so instead of generated code it walks tables by slot number (the
order of declaration in the schema). Every read is bounds-checked: a damaged file raises
``FlatbufferError`` with the offending offset instead of returning garbage or crashing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")

SCALAR_FORMATS = {
    "bool": "<?",
    "int8": "<b",
    "uint8": "<B",
    "int16": "<h",
    "uint16": "<H",
    "int32": "<i",
    "uint32": "<I",
    "int64": "<q",
    "uint64": "<Q",
    "float32": "<f",
}


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer where one was expected."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _unpack(fmt: struct.Struct, buf: memoryview, pos: int) -> int:
    if pos < 0 or pos + fmt.size > len(buf):
        raise FlatbufferError(f"read of {fmt.size} bytes outside the buffer", pos)
    return fmt.unpack_from(buf, pos)[0]


def root_table(buf: bytes | bytearray | memoryview, identifier: bytes | None = None) -> Table:
    """The root table of a flatbuffer, optionally checking its 4-byte file identifier."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    if len(view) < 8:
        raise FlatbufferError("too short to be a flatbuffer", 0)
    if identifier is not None and bytes(view[4:8]) != identifier:
        raise FlatbufferError(
            f"file identifier is {bytes(view[4:8])!r}, expected {identifier!r}", 4
        )
    return Table(view, _unpack(_U32, view, 0))


def file_identifier(buf: bytes | bytearray | memoryview) -> bytes:
    return bytes(memoryview(buf)[4:8])


@dataclass(frozen=True)
class Table:
    """One flatbuffer table: ``buf`` is the whole buffer, ``pos`` the table's start in it."""

    buf: memoryview
    pos: int

    def _field_pos(self, slot: int) -> int | None:
        vtable = self.pos - _unpack(_I32, self.buf, self.pos)
        vtable_len = _unpack(_U16, self.buf, vtable)
        entry = 4 + 2 * slot
        if entry + 2 > vtable_len:
            return None  # field newer than the writer's schema: absent
        offset = _unpack(_U16, self.buf, vtable + entry)
        return None if offset == 0 else self.pos + offset

    def has(self, slot: int) -> bool:
        return self._field_pos(slot) is not None

    def scalar(self, slot: int, kind: str, default: int | float | bool = 0) -> int | float | bool:
        pos = self._field_pos(slot)
        if pos is None:
            return default
        fmt = struct.Struct(SCALAR_FORMATS[kind])
        return _unpack(fmt, self.buf, pos)

    def integer(self, slot: int, kind: str = "int32", default: int = 0) -> int:
        return int(self.scalar(slot, kind, default))

    def _indirect(self, slot: int) -> int | None:
        pos = self._field_pos(slot)
        if pos is None:
            return None
        return pos + _unpack(_U32, self.buf, pos)

    def table(self, slot: int) -> Table | None:
        target = self._indirect(slot)
        return None if target is None else Table(self.buf, target)

    def vector(self, slot: int) -> tuple[int, int]:
        """(start of the elements, element count); (0, 0) when the field is absent."""
        target = self._indirect(slot)
        if target is None:
            return 0, 0
        count = _unpack(_U32, self.buf, target)
        return target + 4, count

    def bytes(self, slot: int) -> memoryview:
        start, count = self.vector(slot)
        if start + count > len(self.buf):
            raise FlatbufferError(f"byte vector of {count} bytes runs past the end", start)
        return self.buf[start : start + count]

    def vector_len(self, slot: int) -> int:
        return self.vector(slot)[1]

    def string(self, slot: int, default: str = "") -> str:
        if not self.has(slot):
            return default
        return bytes(self.bytes(slot)).decode("utf-8", errors="replace")

    def scalars(self, slot: int, kind: str) -> list[int | float]:
        start, count = self.vector(slot)
        fmt = struct.Struct(SCALAR_FORMATS[kind])
        if start + count * fmt.size > len(self.buf):
            raise FlatbufferError(f"vector of {count} elements runs past the end", start)
        return [fmt.unpack_from(self.buf, start + i * fmt.size)[0] for i in range(count)]

    def tables(self, slot: int) -> list[Table]:
        start, count = self.vector(slot)
        out = []
        for i in range(count):
            element = start + 4 * i
            out.append(Table(self.buf, element + _unpack(_U32, self.buf, element)))
        return out

    def byte_vectors(self, slot: int) -> list[memoryview]:
        """A vector of strings or of nested ``[ubyte]`` vectors, each as raw bytes."""
        start, count = self.vector(slot)
        out = []
        for i in range(count):
            element = start + 4 * i
            target = element + _unpack(_U32, self.buf, element)
            length = _unpack(_U32, self.buf, target)
            if target + 4 + length > len(self.buf):
                raise FlatbufferError("nested byte vector runs past the end", target)
            out.append(self.buf[target + 4 : target + 4 + length])
        return out


def nested_root(data: memoryview, identifier: bytes | None = None) -> Table:
    """A flatbuffer stored inside another one as ``[ubyte]``: offsets restart at its first byte."""
    return root_table(data, identifier)
