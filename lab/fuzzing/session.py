"""A valid usbmon session of an Edge TPU (plus bystanders), as records in capture order.

The traffic follows the single-endpoint protocol closely enough for the decoder and the analysis
to find every request: descriptor reads, CSR writes at open, posted reads on the event and output
endpoints, a parameter-caching request, then inferences (instructions, input, optionally streamed
parameters, one output chunk and a completion event each). Payloads are kept short the way a small
snaplen keeps them (``urb_len`` is the real length, the captured data only the first bytes).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from lab.usb import descriptors
from lab.usb.record import UsbRecord
from usbtrace.edgetpu.constants import (
    CSR_DESCR_EP,
    CSR_OUTFEED_CHUNK_LENGTH,
    CSR_REQUEST_64,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    INSTRUCTION_CHUNK_SIGNATURE,
    MAX_BULK_OUT_CHUNK,
    OUTFEED_CHUNK_SUPERSPEED,
    OUTPUT_READ_LEN_USB3,
    PID_EDGETPU_APP,
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
    XFER_INTERRUPT,
)
from usbtrace.usb.descriptors import DT_DEVICE, GET_DESCRIPTOR

SNAP_DATA = 24  # captured payload bytes kept per record, like the real captures' text exports
US = 1_000
MS = 1_000_000


@dataclass
class BaseSession:
    records: list[UsbRecord] = field(default_factory=list)
    # index of the record that completes the first inference (its event): a cut after it must
    # still leave at least one full inference to report
    first_inference_done: int = -1
    inferences: int = 0


PAYLOAD_BYTES_PER_S = 350_000_000  # what the real SuperSpeed captures reach (usb.link: ceiling 500)


class _Builder:
    def __init__(self, rng: random.Random, bus: int, dev: int, t0_ns: int) -> None:
        self.rng = rng
        self.bus = bus
        self.dev = dev
        self.t = t0_ns
        self.records: list[UsbRecord] = []
        self._ids = [0xFFFF_FF80_1000_0000 + 0x200 * k for k in range(12)]
        self._next_id = 0

    def urb_id(self) -> int:
        # a small pool, so ids are reused the way kernel addresses are
        self._next_id = (self._next_id + 1) % len(self._ids)
        return self._ids[self._next_id]

    def tick(self, lo_us: float = 5, hi_us: float = 40) -> int:
        self.t += int(self.rng.uniform(lo_us, hi_us) * US)
        return self.t

    def urb(
        self,
        xfer: int,
        ep: int,
        length: int,
        *,
        out_data: bytes = b"",
        in_data: bytes = b"",
        setup: bytes | None = None,
        t_submit: int | None = None,
        t_complete: int | None = None,
        status: int = 0,
        min_ns: int = 0,
    ) -> tuple[UsbRecord, UsbRecord]:
        uid = self.urb_id()
        ts = self.tick() if t_submit is None else t_submit
        tc = (ts + int(self.rng.uniform(20, 200) * US)) if t_complete is None else t_complete
        tc = max(tc, ts + min_ns)
        is_in = bool(ep & 0x80)
        s_len = length
        s = UsbRecord(
            ts, uid, URB_SUBMIT, xfer, ep, self.dev, self.bus, STATUS_IN_PROGRESS, s_len,
            0 if is_in else len(out_data) if xfer == XFER_CONTROL else length,
            b"" if is_in else out_data[:SNAP_DATA], setup,
        )  # fmt: skip
        c_len = len(in_data) if is_in else length
        c = UsbRecord(
            tc, uid, URB_COMPLETE, xfer, ep, self.dev, self.bus, status, c_len,
            len(in_data) if is_in else 0, in_data[:SNAP_DATA] if is_in else b"",
        )  # fmt: skip
        self.records += [s, c]
        self.t = max(self.t, ts)
        return s, c

    def descriptor(self) -> None:
        desc = descriptors.device_descriptor(
            VID_GOOGLE, PID_EDGETPU_APP, bcd_usb=0x0310, max_packet0=9, bcd_device=0x0100,
            strings=(1, 2, 0),
        )  # fmt: skip
        setup = descriptors.setup_packet(0x80, GET_DESCRIPTOR, DT_DEVICE << 8, 0, 18)
        _s, c = self.urb(XFER_CONTROL, 0x80, 18, in_data=desc, setup=setup)
        self.t = c.ts_ns

    def csr_write(self, address: int, value: int) -> None:
        setup = struct.pack(
            "<BBHHH", REQTYPE_VENDOR_OUT, CSR_REQUEST_64, address & 0xFFFF, address >> 16, 8
        )
        _s, c = self.urb(XFER_CONTROL, 0x00, 8, out_data=struct.pack("<Q", value), setup=setup)
        self.t = c.ts_ns

    def transfer(self, tag: int, length: int) -> int:
        """Header + payload URBs on 0x01, one after another; returns the last completion time."""
        hdr = encode_header(tag, length)
        _, c = self.urb(XFER_BULK, EP_BULK_OUT, len(hdr), out_data=hdr)
        self.t = c.ts_ns
        left = length
        first = INSTRUCTION_CHUNK_SIGNATURE if tag == Tag.INSTRUCTIONS else bytes([0x80])
        while left:
            n = min(left, MAX_BULK_OUT_CHUNK)
            _, c = self.urb(
                XFER_BULK,
                EP_BULK_OUT,
                n,
                out_data=(first * SNAP_DATA)[:SNAP_DATA],
                min_ns=n * 1_000_000_000 // PAYLOAD_BYTES_PER_S,  # a valid session: a possible rate
            )
            self.t = c.ts_ns
            left -= n
        return self.t

    def posted_read(self, ep: int, length: int, data: bytes, t_complete: int) -> UsbRecord:
        _, c = self.urb(
            XFER_BULK, ep, length, in_data=data, t_submit=self.tick(), t_complete=t_complete
        )
        return c

    def event(self, t_complete: int) -> UsbRecord:
        raw = encode_event()
        return self.posted_read(EP_EVENT_IN, EVENT_LEN, raw, t_complete)

    def output(self, t_complete: int, nbytes: int = 8) -> UsbRecord:
        return self.posted_read(EP_OUTPUT_IN, OUTPUT_READ_LEN_USB3, bytes(nbytes), t_complete)


def edgetpu_session(
    rng: random.Random,
    *,
    bus: int = 2,
    dev: int = 4,
    t0_ns: int = 1_561_213_547_508_541_000,
    inferences: int = 3,
    streamed: int = 0,
    cached: int = 200_000,
    instructions: int = 12_000,
    enumerate_device: bool = True,
) -> BaseSession:
    """One device's traffic: open, a caching request, ``inferences`` inferences."""
    b = _Builder(rng, bus, dev, t0_ns)
    if enumerate_device:
        b.descriptor()
    b.csr_write(CSR_DESCR_EP, 0xF0)
    b.csr_write(CSR_OUTFEED_CHUNK_LENGTH, OUTFEED_CHUNK_SUPERSPEED)
    session = BaseSession()
    # parameter caching request
    b.transfer(Tag.INSTRUCTIONS, rng.randrange(1000, 9000) // 4 * 4)
    done = b.transfer(Tag.PARAMETERS, cached)
    b.event(done + int(rng.uniform(50, 400) * US))
    b.t = max(r.ts_ns for r in b.records)
    for _ in range(inferences):
        b.tick(200, 2000)
        b.transfer(Tag.INSTRUCTIONS, instructions)
        b.transfer(Tag.INPUT, 16)
        if streamed:
            b.transfer(Tag.PARAMETERS, streamed)
        end = b.t + int(rng.uniform(0.5, 5) * MS)
        b.output(end - int(rng.uniform(1, 20) * US))
        b.event(end)
        b.t = max(r.ts_ns for r in b.records)
    session.records = sorted(b.records, key=lambda r: r.ts_ns)
    session.inferences = inferences
    # the record that completes the first inference's event
    events = [
        i
        for i, r in enumerate(session.records)
        if r.epnum == EP_EVENT_IN and r.urb_type == URB_COMPLETE
    ]
    session.first_inference_done = events[1] if len(events) > 1 else -1
    return session


def hub_traffic(rng: random.Random, t0_ns: int, t1_ns: int, *, bus: int = 2) -> list[UsbRecord]:
    """A bystander on the same bus: a hub polling its status-change endpoint (also 0x81)."""
    b = _Builder(rng, bus, 2, t0_ns)
    while b.t < t1_ns:
        b.urb(XFER_INTERRUPT, 0x81, 1, in_data=b"\x02", t_submit=b.t, t_complete=b.tick(500, 3000))
    return b.records


def merge(*streams: list[UsbRecord]) -> list[UsbRecord]:
    """Records of several devices in capture (time) order."""
    return sorted((r for s in streams for r in s), key=lambda r: r.ts_ns)
