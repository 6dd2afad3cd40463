"""The devices stage (``usbtrace.usb.devices``): what USB says of each device, batch by batch.

Captures are built URB by URB (``builders.CaptureBuilder``), read with the real reader, paired
by ``UrbStage`` and fed to ``UsbDevices``, in one batch or cut into many.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from builders import CaptureBuilder

from lab.usb import descriptors as lab_desc
from usbtrace.formats.capture import Capture
from usbtrace.formats.records import RECORD
from usbtrace.formats.usbmon import XFER_BULK, XFER_CONTROL, XFER_INTERRUPT
from usbtrace.pipeline import _windows
from usbtrace.usb.descriptors import Endpoint
from usbtrace.usb.devices import (
    DeviceBatch,
    UrbStage,
    UrbStats,
    UsbCapture,
    UsbDevices,
    present_devices,
)
from usbtrace.usb.pairing import Urbs

ROOT = Path(__file__).resolve().parent.parent
GET_DESCRIPTOR_DEVICE = lab_desc.setup_packet(0x80, 6, 0x0100, 0, 18)
ACME = (0x1234, 0x5678)  # any device: the USB layer reads every descriptor alike


def _bulk_out_only(hdr: np.ndarray) -> np.ndarray:
    return (hdr["xfer"] == XFER_BULK) & (hdr["epnum"] < 0x80)


def _run(
    path: Path, every: int | None = None, stamped=_bulk_out_only
) -> tuple[UsbDevices, list[DeviceBatch], UsbCapture]:
    """The capture through the URB and devices stages; ``every``: frames per batch."""
    stage, devices = UrbStage(stamped), UsbDevices()
    batches = Capture(path).batches()
    if every is not None:
        batches = (b for b, _ in _windows(batches, every))
    out = [devices.feed(stage.pair(b)) for b in batches]
    out.append(devices.close(stage.close()))
    return devices, out, devices.finish(stage.pairer)


def _descriptor(b: CaptureBuilder, t: int, ids: tuple[int, int], dev: int, **kw) -> None:
    b.device_descriptor(t, vid=ids[0], pid=ids[1], dev=dev, **kw)


def _config(b: CaptureBuilder, t: int, dev: int) -> None:
    eps = [Endpoint(0x01, "bulk", 1024, 0), Endpoint(0x81, "bulk", 1024, 0)]
    raw = lab_desc.config_descriptor(
        [lab_desc.interface_descriptor(2, 0xFF, 0xFF, 0xFF)]
        + [lab_desc.endpoint_descriptor(e) for e in eps],
        max_power=250,
    )
    setup = lab_desc.setup_packet(0x80, 6, 0x0200, 0, len(raw))
    b.urb(0x80, XFER_CONTROL, t, t + 50, length=len(raw), setup=setup, in_data=raw, dev=dev)


def _set_config(b: CaptureBuilder, t: int, dev: int) -> None:
    setup = lab_desc.setup_packet(0x00, 9, 1, 0, 0)
    b.urb(0x00, XFER_CONTROL, t, t + 20, length=0, setup=setup, out_data=b"", dev=dev)


def _vendor(b: CaptureBuilder, t: int, dev: int) -> None:
    """A vendor request (an Edge TPU CSR write): not USB's to decode, handed on."""
    setup = lab_desc.setup_packet(0x40, 1, 0xA000, 0x0004, 4)
    b.urb(0x00, XFER_CONTROL, t, t + 30, length=4, setup=setup, out_data=bytes(4), dev=dev)


def _class(b: CaptureBuilder, t: int, dev: int) -> None:
    """A class request to an interface (a DFU DNLOAD): not USB's either."""
    setup = lab_desc.setup_packet(0x21, 1, 0, 0, 8)
    b.urb(0x00, XFER_CONTROL, t, t + 30, length=8, setup=setup, out_data=bytes(8), dev=dev)


