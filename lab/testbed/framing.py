"""Device side of the single-EP bulk-OUT stream: 8-byte headers, then exactly that many bytes.

The host sends no zero-length packets, so a transfer whose length is a multiple of the max packet
size only completes on the device when the device asks for exactly the bytes that are left
(RECIPE §5.4). The reader therefore never asks for more than the announced remainder, which also
keeps one transfer's bytes out of the next one's header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from usbtrace.edgetpu.constants import HEADER_LEN, OUT_TAGS, Tag
from usbtrace.edgetpu.wire import decode_header

# A read of up to this much per call: small enough for GadgetFS's kernel bounce buffer, large
# enough that syscalls do not dominate.
READ_PIECE = 256 * 1024
# A paced transfer is taken in small pieces, so that its rate is smooth at URB scale.
PACED_READ_PIECE = 64 * 1024


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
    """(tag, length) of a bulk-OUT header the device accepts (a host sends only tags 0-2)."""
    parsed = decode_header(data)
    if parsed is None or parsed[0] not in OUT_TAGS:
        return None
    return Tag(parsed[0]), parsed[1]


class Pacer:
    """Holds the consumption of a transfer to a rate in bytes per second.

    Every piece read costs ``n / rate`` seconds counted from when it arrived (or from when the
    previous one was paid off, if later), so waiting for the host earns no credit and a burst
    after an idle moment is held to the rate like the rest. A rate of 0 means no limit.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.rate = 0.0
        self._paid_until = 0.0

    def start(self, rate: float) -> None:
        self.rate = rate
        self._paid_until = self._clock()

    def consumed(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        self._paid_until = max(self._paid_until, now) + n / self.rate
        wait = self._paid_until - now
        if wait > 0:
            self._sleep(wait)


def read_transfers(
    read: Callable[[int], bytes],
    rate_for: Callable[[Tag], float] = lambda tag: 0.0,
    pacer: Pacer | None = None,
) -> Iterator[ReceivedTransfer | BadHeader]:
    """Logical transfers read from the bulk-OUT endpoint until ``read`` raises.

    ``read(n)`` returns at most ``n`` bytes (one device-side request). Each transfer is consumed
    at ``rate_for(tag)`` bytes per second (asked when its header arrives; 0 = unlimited).
    """
    pacer = pacer or Pacer()
    clock = pacer._clock
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
        rate = rate_for(tag)
        pacer.start(rate)
        piece = PACED_READ_PIECE if rate > 0 else READ_PIECE
        received = 0
        while received < length:
            got = len(read(min(piece, length - received)))
            received += got
            pacer.consumed(got)
        yield ReceivedTransfer(tag, length, received, t_header, clock())
