"""Follow a pcapng file while another program (dumpcap) is still writing it.

Each ``poll()`` hands on the blocks completed since the last one. A block whose bytes have not
all reached the file yet is not an error: it is left for a later poll. Only a block that can
never be valid (a bad length, a missing section header) stops the follower, and that is
reported as damage, not raised. Memory is bounded: at most ``max_read`` bytes (or one block,
if a block is larger) are held per poll. ``FollowStream`` turns the follower into a stream
that waits at the end of the file until told the writer has stopped (the live feed's source).
"""

from __future__ import annotations

import os
import select
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from usbtrace.formats.pcapng_writer import BT_EPB, BT_SHB, BYTE_ORDER_MAGIC

_SWAPPED_MAGIC = struct.unpack("<I", struct.pack(">I", BYTE_ORDER_MAGIC))[0]
_MIN_BLOCK = 12
MAX_READ = 8 << 20


@dataclass
class FollowPoll:
    """What one poll found: complete blocks (bytes), how many were packets, the offset after."""

    data: bytes
    blocks: int
    packets: int
    complete_size: int  # bytes of the file that are complete blocks, from its start


class PcapngFollower:
    """Reads the complete blocks a writer appends to ``path``; never reads a partial block."""

    def __init__(self, path: str | Path, *, max_read: int = MAX_READ) -> None:
        self.path = Path(path)
        self.max_read = max_read
        self.offset = 0  # end of the last complete block handed on
        self.order = "<"
        self.packets = 0
        self.damage: str | None = None  # why following stopped, if the file cannot be valid
        self.bytes_read = 0  # all bytes read from the file: a partial block's again next time
        self._fd: int | None = None

    def poll(self) -> FollowPoll:
        if self.damage is not None or not self._open():
            return FollowPoll(b"", 0, 0, self.offset)
        assert self._fd is not None
        data = os.pread(self._fd, self.max_read, self.offset)
        self.bytes_read += len(data)
        pos, blocks, packets = 0, 0, 0
        while len(data) - pos >= _MIN_BLOCK:
            (block_type,) = struct.unpack_from("<I", data, pos)
            if block_type == BT_SHB:
                (magic,) = struct.unpack_from("<I", data, pos + 8)
                if magic == BYTE_ORDER_MAGIC:
                    self.order = "<"
                elif magic == _SWAPPED_MAGIC:
                    self.order = ">"
                else:
                    self._damaged(pos, "section header with a bad byte-order magic")
                    break
            elif self.offset + pos == 0:
                self._damaged(0, "not a pcapng file (no section header block at the start)")
                break
            (length,) = struct.unpack_from(self.order + "I", data, pos + 4)
            if length < _MIN_BLOCK or length % 4:
                self._damaged(pos, f"block length {length} is not valid")
                break
            if pos + length > len(data):
                if pos == 0 and length > len(data) == self.max_read:
                    # one block larger than a read: fetch exactly it, once it is all there
                    data = os.pread(self._fd, length, self.offset)
                    self.bytes_read += len(data)
                    if len(data) < length:
                        break
                    continue
                break  # the writer has not finished this block yet
            (trailer,) = struct.unpack_from(self.order + "I", data, pos + length - 4)
            if trailer != length:
                self._damaged(pos, f"block lengths disagree ({length} vs {trailer})")
                break
            blocks += 1
            packets += block_type == BT_EPB
            pos += length
        self.offset += pos
        self.packets += packets
        return FollowPoll(data[:pos], blocks, packets, self.offset)

    def _damaged(self, pos: int, what: str) -> None:
        self.damage = f"at byte {self.offset + pos}: {what}"

    def _open(self) -> bool:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return False  # not created yet
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


FOLLOW_POLL_S = 0.1  # how often a follower at the end of the file looks for more


class FollowStream:
    """A growing pcapng as a stream that ends only when told: ``stream`` gives the file's
    complete blocks as the writer appends them and waits at the end of the file until
    ``stop()``, then gives what is left and ends.

    The reader of a capture takes it as it takes a FIFO (``formats/capture.py`` reads pipes as
    they fill, never seeking), so the pipeline runs once over the file, each byte read once.
    A thread copies the blocks into an OS pipe; the pipe's small buffer is the backpressure, so
    memory stays bounded when the reader falls behind.
    """

    def __init__(self, path: str | Path, *, poll_s: float = FOLLOW_POLL_S) -> None:
        self.follower = PcapngFollower(path)
        self.poll_s = poll_s
        self._stop = threading.Event()
        read_fd, self._write_fd = os.pipe()
        self.stream: BinaryIO = open(read_fd, "rb")  # noqa: SIM115 (closed by close())
        self._thread = threading.Thread(target=self._copy, name="usbtrace-follow", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()  # read before the poll: nothing appended is lost
                data = self.follower.poll().data
                view = memoryview(data)
                while view:
                    view = view[os.write(self._write_fd, view) :]
                if not data and (stopping or self.follower.damage is not None):
                    return
                if len(data) < self.follower.max_read // 2:
                    # caught up with the writer: what it appends meanwhile comes as one piece
                    self._stop.wait(self.poll_s)
        except OSError:
            return  # the reader closed its end: nobody wants more
        finally:
            os.close(self._write_fd)
            self.follower.close()

    def drained(self) -> bool:
        """Whether the reader has taken every byte handed on so far (the file's end, for now)."""
        if self.stream.closed:
            return True
        return not select.select([self.stream], [], [], 0)[0]

    def stop(self, wait_s: float | None = None) -> None:
        """The writer has finished: hand on the rest of the file, then end the stream."""
        self._stop.set()
        self._thread.join(wait_s)

    def close(self) -> None:
        self._stop.set()
        self.stream.close()  # a copy still writing gets EPIPE and stops
        self._thread.join(5)