def test_descriptors_are_read_from_get_descriptor_completions(tmp_path):
    b = CaptureBuilder(bus=3, dev=7)
    _descriptor(b, 0, ACME, 7, bcd_usb=0x0210, mps0=64)
    _config(b, 200, 7)
    _set_config(b, 300, 7)
    # an answer that failed carries no descriptor: the one read before stays
    setup = GET_DESCRIPTOR_DEVICE
    b.urb(0x80, XFER_CONTROL, 400, 450, length=18, setup=setup, in_data=b"", status=-32, dev=7)
    _vendor(b, 500, 7)
    _class(b, 600, 7)
    devices, batches, _ = _run(b.write(tmp_path / "desc.pcapng"))
    (d,) = devices.devices.values()
    assert (d.bus, d.address, d.ids) == (3, 7, ACME)
    assert d.descriptor is not None
    assert (d.descriptor.bcd_usb, d.descriptor.max_packet0) == (0x0210, 64)
    assert d.descriptor.speed_hint == "high"
    assert d.config is not None and d.config.value == 1
    assert d.config.interfaces == [(0, 0xFF, 0xFF, 0xFF)]
    assert [(e.address, e.kind, e.max_packet) for e in d.config.endpoints] == [
        (0x01, "bulk", 1024),
        (0x81, "bulk", 1024),
    ]
    texts = [s.text for s in d.standard]
    assert texts == [
        "GET_DESCRIPTOR device (18 B)",
        "GET_DESCRIPTOR configuration (32 B)",
        "SET_CONFIGURATION 1",
        "GET_DESCRIPTOR device (18 B)",
    ]
    assert [s.status for s in d.standard] == [0, 0, 0, -32]
    # the standard requests stay in the USB layer; the vendor and class requests are handed on
    handed = np.concatenate([t.control for bt in batches for t in bt.devices])
    assert [bytes(u["setup"].tolist())[:2] for u in handed] == [b"\x40\x01", b"\x21\x01"]


def test_a_descriptor_cut_by_the_snaplen_is_not_invented(tmp_path):
    b = CaptureBuilder(dev=5, snaplen=64 + 8)  # 8 of the 18 bytes captured
    _descriptor(b, 0, ACME, 5)
    devices, _, _ = _run(b.write(tmp_path / "cut.pcapng"))
    (d,) = devices.devices.values()
    assert d.descriptor is None and d.ids is None
    assert [s.name for s in d.standard] == ["GET_DESCRIPTOR"]


def _two_devices(path: Path) -> Path:
    """Devices 2.4 and 2.9 interleaved; 2.9 starts later and ends first."""
    b = CaptureBuilder(bus=2, dev=4)
    _descriptor(b, 0, ACME, 4)
    _descriptor(b, 50, (0x0BDA, 0x0411), 9)
    for i in range(20):
        t = 1000 + 100 * i
        b.urb(0x01, XFER_BULK, t, t + 30, length=512)
        if i < 15:
            b.urb(0x02, XFER_BULK, t + 10, t + 40, length=64, dev=9)
    b.urb(0x81, XFER_BULK, 5000, 5100, length=1024, in_data=bytes(100))
    return b.write(path)


def _frames(path: Path) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = {}
    for batch in Capture(path).batches():
        h = batch.records["hdr"]
        for f, bus, dev in zip(batch.records["frame"], h["busnum"], h["devnum"]):
            out.setdefault((int(bus), int(dev)), []).append(int(f))
    return out


@pytest.mark.parametrize("every", [None, 1, 7, 64])
def test_first_and_last_frames_of_each_device(tmp_path, every):
    path = _two_devices(tmp_path / "two.pcapng")
    frames = _frames(path)
    devices, _, usb = _run(path, every)
    assert list(devices.devices) == [(2, 4), (2, 9)]
    for key, d in devices.devices.items():
        assert (d.first_frame, d.last_frame) == (frames[key][0], frames[key][-1])
    assert devices.devices[2, 9].last_frame < devices.devices[2, 4].last_frame
    assert [d.key for d in usb.devices] == [(2, 4), (2, 9)]


@pytest.mark.parametrize("every", [None, 5])
def test_several_devices_in_one_batch_each_get_their_own_urbs(tmp_path, every):
    path = _two_devices(tmp_path / "two.pcapng")
    _, batches, usb = _run(path, every)
    per: dict[tuple[int, int], list[int]] = {}
    mine: dict[tuple[int, int], int] = {}
    for bt in batches:
        allrec = np.ones(len(bt.records), dtype=bool)
        for t in bt.devices:
            assert set(zip(t.urbs.bus.tolist(), t.urbs.dev.tolist())) <= {t.device.key}
            per.setdefault(t.device.key, []).extend(t.urbs.ep.tolist())
            own = t.records(allrec)
            h = bt.records["hdr"][own]
            assert (h["busnum"] == t.device.bus).all() and (h["devnum"] == t.device.address).all()
            mine[t.device.key] = mine.get(t.device.key, 0) + len(own)
    assert sorted(per[2, 4]) == [0x01] * 20 + [0x80, 0x81]
    assert sorted(per[2, 9]) == [0x02] * 15 + [0x80]
    assert mine == {(2, 4): 44, (2, 9): 32}  # every record, once, with its device
    assert usb.first_ts_ns is not None and usb.last_ts_ns is not None
    assert usb.last_ts_ns - usb.first_ts_ns == 5100 * 1000


