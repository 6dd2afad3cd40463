"""Capture runner test helpers: fake sysfs/dev trees, a fake backend, a synthetic session."""

from __future__ import annotations

import os
import shutil
import socket
import struct
from pathlib import Path

import pytest

from lab.usb import descriptors
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, encode
from usbtrace.capture.backends.base import Backend, RuntimeInfo
from usbtrace.capture.dumpcap import Dumpcap, DumpcapError
from usbtrace.capture.sysfs import HostPaths
from usbtrace.edgetpu.constants import (
    CSR_REQUEST_32,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    PID_EDGETPU_APP,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    VID_GOOGLE,
    Tag,
)
from usbtrace.edgetpu.wire import encode_event, encode_header
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
)


def fake_host(
    tmp: Path,
    devices: list[dict[str, str]] = (),  # type: ignore[assignment]
    usbmon: tuple[int, ...] = (),
) -> HostPaths:
    """A sysfs root with ``bus/usb/devices/NAME/{idVendor,...}`` and a dev root with usbmonN."""
    sysfs, dev = tmp / "sys", tmp / "dev"
    (sysfs / "bus/usb/devices").mkdir(parents=True, exist_ok=True)
    dev.mkdir(parents=True, exist_ok=True)
    for d in devices:
        entry = sysfs / "bus/usb/devices" / d["name"]
        entry.mkdir(parents=True)
        for key, value in d.items():
            if key != "name":
                (entry / key).write_text(value + "\n")
    for bus in usbmon:
        (dev / f"usbmon{bus}").write_text("")
    return HostPaths(sysfs=sysfs, dev=dev)


def edgetpu_entry(bus: int = 2, address: int = 4, speed: str = "5000", **extra: str) -> dict:
    return {
        "name": f"{bus}-1",
        "idVendor": f"{VID_GOOGLE:04x}",
        "idProduct": f"{PID_EDGETPU_APP:04x}",
        "busnum": str(bus),
        "devnum": str(address),
        "speed": speed,
        **extra,
    }


