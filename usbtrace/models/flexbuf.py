"""The subset of FlexBuffers that an ``edgetpu-custom-op``'s ``custom_options`` uses.

The custom op's options are a FlexBuffer map whose values are integers, a string holding the
``DWN1`` package (raw bytes, not UTF-8, so it must never be decoded as text), and small vectors.
The reader handles every byte width and any value type by kind (scalars, strings/blobs, maps and
vectors). The writer produces only what the synthetic compiled-model writer needs: a map of
integers, byte strings and integer vectors, with 32-bit widths throughout (valid FlexBuffers, just
not the most compact encoding).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

# FlexBuffer value types (from the FlexBuffers format description)
NULL, INT, UINT, FLOAT, KEY, STRING = 0, 1, 2, 3, 4, 5
INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT = 6, 7, 8
MAP, VECTOR = 9, 10
VECTOR_INT, VECTOR_UINT, VECTOR_FLOAT, VECTOR_KEY = 11, 12, 13, 14
VECTOR_STRING_DEPRECATED = 15
FIXED_VECTORS = range(16, 25)  # typed vectors of fixed length 2, 3 or 4
BLOB, BOOL, VECTOR_BOOL = 25, 26, 36

_INLINE = (NULL, INT, UINT, FLOAT, BOOL)


class FlexbufferError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _read_uint(buf: memoryview, pos: int, width: int) -> int:
    if pos < 0 or pos + width > len(buf):
        raise FlexbufferError("read outside the FlexBuffer", pos)
    return int.from_bytes(buf[pos : pos + width], "little", signed=False)


def _read_int(buf: memoryview, pos: int, width: int) -> int:
    if pos < 0 or pos + width > len(buf):
        raise FlexbufferError("read outside the FlexBuffer", pos)
    return int.from_bytes(buf[pos : pos + width], "little", signed=True)


def _read_float(buf: memoryview, pos: int, width: int) -> float:
    if width == 4:
        return struct.unpack_from("<f", buf, pos)[0]
    if width == 8:
        return struct.unpack_from("<d", buf, pos)[0]
    raise FlexbufferError(f"float of width {width}", pos)


@dataclass(frozen=True)
class Ref:
    """One FlexBuffer value: where it sits, its parent's byte width, and its packed type."""

    buf: memoryview
    pos: int
    parent_width: int
    type: int
    child_width: int  # from the packed type: width of the value's own size field / elements

    def _target(self) -> int:
        return self.pos - _read_uint(self.buf, self.pos, self.parent_width)

    def as_int(self) -> int:
        if self.type == INT:
            return _read_int(self.buf, self.pos, self.parent_width)
        if self.type in (UINT, BOOL):
            return _read_uint(self.buf, self.pos, self.parent_width)
        if self.type == INDIRECT_INT:
            return _read_int(self.buf, self._target(), self.child_width)
        if self.type == INDIRECT_UINT:
            return _read_uint(self.buf, self._target(), self.child_width)
        if self.type == FLOAT:
            return int(_read_float(self.buf, self.pos, self.parent_width))
        raise FlexbufferError(f"value of type {self.type} is not a number", self.pos)

    def as_bytes(self) -> memoryview:
        """The raw bytes of a STRING, KEY or BLOB, without any text decoding."""
        if self.type in (STRING, BLOB):
            target = self._target()
            size = _read_uint(self.buf, target - self.child_width, self.child_width)
            if target + size > len(self.buf):
                raise FlexbufferError(f"string of {size} bytes runs past the end", target)
            return self.buf[target : target + size]
        if self.type == KEY:
            target = end = self._target()
            while end < len(self.buf) and self.buf[end] != 0:  # keys are short: scan, no copy
                end += 1
            return self.buf[target:end]
        raise FlexbufferError(f"value of type {self.type} is not a string", self.pos)

    def as_list(self) -> list[Ref]:
        """Elements of any vector kind (untyped, typed or fixed)."""
        target = self._target()
        width = self.child_width
        if self.type in (VECTOR, MAP):
            size = _read_uint(self.buf, target - width, width)
            types = target + size * width
            return [
                _packed(self.buf, target + i * width, width, _read_uint(self.buf, types + i, 1))
                for i in range(size)
            ]
        if VECTOR_INT <= self.type <= VECTOR_STRING_DEPRECATED or self.type == VECTOR_BOOL:
            element_type = {VECTOR_BOOL: BOOL}.get(self.type, self.type - VECTOR_INT + INT)
            size = _read_uint(self.buf, target - width, width)
            return [
                Ref(self.buf, target + i * width, width, element_type, width) for i in range(size)
            ]
        if self.type in FIXED_VECTORS:
            length = (self.type - 16) // 3 + 2
            element_type = (self.type - 16) % 3 + INT
            return [
                Ref(self.buf, target + i * width, width, element_type, width) for i in range(length)
            ]
        raise FlexbufferError(f"value of type {self.type} is not a vector", self.pos)

    def as_map(self) -> dict[str, Ref]:
        if self.type != MAP:
            raise FlexbufferError(f"value of type {self.type} is not a map", self.pos)
        target = self._target()
        width = self.child_width
        # a map's values are preceded by: offset to the keys vector, its byte width, the count
        keys_at = target - 3 * width
        keys_width = _read_uint(self.buf, target - 2 * width, width)
        keys = Ref(self.buf, keys_at, width, VECTOR_KEY, keys_width)
        names = [bytes(k.as_bytes()).decode("utf-8", "replace") for k in keys.as_list()]
        return dict(zip(names, self.as_list(), strict=True))

    def value(self) -> object:
        """A plain Python value, for display: strings stay bytes."""
        if self.type in _INLINE or self.type in (INDIRECT_INT, INDIRECT_UINT):
            return self.as_int() if self.type != NULL else None
        if self.type in (STRING, BLOB, KEY):
            return bytes(self.as_bytes())
        if self.type == MAP:
            return {k: v.value() for k, v in self.as_map().items()}
        return [v.value() for v in self.as_list()]


