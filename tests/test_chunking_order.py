"""Results that must not depend on where the reader cut the file into batches, and inspect's
durations on garbage timestamps (each test here failed before its fix; found in review)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference

from usbtrace.edgetpu import constants as C
from usbtrace.formats import capture
from usbtrace.formats.usbmon import XFER_CONTROL
from usbtrace.pipeline import decode_capture
from usbtrace.report.inspect_view import inspect_rows

# -- a superseded submit carried across a batch boundary ------------------------------------


def _dfu_capture(path: Path) -> Path:
    """A boot-loader download whose first DNLOAD lost its completion; the kernel reused that URB's
    address (its URB id) for the last block, so the pairer closes block 0 as superseded."""
    b = CaptureBuilder()
    b.device_descriptor(0, vid=C.VID_GLOBAL_UNICHIP, pid=C.PID_EDGETPU_DFU)

    def dnload(n: int) -> bytes:
        return struct.pack("<BBHHH", C.REQTYPE_DFU_OUT, C.DfuRequest.DNLOAD, n, 0, 256)

    b.urb(0x00, XFER_CONTROL, 1000, None, length=256, setup=dnload(0), urb_id=0xD0000)
    for n in range(1, 20):
        b.urb(0x00, XFER_CONTROL, 1000 + 100 * n, 1050 + 100 * n, length=256, setup=dnload(n))
    b.urb(0x00, XFER_CONTROL, 4000, 4050, length=256, setup=dnload(20), urb_id=0xD0000)
    return b.write(path)


@pytest.mark.parametrize("chunk", [1500, 3000])
def test_firmware_download_does_not_depend_on_read_chunking(tmp_path, monkeypatch, chunk):
    path = _dfu_capture(tmp_path / "dfu.pcapng")
    whole = decode_capture(path).devices[0]
    monkeypatch.setattr(capture, "CHUNK_BYTES", chunk)
    cut = decode_capture(path).devices[0]
    # whole file: block 0 (frame 3) first; in pieces it comes after the blocks that completed
    # before the batch boundary, so the download's start time moves
    assert [s.frame for s in cut.dfu] == [s.frame for s in whole.dfu]
    assert cut.firmware.t_start_ns == whole.firmware.t_start_ns


def test_standard_requests_do_not_depend_on_read_chunking(tmp_path, monkeypatch):
    b = CaptureBuilder()
    get_config = struct.pack("<BBHHH", 0x80, 6, 0x0200, 0, 9)
    b.urb(0x80, XFER_CONTROL, 0, None, length=9, setup=get_config, urb_id=0xABC00)  # lost
    b.device_descriptor(100)
    for k in range(40):
        b.interrupt(k, 300 + 10 * k, 305 + 10 * k)
    b.urb(0x80, XFER_CONTROL, 1000, 1100, length=9, setup=get_config, in_data=bytes(9),
          urb_id=0xABC00)  # fmt: skip
    inference(b, 2000)
    path = b.write(tmp_path / "std.pcapng")
    whole = decode_capture(path).devices[0]
    monkeypatch.setattr(capture, "CHUNK_BYTES", 1000)
    cut = decode_capture(path).devices[0]
    assert [s.frame for s in cut.standard] == [s.frame for s in whole.standard]


# -- inspect: transfer durations must not wrap around in int64 --------------------------------


def test_inspect_transfer_duration_does_not_wrap(tmp_path):
    from lab.fuzzing.mutate import make_case

    # fuzz case 184 (an interface with a garbage if_tsoffset): a transfer's submit time is
    # INT64_MIN, its completion is positive, and their difference leaves int64
    path = tmp_path / "case184.pcapng"
    path.write_bytes(make_case(184).data)
    decoded = decode_capture(path, partial_ok=True)
    checked = 0
    for trace in decoded.devices:
        want = sorted(
            (t.t_submit_ns, t.header_frame or (t.payload_frames[:1] or [0])[0],
             t.t_complete_ns - t.t_submit_ns if t.t_complete_ns else None)
            for t in trace.transfers
        )  # fmt: skip
        got = sorted(
            (r.t_ns, r.frame, r.duration_ns)
            for r in inspect_rows(trace)
            if r.direction == "OUT" and r.endpoint  # transfer rows (CSR/DFU rows have ep 0)
        )
        assert got == want
        checked += len(want)
    assert checked


# -- a first record stamped 0 --------------------------------------------------------------


def test_first_timestamp_does_not_depend_on_read_chunking(tmp_path, monkeypatch):
    b = CaptureBuilder()
    inference(b, 0)
    inference(b, 5000)
    b.records = b.capture_order()
    b.records[0].ts_ns = 0  # a record stamped at the epoch (clock not yet set, or garbage)
    path = b.write(tmp_path / "ts0.pcapng")
    whole = decode_capture(path)
    monkeypatch.setattr(capture, "CHUNK_BYTES", 1000)
    cut = decode_capture(path)
    assert cut.first_ts_ns == whole.first_ts_ns  # 0 in one batch, the 2nd batch's first in pieces