class UdpBackend(Backend):
    """Sends one UDP datagram to 127.0.0.1 per invoke, so a loopback capture has traffic."""

    name = "udp-test"
    needs_model = False

    def __init__(self, port: int, *, fail_at: int | None = None, action=None) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.calls = 0
        self.closed = False
        self.fail_at = fail_at
        self.action = action  # callable(self, index) run before each datagram

    def probe(self) -> RuntimeInfo:
        return RuntimeInfo(backend=self.name, runtime="socket")

    def open(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.sendto(b"usbtrace-test open", ("127.0.0.1", self.port))

    def invoke(self) -> None:
        index = self.calls
        self.calls += 1
        if self.action is not None:
            self.action(self, index)
        assert self.sock is not None
        self.sock.sendto(b"usbtrace-test invoke %d" % index, ("127.0.0.1", self.port))

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            self.sock.sendto(b"usbtrace-test close", ("127.0.0.1", self.port))
            self.sock.close()


class SessionWriter:
    """A synthetic usbmon capture of an Edge TPU session (bus 3, device 7), made by the tests."""

    BUS, DEV = 3, 7

    def __init__(self, snaplen: int = 0) -> None:
        self.records: list[UsbRecord] = []
        self.layout = Layout(snaplen=snaplen, statistics=False, interface="usbmon3")
        self.t = 1_700_000_000_000_000_000
        self.urb = 0x1000

    def _new_urb(self) -> int:
        self.urb += 0x40
        return self.urb

    def _emit(self, urb, urb_type, xfer, ep, data=b"", urb_len=None, setup=None, status=None):
        self.t += 1_000_000
        if status is None:
            status = STATUS_IN_PROGRESS if urb_type == URB_SUBMIT else 0
        self.records.append(
            UsbRecord(
                ts_ns=self.t,
                urb_id=urb,
                urb_type=urb_type,
                xfer=xfer,
                epnum=ep,
                devnum=self.DEV,
                busnum=self.BUS,
                status=status,
                urb_len=len(data) if urb_len is None else urb_len,
                data_len=len(data),
                data=data,
                setup=setup,
            )
        )

    def device_descriptor(self) -> None:
        desc = descriptors.device_descriptor(
            VID_GOOGLE,
            PID_EDGETPU_APP,
            bcd_usb=0x0310,
            max_packet0=9,
            bcd_device=0x0100,
            strings=(1, 2, 3),
        )
        urb = self._new_urb()
        setup = bytes([0x80, 6, 0, 1, 0, 0, 18, 0])
        self._emit(urb, URB_SUBMIT, XFER_CONTROL, 0x80, urb_len=18, setup=setup)
        self._emit(urb, URB_COMPLETE, XFER_CONTROL, 0x80, desc)

    def _csr_setup(self, request_type: int, address: int) -> bytes:
        return struct.pack(
            "<BBHHH", request_type, CSR_REQUEST_32, address & 0xFFFF, address >> 16, 4
        )

    def csr_write32(self, address: int, value: int) -> None:
        urb = self._new_urb()
        setup = self._csr_setup(REQTYPE_VENDOR_OUT, address)
        self._emit(urb, URB_SUBMIT, XFER_CONTROL, 0, struct.pack("<I", value), setup=setup)
        self._emit(urb, URB_COMPLETE, XFER_CONTROL, 0, urb_len=4)

    def csr_read32(self, address: int, value: int) -> None:
        urb = self._new_urb()
        setup = self._csr_setup(REQTYPE_VENDOR_IN, address)
        self._emit(urb, URB_SUBMIT, XFER_CONTROL, 0x80, urb_len=4, setup=setup)
        self._emit(urb, URB_COMPLETE, XFER_CONTROL, 0x80, struct.pack("<I", value))

    def _bulk_out(self, data: bytes) -> None:
        urb = self._new_urb()
        self._emit(urb, URB_SUBMIT, XFER_BULK, EP_BULK_OUT, data)
        self._emit(urb, URB_COMPLETE, XFER_BULK, EP_BULK_OUT, urb_len=len(data))

    def transfer(self, tag: int, payload: bytes, chunk: int = 1 << 20) -> None:
        self._bulk_out(encode_header(tag, len(payload)))
        for i in range(0, len(payload), chunk):
            self._bulk_out(payload[i : i + chunk])

    def _read(self, ep: int, size: int, data: bytes) -> None:
        urb = self._new_urb()
        self._emit(urb, URB_SUBMIT, XFER_BULK, ep, urb_len=size)
        self._emit(urb, URB_COMPLETE, XFER_BULK, ep, data)

    def output(self, data: bytes) -> None:
        self._read(EP_OUTPUT_IN, 1024, data)

    def event(self) -> None:
        self._read(EP_EVENT_IN, 16, encode_event(Tag.INTERRUPT0))

    def session(self, inferences: int = 3, *, instr: int = 300, params: int = 5000) -> bytes:
        """Open, a caching request, ``inferences`` inferences (the first overlaps it), close."""
        self.device_descriptor()
        self.csr_read32(0x1A30C, 0x59)
        self.csr_write32(0x1A30C, 0x5B)
        self.transfer(Tag.INSTRUCTIONS, bytes([0x80, 0x0F, 0]) + bytes(instr - 3))
        self.transfer(Tag.PARAMETERS, bytes(range(256)) * (params // 256) + bytes(params % 256))
        for k in range(inferences):
            self.transfer(Tag.INSTRUCTIONS, bytes([0x80, 0x0F, 1]) + bytes(instr - 3))
            self.transfer(Tag.INPUT, b"\x80" * 12 + bytes(4))
            if k == 0:
                self.event()  # the caching request's event arrives after the inference's input
            self.output(bytes(8))
            self.event()
        self.csr_write32(0x1907C, 0xF)
        self.csr_write32(0x1907C, 0)
        return encode(self.records, self.layout).data


def require_loopback_dumpcap(tmp_path_factory) -> str:
    """dumpcap's path; skips unless dumpcap exists and may capture on lo (root, or capabilities)."""
    exe = shutil.which("dumpcap")
    if exe is None:
        pytest.skip("dumpcap not installed (Debian package tshark)")
    path = tmp_path_factory.mktemp("probe") / "probe.pcapng"
    probe = Dumpcap("lo", path, snaplen=128)
    probe.start()
    try:
        probe.wait_ready(timeout=10)
    except DumpcapError as exc:
        pytest.skip(f"dumpcap cannot capture on lo here: {exc}")
    finally:
        probe.stop(drain=0)
    return exe


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0), but it is not running
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False
