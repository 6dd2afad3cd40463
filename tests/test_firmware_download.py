"""Firmware downloads found by their own DFU class requests (issue 16 item 2).

The synthetic ``firmware`` session (DFU follows the driver source only: no real capture has
one) is written with and without its descriptors; hand-built captures cover a download at the
address the device comes back at, other class requests, and which Edge TPU a download is for.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

from builders import CaptureBuilder, inference

from lab.synthetic.presets import preset
from lab.synthetic.session import generate
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, write_capture
from usbtrace.edgetpu import constants as C
from usbtrace.formats.usbmon import URB_SUBMIT, XFER_CONTROL
from usbtrace.pipeline import decode_capture, summarize_file
from usbtrace.report.inspect_view import inspect_rows
from usbtrace.usb.descriptors import GET_DESCRIPTOR


def _write(path: Path, records: list[UsbRecord]) -> Path:
    lay = Layout(snaplen=128, interface="usbmon2", comment="synthetic, rewritten for a test")
    write_capture(path, records, lay)
    return path


def _without_descriptors(records: list[UsbRecord]) -> list[UsbRecord]:
    """Every GET_DESCRIPTOR transfer removed: its submit, and the next record of its URB."""
    out, open_ = [], set()
    for r in records:
        key = (r.urb_id, r.busnum, r.devnum, r.epnum)
        if r.urb_type == URB_SUBMIT and r.setup is not None and r.setup[1] == GET_DESCRIPTOR:
            open_.add(key)
        elif key in open_:
            open_.discard(key)
        else:
            out.append(r)
    return out


def test_a_download_without_descriptors_is_found_by_its_requests(tmp_path):
    session = generate(preset("firmware", snaplen=128, metadata=False))
    truth = session.truth.devices[0]
    with_desc = _write(tmp_path / "with.pcapng", session.records)
    without = _write(tmp_path / "without.pcapng", _without_descriptors(session.records))
    (a,) = summarize_file(with_desc)
    (b,) = summarize_file(without)
    assert decode_capture(without).devices[0].identified_by == "signature"
    assert b.device == a.device == f"{truth.bus}.{truth.address}"
    assert b.firmware == a.firmware
    fw = b.firmware
    assert fw["device"] == f"{truth.bus}.{truth.dfu_address}"
    assert (fw["blocks"], fw["bytes"], fw["uploaded_bytes"], fw["ok"]) == (43, 10783, 10783, True)
    assert fw["duration_s"] > 0
    # the boot loader is not another device (the root hub 2.1 showed only descriptor reads)
    assert (a.other_devices, b.other_devices) == (["2.1", "2.2"], ["2.2"])
    assert [(r.kind, r.instructions, r.parameters) for r in b.requests] == [
        (r.kind, r.instructions, r.parameters) for r in a.requests
    ]
    # inspect lists the download, requests in their direction
    (trace,) = decode_capture(without).devices
    kinds = [(r.direction, r.kind.split()[1]) for r in inspect_rows(trace) if "DFU" in r.kind]
    assert kinds.count(("OUT", "DNLOAD")) == 44  # 43 blocks and the zero-length one
    assert kinds.count(("IN", "GETSTATUS")) == 44 and kinds.count(("IN", "UPLOAD")) == 43


def test_a_boot_loader_nothing_followed(tmp_path):
    session = generate(preset("firmware", snaplen=128, metadata=False))
    truth = session.truth.devices[0]
    # the capture ends before the device comes back in app mode
    app = next(r.ts_ns for r in session.records if r.devnum == truth.address)
    before = [r for r in session.records if r.ts_ns < app]
    decoded = decode_capture(_write(tmp_path / "dfu.pcapng", _without_descriptors(before)))
    assert decoded.devices == []  # nothing says it is an Edge TPU
    assert (truth.bus, truth.dfu_address, None) in decoded.other_devices
    # with its descriptor, the boot loader is an Edge TPU and reports its own download
    (summary,) = summarize_file(_write(tmp_path / "dfu-desc.pcapng", before))
    assert summary.device == f"{truth.bus}.{truth.dfu_address}"
    assert summary.firmware["blocks"] == 43


def _dfu(b: CaptureBuilder, t: int, dev: int, blocks: int = 3) -> int:
    """A DFU download of ``blocks`` 256-byte blocks, each followed by GETSTATUS."""
    status = struct.pack("<BBHHH", C.REQTYPE_DFU_IN, C.DfuRequest.GETSTATUS, 0, 0, 6)
    for n in range(blocks + 1):
        size = 256 if n < blocks else 0
        dnload = struct.pack("<BBHHH", C.REQTYPE_DFU_OUT, C.DfuRequest.DNLOAD, n, 0, size)
        b.urb(0x00, XFER_CONTROL, t, t + 50, length=size, setup=dnload, dev=dev)
        b.urb(0x80, XFER_CONTROL, t + 60, t + 90, length=6, setup=status, dev=dev,
              in_data=bytes([0, 0, 0, 0, 5 if size else 2, 0]))  # fmt: skip
        t += 100
    return t


def _tpu(b: CaptureBuilder, t: int, dev: int) -> None:
    b.dev = dev
    inference(b, t)
    inference(b, t + 3000)


def test_a_download_at_the_address_the_device_comes_back_at(tmp_path):
    b = CaptureBuilder()
    t = _dfu(b, 0, dev=4, blocks=5)
    _tpu(b, t + 1000, dev=4)
    (s,) = summarize_file(b.write(tmp_path / "same.pcapng"))
    assert s.device == "2.4"
    assert (s.firmware["device"], s.firmware["blocks"], s.firmware["bytes"]) == ("2.4", 5, 1280)


def test_the_download_belongs_to_the_edge_tpu_that_appears_next(tmp_path):
    b = CaptureBuilder()
    _tpu(b, 0, dev=5)  # already running before the download
    t = _dfu(b, 10_000, dev=3)
    _tpu(b, t + 1000, dev=4)  # the boot loader, re-enumerated
    _tpu(b, t + 20_000, dev=6)  # another Edge TPU, later
    found = {s.device: s.firmware for s in summarize_file(b.write(tmp_path / "bus.pcapng"))}
    assert sorted(found) == ["2.4", "2.5", "2.6"]
    assert found["2.4"] is not None and found["2.4"]["device"] == "2.3"
    assert found["2.5"] is None and found["2.6"] is None


def test_other_class_requests_are_not_a_download(tmp_path):
    b = CaptureBuilder()
    # HID on the same bus: GET_REPORT (0xA1, 1), SET_IDLE (0x21, 10), GET_PROTOCOL (0xA1, 3)
    for rt, req, n, reply in ((0xA1, 1, 8, bytes(8)), (0x21, 10, 0, None), (0xA1, 3, 1, b"\1")):
        ep = 0x80 if rt & 0x80 else 0x00
        setup = struct.pack("<BBHHH", rt, req, 0, 0, n)
        b.urb(ep, XFER_CONTROL, 0, 50, length=n, setup=setup, dev=3, in_data=reply)
    _tpu(b, 1000, dev=4)
    (s,) = summarize_file(b.write(tmp_path / "hid.pcapng"))
    assert s.device == "2.4" and s.firmware is None
    assert s.other_devices == ["2.3"]


def test_no_descriptors_and_no_event_payloads_together(tmp_path):
    """Issue 16's "done when": both gaps in one capture."""
    session = generate(preset("firmware", snaplen=128, metadata=False))
    whole = _write(tmp_path / "whole.pcapng", session.records)
    bare = [
        replace(r, data_len=0, data=b"")
        if r.epnum == C.EP_EVENT_IN and r.urb_type != URB_SUBMIT
        else r
        for r in _without_descriptors(session.records)
    ]
    (a,) = summarize_file(whole)
    (b,) = summarize_file(_write(tmp_path / "bare.pcapng", bare))
    assert [r.to_json() for r in b.requests] == [r.to_json() for r in a.requests]
    assert [r.kind for r in b.requests] == ["parameter-caching", "inference", "inference"]
    assert b.firmware == a.firmware and b.firmware["blocks"] == 43
    assert b.integrity.problems == ["event payloads not captured: tags assumed (3 event(s))"]
