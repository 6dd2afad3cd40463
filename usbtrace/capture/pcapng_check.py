"""Is the pcapng file dumpcap wrote complete, and what does it hold: read by the capture reader.

The capture runner checks dumpcap's file before appending its metadata, and cuts off a block a
killed dumpcap left half-written so that the metadata block after it is reachable. Both questions
are answered by ``usbtrace.formats.capture`` itself, the reader every command uses: the file is
read the way ``summarize`` will read it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usbtrace.errors import CaptureWarning, InputError
from usbtrace.formats.capture import Capture, CaptureInfo


@dataclass
class FileCheck:
    """What reading a pcapng file found."""

    size: int
    complete_size: int  # bytes up to the end of the last complete block
    sections: int = 0
    interfaces: int = 0
    packets: int = 0
    statistics: int = 0  # interfaces with an Interface Statistics Block
    metadata_blocks: int = 0
    dropped: int | None = None  # from the interface statistics, if any
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None and self.complete_size == self.size and self.sections > 0


def read_info(path: str | Path) -> tuple[CaptureInfo | None, InputError | None]:
    """Read the whole file with the capture reader: what it found, and the error that stopped it.

    The link type is not checked here (a runner test captures the loopback interface), and a cut
    last block is in ``info.cut_at`` rather than a warning: the caller reports it.
    """
    try:
        cap = Capture(path)
    except InputError as exc:
        return None, exc
    error: InputError | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        try:
            for _ in cap.batches():
                pass
        except InputError as exc:
            usable = cap.info.interfaces and exc.offset is None
            error = None if usable else exc  # "not usbmon" is no damage to the file
    return cap.info, error


def check_file(path: str | Path) -> FileCheck:
    size = Path(path).stat().st_size
    result = FileCheck(size=size, complete_size=size)
    info, error = read_info(path)
    if info is None or info.format != "pcapng":
        result.complete_size = 0
        result.problem = "not a pcapng file" + (f": {error.message}" if error else "")
        return result
    result.sections = info.sections
    result.interfaces = len(info.interfaces)
    result.packets = info.packets
    with_stats = [i for i in info.interfaces if i.received is not None or i.dropped is not None]
    result.statistics = len(with_stats)
    if with_stats:
        result.dropped = info.dropped
    result.metadata_blocks = len(info.metadata)
    if info.cut_at is not None:
        result.complete_size = info.cut_at
        result.problem = f"at byte {info.cut_at}: last block cut short"
    elif error is not None:
        # damage inside the file, not a half-written tail: nothing may be cut away
        result.problem = (
            error.message if error.offset is None else f"at byte {error.offset}: {error.message}"
        )
    return result


def read_metadata_payloads(path: str | Path) -> list[dict[str, Any]]:
    """usbtrace's metadata objects in the file, in file order."""
    info, _ = read_info(path)
    return list(info.metadata) if info is not None else []


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
