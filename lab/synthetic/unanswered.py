"""A synthetic capture that ends in a flood of bulk-IN submits that never complete (issue 13).

A preset session (an Edge TPU's complete traffic) is followed by ``count`` submits on one bulk-IN
endpoint of the same device, each with its own URB id and none ever completed: what a driver that
keeps posting reads to a device that stopped answering leaves behind. The flood is written in
bulk with numpy (a few million records in seconds): one template Enhanced Packet Block, tiled,
with its URB id and timestamps patched per copy. The session part comes from the lab's record
writer, so it is exactly the preset's capture and its ground truth still holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.synthetic.presets import preset
from lab.synthetic.session import Session, generate, layout
from lab.usb.record import UsbRecord, header_len, usbmon_headers
from lab.usb.writer import custom, encode
from usbtrace.edgetpu.constants import EP_OUTPUT_IN
from usbtrace.formats.metadata import METADATA_PEN, encode_metadata
from usbtrace.formats.pcapng_writer import BT_EPB
from usbtrace.formats.usbmon import (
    LINKTYPE_USB_LINUX_MMAPPED,
    STATUS_IN_PROGRESS,
    URB_SUBMIT,
    XFER_BULK,
)

_HEADER_LEN = header_len(LINKTYPE_USB_LINUX_MMAPPED)  # the mmapped usbmon header
FLOOD_URB_ID = 0xFFFF_A000_0000_0000  # far from the session's own pool of URB ids
FLOOD_URB_STEP = 0xC0  # URB structs 192 bytes apart, as in the session's pool
FLOOD_GAP_US = 1_000  # quiet time between the session's last record and the flood
READ_LEN = 1024  # bytes each unanswered read asks for

# One EPB of a header-only usbmon record: 28 fixed bytes, the 64-byte header, the length copy.
_EPB = np.dtype(
    [
        ("type", "<u4"),
        ("total", "<u4"),
        ("interface", "<u4"),
        ("ts_hi", "<u4"),
        ("ts_lo", "<u4"),
        ("caplen", "<u4"),
        ("origlen", "<u4"),
        ("urb_id", "<u8"),  # the usbmon header, split where the flood differs per record
        ("hdr_mid", "V8"),
        ("ts_sec", "<i8"),
        ("ts_usec", "<i4"),
        ("hdr_tail", "V36"),
        ("total_copy", "<u4"),
    ]
)
assert _EPB.itemsize == 28 + _HEADER_LEN + 4
_ROWS_PER_WRITE = 1 << 20


@dataclass
class UnansweredCapture:
    path: Path
    frames: int  # the session's records plus the flood
    bytes: int
    session: Session  # the session part: its truth is the capture's expected requests
    flood_start_us: int


def write_unanswered(
    path: str | os.PathLike[str],
    count: int,
    *,
    preset_name: str = "conv_50",
    endpoint: int = EP_OUTPUT_IN,
    spacing_us: int = 1,
    snaplen: int = 128,
    overwrite: bool = False,
) -> UnansweredCapture:
    """Write the preset's session, then ``count`` never-completed submits on ``endpoint``."""
    if count < 0 or spacing_us < 0:
        raise ValueError("count and spacing_us must not be negative")
    profile = preset(preset_name, snaplen=snaplen)
    session = generate(profile)
    dev = profile.devices[0]
    flood_start = session.truth.end_us + FLOOD_GAP_US
    target = Path(path)
    lay = layout(profile)
    lay.statistics = False  # the flood follows the session's records in the same section
    lay.comment = (
        f"{lay.comment}; then {count} bulk-IN submits on {endpoint:#04x} that never complete"
    )
    lay.application = "usbtrace synthetic (unanswered URBs)"
    template = UsbRecord(
        ts_ns=0, urb_id=0, urb_type=URB_SUBMIT, xfer=XFER_BULK, epnum=endpoint,
        devnum=dev.address, busnum=dev.bus, status=STATUS_IN_PROGRESS, urb_len=READ_LEN,
        data_len=0, xfer_flags=0x200,
    )  # fmt: skip
    with open(target, "wb" if overwrite else "xb") as stream:
        stream.write(encode(session.records, lay).data)
        _write_flood(stream, usbmon_headers([template]).tobytes(), count, flood_start, spacing_us)
        if session.metadata is not None:
            stream.write(custom("<", METADATA_PEN, encode_metadata(session.metadata)))
    return UnansweredCapture(
        target, len(session.records) + count, target.stat().st_size, session, flood_start
    )


def _write_flood(stream: object, header: bytes, count: int, t0_us: int, spacing_us: int) -> None:
    one = np.zeros(1, _EPB)
    raw = one.view(np.uint8)
    raw[28 : 28 + _HEADER_LEN] = np.frombuffer(header, np.uint8)
    one["type"], one["total"], one["total_copy"] = BT_EPB, _EPB.itemsize, _EPB.itemsize
    one["caplen"] = one["origlen"] = _HEADER_LEN
    for lo in range(0, count, _ROWS_PER_WRITE):
        k = np.arange(lo, min(count, lo + _ROWS_PER_WRITE), dtype=np.int64)
        rows = np.repeat(one, len(k))
        ts = t0_us + k * spacing_us
        rows["ts_hi"], rows["ts_lo"] = ts >> 32, ts & 0xFFFFFFFF
        rows["ts_sec"], rows["ts_usec"] = ts // 1_000_000, ts % 1_000_000
        rows["urb_id"] = FLOOD_URB_ID + k.astype(np.uint64) * np.uint64(FLOOD_URB_STEP)
        stream.write(rows.tobytes())  # type: ignore[attr-defined]