def _packed(buf: memoryview, pos: int, parent_width: int, packed_type: int) -> Ref:
    return Ref(buf, pos, parent_width, packed_type >> 2, 1 << (packed_type & 3))


def root(data: bytes | bytearray | memoryview) -> Ref:
    buf = memoryview(data)
    if len(buf) < 3:
        raise FlexbufferError("too short to be a FlexBuffer", 0)
    width = buf[-1]
    if width not in (1, 2, 4, 8) or len(buf) < width + 2:
        raise FlexbufferError(f"root byte width {width} is invalid", len(buf) - 1)
    return _packed(buf, len(buf) - 2 - width, width, buf[-2])


# --- writer ---------------------------------------------------------------------------------------

_W32 = 2  # bit-width code for 4 bytes


def _pack_type(kind: int) -> int:
    return (kind << 2) | _W32


def dumps_map(values: Mapping[str, int | bytes | list[int]]) -> bytes:
    """A FlexBuffer whose root is a map. ``bytes`` values become STRING (as the Edge TPU
    compiler stores its package), ``list[int]`` values become VECTOR_INT."""
    buf = bytearray()

    def align4() -> None:
        buf.extend(b"\0" * (-len(buf) % 4))

    def u32(value: int) -> None:
        buf.extend(struct.pack("<I", value))

    names = sorted(values, key=lambda k: k.encode())  # readers binary-search the keys
    key_at = {}
    for name in names:
        key_at[name] = len(buf)
        buf.extend(name.encode() + b"\0")
    child_at: dict[str, int] = {}
    for name in names:
        value = values[name]
        if isinstance(value, (bytes, bytearray)):
            align4()
            u32(len(value))
            child_at[name] = len(buf)
            buf.extend(value)
            buf.append(0)
        elif isinstance(value, list):
            align4()
            u32(len(value))
            child_at[name] = len(buf)
            for item in value:
                buf.extend(struct.pack("<i", item))
    align4()
    u32(len(names))
    keys_vector = len(buf)
    for name in names:
        u32(len(buf) - key_at[name])
    u32(len(buf) - keys_vector)  # offset to the keys vector
    u32(4)  # byte width of the keys vector
    u32(len(names))
    map_at = len(buf)
    types = []
    for name in names:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, bytes, bytearray, list)):
            raise TypeError(f"cannot store {type(value).__name__} for key {name!r}")
        if isinstance(value, int):
            buf.extend(struct.pack("<i", value))
            types.append(_pack_type(INT))
        else:
            u32(len(buf) - child_at[name])
            types.append(
                _pack_type(STRING if isinstance(value, (bytes, bytearray)) else VECTOR_INT)
            )
    buf.extend(bytes(types))
    align4()
    u32(len(buf) - map_at)
    buf.append(_pack_type(MAP))
    buf.append(4)
    return bytes(buf)
