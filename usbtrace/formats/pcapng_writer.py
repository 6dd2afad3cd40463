"""A small streaming pcapng writer: the project's synthetic captures and its metadata blocks.

Writes little-endian sections. Used by the synthetic-capture generator, the tests and the capture
runner (which appends a metadata block to the file dumpcap wrote; see ``metadata.py``).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_SPB = 0x00000003
BT_NRB = 0x00000004
BT_ISB = 0x00000005
BT_EPB = 0x00000006
BT_CUSTOM_COPY = 0x00000BAD
BT_CUSTOM_NOCOPY = 0x40000BAD
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_END = 0
OPT_COMMENT = 1
OPT_SHB_HARDWARE = 2
OPT_SHB_OS = 3
OPT_SHB_USERAPPL = 4
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_ISB_STARTTIME = 2
OPT_ISB_ENDTIME = 3
OPT_ISB_IFRECV = 4
OPT_ISB_IFDROP = 5


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def encode_options(options: list[tuple[int, bytes]], order: str = "<") -> bytes:
    """Options of a block in byte order ``order`` ("<" or ">"), with the end-of-options mark."""
    if not options:
        return b""
    out = bytearray()
    for code, value in options:
        out += struct.pack(order + "HH", code, len(value)) + value + bytes(_pad4(len(value)))
    out += struct.pack(order + "HH", OPT_END, 0)
    return bytes(out)


def encode_block(block_type: int, body: bytes, order: str = "<") -> bytes:
    body = body + bytes(_pad4(len(body)))
    total = len(body) + 12
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


class PcapngWriter:
    """Write blocks to a binary stream; the caller owns (and closes) the stream."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        comment: str | None = None,
        application: str = "usbtrace",
        section: bool = True,
    ) -> None:
        self.stream = stream
        self._resolution: list[int] = []  # units per second, per interface
        if section:
            self.section(comment=comment, application=application)

    def section(self, *, comment: str | None = None, application: str = "usbtrace") -> None:
        options: list[tuple[int, bytes]] = []
        if comment:
            options.append((OPT_COMMENT, comment.encode()))
        options.append((OPT_SHB_USERAPPL, application.encode()))
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + encode_options(options)
        self.stream.write(encode_block(BT_SHB, body))
        self._resolution = []

    def interface(
        self, linktype: int = 220, snaplen: int = 0, name: str = "usbmon0", tsresol_exp: int = 6
    ) -> int:
        """Add an interface; ``tsresol_exp`` is the power of ten (6 = microseconds)."""
        options = [(OPT_IF_NAME, name.encode()), (OPT_IF_TSRESOL, bytes([tsresol_exp]))]
        body = struct.pack("<HHI", linktype, 0, snaplen) + encode_options(options)
        self.stream.write(encode_block(BT_IDB, body))
        self._resolution.append(10**tsresol_exp)
        return len(self._resolution) - 1

    def packet(
        self,
        data: bytes,
        ts_ns: int,
        *,
        orig_len: int | None = None,
        interface: int = 0,
        comment: str | None = None,
    ) -> None:
        ts = ts_ns * self._resolution[interface] // 1_000_000_000
        options = encode_options([(OPT_COMMENT, comment.encode())]) if comment else b""
        body = (
            struct.pack(
                "<IIIII",
                interface,
                ts >> 32,
                ts & 0xFFFFFFFF,
                len(data),
                len(data) if orig_len is None else orig_len,
            )
            + data
            + bytes(_pad4(len(data)))
            + options
        )
        self.stream.write(encode_block(BT_EPB, body))

    def statistics(self, ts_ns: int, *, received: int, dropped: int, interface: int = 0) -> None:
        ts = ts_ns * self._resolution[interface] // 1_000_000_000
        options = encode_options(
            [
                (OPT_ISB_IFRECV, struct.pack("<Q", received)),
                (OPT_ISB_IFDROP, struct.pack("<Q", dropped)),
            ]
        )
        body = struct.pack("<III", interface, ts >> 32, ts & 0xFFFFFFFF) + options
        self.stream.write(encode_block(BT_ISB, body))

    def custom(self, pen: int, data: bytes, *, copyable: bool = True) -> None:
        block_type = BT_CUSTOM_COPY if copyable else BT_CUSTOM_NOCOPY
        self.stream.write(encode_block(block_type, struct.pack("<I", pen) + data))
