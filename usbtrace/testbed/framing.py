"""Device side of the single-EP bulk-OUT stream: 8-byte headers, then exactly that many bytes.

The host sends no zero-length packets, so a transfer whose length is a multiple of the max packet
size only completes on the device when the device asks for exactly the bytes that are left
(RECIPE §5.4). The reader therefore never asks for more than the announced remainder, which also
keeps one transfer's bytes out of the next one's header.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from usbtrace.edgetpu.constants import HEADER_LEN, OUT_TAGS, Tag

# A read of up to this much per call: small enough for GadgetFS's kernel bounce buffer, large
# enough that syscalls do not dominate.
READ_PIECE = 256 * 1024
# With a pace set, parameters are taken in small pieces so the rate is smooth at URB scale.
PACED_READ_PIECE = 32 * 1024

_HEADER = struct.Struct("<IB3s")


@dataclass(frozen=True)
class ReceivedTransfer:
    tag: Tag
    length: int  # announced by the header
    received: int  # payload bytes actually read (less only if the link went away)
    t_header: float  # monotonic seconds
    t_done: float


@dataclass(frozen=True)
class BadHeader:
    data: bytes


def parse_header(data: bytes) -> tuple[Tag, int] | None:
    """(tag, length) of an 8-byte bulk-OUT header, or None if ``data`` is not one."""
    if len(data) != HEADER_LEN:
        return None
    length, tag_byte, rest = _HEADER.unpack(data)
    if tag_byte >> 4 or rest != bytes(3) or tag_byte not in OUT_TAGS:
        return None
    return Tag(tag_byte), length


def make_header(tag: Tag, length: int) -> bytes:
    return _HEADER.pack(length, int(tag), bytes(3))


class Pacer:
    """Holds parameter consumption to ``rate`` bytes per second within each transfer.

    The clock restarts with every transfer, so idle time between requests earns no credit.
    A rate of 0 means as fast as the link delivers.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = 0.0
        self._done = 0

    def start(self) -> None:
        self._start = self._clock()
        self._done = 0

    def consumed(self, n: int) -> None:
        if self.rate <= 0:
            return
        self._done += n
        wait = self._start + self._done / self.rate - self._clock()
        if wait > 0:
            self._sleep(wait)


def read_transfers(
    read: Callable[[int], bytes],
    pacer: Pacer | None = None,
    clock: Callable[[], float] = time.monotonic,
    paced: Callable[[Tag], bool] = lambda tag: tag == Tag.PARAMETERS,
) -> Iterator[ReceivedTransfer | BadHeader]:
    """Logical transfers read from the bulk-OUT endpoint until ``read`` raises.

    ``read(n)`` returns at most ``n`` bytes (one device-side request). Transfers for which
    ``paced(tag)`` holds (asked when their header arrives) are consumed at the ``pacer``'s rate;
    everything else as fast as it comes.
    """
    while True:
        data = read(HEADER_LEN)
        if not data:
            continue  # a zero-length packet where a header was due: nothing to frame
        parsed = parse_header(data)
        if parsed is None:
            yield BadHeader(data)
            continue
        tag, length = parsed
        t_header = clock()
        pace = pacer if pacer is not None and pacer.rate > 0 and paced(tag) else None
        piece = PACED_READ_PIECE if pace else READ_PIECE
        if pace:
            pace.start()
        received = 0
        while received < length:
            got = len(read(min(piece, length - received)))
            received += got
            if pace:
                pace.consumed(got)
        yield ReceivedTransfer(tag, length, received, t_header, clock())
