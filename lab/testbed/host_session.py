"""A small pyusb host that plays an Edge TPU session against the emulator (the testbed's smoke
test): part of the open sequence's register traffic, then each request's header + payload
transfers on 0x01, the output on 0x81 and the completion event on 0x82.

Requests are played one after the other (no queued reads): enough to exercise the emulator and
the capture path; the capture runner's replay backend is the faithful host.
"""

from __future__ import annotations

import errno
import struct
import time
from dataclasses import dataclass

from lab.testbed.profile import EmulatorProfile, RequestShape
from lab.testbed.registers import OUTFEED_CHUNK_UNIT
from usbtrace.edgetpu.constants import (
    CSR_REQUEST_32,
    CSR_REQUEST_64,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    MAX_BULK_OUT_CHUNK,
    PID_EDGETPU_APP,
    REGISTERS_BY_NAME,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    VID_GOOGLE,
    Tag,
)
from usbtrace.edgetpu.wire import encode_header
from usbtrace.errors import UsageError

TIMEOUT_MS = 10_000
DESCR_EP_INTERRUPTS_ONLY = 0xF0
INPUT_PIXEL = 0x80


@dataclass
class PlayedRequest:
    kind: str
    output_bytes: int
    event: bytes
    t_start: float
    t_end: float


def instruction_payload(length: int) -> bytes:
    """Zeros, starting like a real instruction chunk (``80 0f 00`` + u24 n, 4n + 32 = length)."""
    data = bytearray(length)
    if length >= 6 and (length - 32) % 4 == 0 and length > 32:
        data[0:3] = b"\x80\x0f\x00"
        data[3:6] = ((length - 32) // 4).to_bytes(3, "little")
    return bytes(data)


def payload(tag: Tag, length: int) -> bytes:
    if tag == Tag.INSTRUCTIONS:
        return instruction_payload(length)
    if tag == Tag.INPUT:  # an image of value 128, padded with zeros like the study models' input
        body = bytes([INPUT_PIXEL]) * (length * 3 // 4)
        return body + bytes(length - len(body))
    return bytes(length)


class HostSession:
    def __init__(self, bus: int | None = None, output_chunk: int = 1024) -> None:
        import usb.core

        self.dev = usb.core.find(
            idVendor=VID_GOOGLE,
            idProduct=PID_EDGETPU_APP,
            custom_match=(lambda d: bus is None or d.bus == bus),
        )
        if self.dev is None:
            raise UsageError(f"no {VID_GOOGLE:04x}:{PID_EDGETPU_APP:04x} device found")
        self.output_chunk = output_chunk

    # The kernel already selected configuration 1; setting it again would reset the endpoints.

    def _control(self, *args: object) -> object:
        """One control transfer, retried once after a stall: the emulator may stall a request
        that overtook an OUT data stage it had not read yet (see gadgetfs.Ep0Server)."""
        import usb.core

        try:
            return self.dev.ctrl_transfer(*args)
        except usb.core.USBError as exc:
            if exc.errno != errno.EPIPE:
                raise
            return self.dev.ctrl_transfer(*args)

    def write_csr(self, name: str, value: int) -> None:
        reg = REGISTERS_BY_NAME[name]
        req = CSR_REQUEST_64 if reg.width == 64 else CSR_REQUEST_32
        data = value.to_bytes(reg.width // 8, "little")
        self._control(
            REQTYPE_VENDOR_OUT, req, reg.address & 0xFFFF, reg.address >> 16, data, TIMEOUT_MS
        )

    def read_csr(self, name: str) -> int:
        reg = REGISTERS_BY_NAME[name]
        req = CSR_REQUEST_64 if reg.width == 64 else CSR_REQUEST_32
        data = self._control(
            REQTYPE_VENDOR_IN,
            req,
            reg.address & 0xFFFF,
            reg.address >> 16,
            reg.width // 8,
            TIMEOUT_MS,
        )
        return int.from_bytes(bytes(data), "little")

    def open(self) -> dict[str, int]:
        """The part of the open sequence that sets the device's mode; returns values read."""
        seen = {"scu_ctrl_0": self.read_csr("scu_ctrl_0")}
        self.write_csr("scu_ctrl_3", 0x85025C)
        seen["scu_ctrl_3"] = self.read_csr("scu_ctrl_3")
        seen["omc0_00"] = self.read_csr("omc0_00")
        self.write_csr("descr_ep", DESCR_EP_INTERRUPTS_ONLY)
        self.write_csr("multi_bo_ep", 0)
        self.write_csr("outfeed_chunk_length", self.output_chunk // OUTFEED_CHUNK_UNIT)
        return seen

    def run_request(self, shape: RequestShape) -> PlayedRequest:
        t_start = time.time()
        for t in shape.transfers:
            self.dev.write(EP_BULK_OUT, encode_header(t.tag, t.length), TIMEOUT_MS)
            data = payload(t.tag, t.length)
            for off in range(0, t.length, MAX_BULK_OUT_CHUNK):
                self.dev.write(EP_BULK_OUT, data[off : off + MAX_BULK_OUT_CHUNK], TIMEOUT_MS)
        got = 0
        while got < shape.output_bytes:
            got += len(self.dev.read(EP_OUTPUT_IN, self.output_chunk, TIMEOUT_MS))
        event = bytes(self.dev.read(EP_EVENT_IN, EVENT_LEN, TIMEOUT_MS))
        return PlayedRequest(shape.kind, got, event, t_start, time.time())

    def play(self, profile: EmulatorProfile, count: int, interval: float) -> list[PlayedRequest]:
        self.open()
        played = []
        for i, shape in enumerate(profile.session(count)):
            if i and interval > 0:
                time.sleep(interval)
            played.append(self.run_request(shape))
        return played


def event_tag(event: bytes) -> int:
    return struct.unpack_from("<B", event, 12)[0] & 0x0F