def test_urb_statistics_per_device(tmp_path):
    b = CaptureBuilder(bus=1, dev=3)
    b.urb(0x81, XFER_BULK, 0, 10, length=1024, in_data=bytes(8))  # fine
    b.urb(0x81, XFER_BULK, 20, 30, length=1024, in_data=b"", status=-2)  # cancelled
    b.urb(0x82, XFER_BULK, 40, 50, length=16, in_data=b"", status=-104)  # unlinked
    b.urb(0x81, XFER_BULK, 60, 70, length=1024, in_data=b"", status=-71)  # an error
    b.urb(0x81, XFER_BULK, 80, 90, length=1024, in_data=b"", status=-71)
    b.urb(0x83, XFER_INTERRUPT, 95, 99, length=4, in_data=b"", status=-32, dev=6)  # other device
    setup = GET_DESCRIPTOR_DEVICE
    b.urb(0x80, XFER_CONTROL, 100, 110, length=18, setup=setup, in_data=b"", status=-32)
    b.urb(0x01, XFER_BULK, 200, None, length=512)  # never completed
    b.urb(0x81, XFER_BULK, 210, None, length=1024)  # never completed
    orphan = b.urb(0x01, XFER_BULK, 300, 310, length=512)
    b.records = [r for r in b.records if not (r.urb_id == orphan and r.urb_type == ord("S"))]
    devices, _, usb = _run(b.write(tmp_path / "stats.pcapng"), every=3)
    s = devices.devices[1, 3].stats
    assert (s.cancelled, s.orphan_completions, s.never_completed) == (2, 1, 2)
    # control statuses are the class's or vendor's business, not an endpoint error
    assert s.errors == {"endpoint 0x81 completed with status -71": 2}
    other = devices.devices[1, 6].stats
    assert other.errors == {"endpoint 0x83 completed with status -32": 1}
    assert (other.cancelled, other.orphan_completions, other.never_completed) == (0, 0, 0)
    assert usb.orphan_completions == 1


def test_many_failed_urbs_are_counted_as_one_by_one():
    """A device that fails most of its URBs (unplugged, babbling): 20,000 URBs of several
    endpoints, transfer types and statuses, some never completed, counted in one batch and in
    uneven ones, give what counting each URB on its own gives, messages in first-failure order."""
    rng = np.random.default_rng(3)
    n = 20_000
    ep = rng.choice([0x01, 0x81, 0x82, 0x83], n)
    xfer = rng.choice([XFER_BULK, XFER_INTERRUPT, XFER_CONTROL], n)
    status = rng.choice([0, -2, -104, -71, -32, -75, -110, -(2**31)], n)
    records = np.zeros(2 * n + 1, dtype=RECORD)  # submits, completions, the all-zero stand-in
    h = records["hdr"]
    h["busnum"], h["devnum"] = 1, 3
    h["epnum"][:n], h["epnum"][n:-1] = ep, ep
    h["xfer"][:n], h["xfer"][n:-1] = xfer, xfer
    h["status"][:n], h["status"][n:-1] = -115, status  # -EINPROGRESS on the submit
    c = np.arange(n, 2 * n)
    c[rng.random(n) < 0.1] = 2 * n  # never completed: the submit's status must not count
    u = Urbs(records, np.arange(n), c)

    cancelled, errors = 0, {}
    for e, x, st, done in zip(ep.tolist(), xfer.tolist(), status.tolist(), (c < 2 * n).tolist()):
        if not done or st == 0 or x == XFER_CONTROL:
            continue
        if st in (-2, -104):
            cancelled += 1
            continue
        msg = f"endpoint {e:#04x} completed with status {st}"
        errors[msg] = errors.get(msg, 0) + 1
    assert len(errors) == 4 * 5 and sum(errors.values()) > 5_000

    whole = UrbStats()
    whole.count(u)
    assert (whole.cancelled, whole.never_completed) == (cancelled, int(np.sum(c == 2 * n)))
    assert list(whole.errors.items()) == list(errors.items())
    split = UrbStats()
    for part in np.split(np.arange(n), [1, 2, 500, 9_000, 19_999]):
        split.count(u.select(part))
    assert split == whole and list(split.errors.items()) == list(errors.items())


def test_the_urbs_open_at_the_end_are_counted_not_decoded(tmp_path):
    b = CaptureBuilder(dev=4)
    b.urb(0x80, XFER_CONTROL, 0, None, length=18, setup=GET_DESCRIPTOR_DEVICE)
    b.urb(0x81, XFER_BULK, 10, None, length=1024)
    devices, batches, _ = _run(b.write(tmp_path / "open.pcapng"))
    d = devices.devices[2, 4]
    assert d.stats.never_completed == 2
    assert d.standard == []  # a request without its answer is not listed
    (last,) = batches[-1].devices
    assert len(last.urbs) == 2 and len(last.control) == 0
    assert len(last.records(np.ones(0, dtype=bool))) == 0


def _reenumeration(path: Path) -> Path:
    """A boot loader at 2.3 is read, goes away, and comes back as the app at 2.5 (addressed at
    2.0 first); later it is re-read at 2.5 and reports a new bcdDevice."""
    b = CaptureBuilder(bus=2, dev=3)
    _descriptor(b, 0, (0x1A6E, 0x089A), 3, bcd_usb=0x0200, mps0=64)
    for i in range(5):
        _vendor(b, 200 + 50 * i, 3)
    # the default address: SET_ADDRESS 5
    setup = lab_desc.setup_packet(0x00, 5, 5, 0, 0)
    b.urb(0x00, XFER_CONTROL, 1000, 1010, length=0, setup=setup, out_data=b"", dev=0)
    _descriptor(b, 1100, ACME, 5, bcd_usb=0x0320, mps0=9)
    b.urb(0x01, XFER_BULK, 1200, 1300, length=512, dev=5)
    return b.write(path)


@pytest.mark.parametrize("every", [None, 2])
def test_a_device_re_enumerating_at_a_new_address(tmp_path, every):
    _, _, usb = _run(_reenumeration(tmp_path / "reenum.pcapng"), every)
    assert [d.key for d in usb.devices] == [(2, 3), (2, 0), (2, 5)]
    boot, default, app = usb.devices
    assert boot.ids == (0x1A6E, 0x089A) and boot.descriptor.speed_hint == "high"
    assert app.ids == ACME and app.descriptor.speed_hint == "super"
    assert default.ids is None and [s.text for s in default.standard] == ["SET_ADDRESS"]
    assert boot.last_frame < default.first_frame <= default.last_frame < app.first_frame
    assert [s.name for s in app.standard] == ["GET_DESCRIPTOR"]


def test_a_device_back_at_the_same_address_keeps_its_latest_descriptor(tmp_path):
    b = CaptureBuilder(bus=2, dev=4)
    _descriptor(b, 0, (0x1A6E, 0x089A), 4, bcd_usb=0x0200, mps0=64)
    _descriptor(b, 5000, ACME, 4, bcd_usb=0x0320, mps0=9)
    devices, _, _ = _run(b.write(tmp_path / "same.pcapng"), every=2)
    (d,) = devices.devices.values()
    assert d.ids == ACME and d.descriptor.speed_hint == "super"
    assert len(d.standard) == 2


def test_standard_requests_come_out_in_frame_order(tmp_path):
    """A request submitted first but answered last closes last; ``finish`` sorts by frame."""
    b = CaptureBuilder(dev=4)
    setup = lab_desc.setup_packet(0x80, 0, 0, 0, 2)  # GET_STATUS
    b.urb(0x80, XFER_CONTROL, 0, 900, length=2, setup=setup, in_data=b"\x00\x00")
    _descriptor(b, 100, ACME, 4)
    devices, _, _ = _run(b.write(tmp_path / "order.pcapng"))
    d = devices.devices[2, 4]
    assert [s.name for s in d.standard] == ["GET_STATUS", "GET_DESCRIPTOR"]
    assert [s.frame for s in d.standard] == sorted(s.frame for s in d.standard)


def test_oldest_open_follows_the_urbs_the_caller_names(tmp_path):
    b = CaptureBuilder(dev=4)
    b.urb(0x81, XFER_BULK, 0, None, length=1024)  # a read posted for ever
    b.urb(0x01, XFER_BULK, 100, 5000, length=512)
    b.urb(0x01, XFER_BULK, 200, 300, length=512)
    path = b.write(tmp_path / "open.pcapng")
    stage = UrbStage(_bulk_out_only)
    cap = Capture(path)
    seen = [stage.pair(batch).oldest_open_ns for batch, _ in _windows(cap.batches(), 1)]
    t0 = 1_700_000_000_000_000_000
    # the read is never counted; the bulk-OUT URB open from its submit to its completion is
    assert seen == [None, t0 + 100_000, t0 + 100_000, t0 + 100_000, None]
    reads = UrbStage(lambda h: h["epnum"] >= 0x80)
    cap = Capture(path)
    assert {reads.pair(batch).oldest_open_ns for batch in cap.batches()} == {t0}


def test_present_devices():
    rec = np.zeros(4, dtype=RECORD)
    rec["hdr"]["busnum"] = [2, 1, 2, 2]
    rec["hdr"]["devnum"] = [4, 9, 4, 3]
    assert present_devices(rec) == [(1, 9), (2, 3), (2, 4)]
    assert present_devices(rec[:1]) == [(2, 4)]
    assert present_devices(rec[:0]) == []


def test_the_usb_layer_imports_nothing_above_it():
    """Data flows one way: formats -> usb -> edgetpu; nothing in usb/ knows the Edge TPU."""
    for path in sorted((ROOT / "usbtrace" / "usb").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith(
                    ("usbtrace.edgetpu", "usbtrace.analysis", "usbtrace.report", "usbtrace.cli")
                ), (path.name, name)
