"""A recorded Edge TPU session, host side only, as steps that can be issued again.

``ReplayScript.from_capture`` reads a usbmon capture and keeps what the host did to the device, in
submit order: vendor control transfers (register access), bulk OUT URBs of the recorded sizes (with
their payload when the capture kept all of it), and, at the position where the recorded completion
arrived, a wait for the device's output bytes or events. Standard requests (enumeration) are the
kernel's business and DFU requests need a re-enumeration, so neither is replayed.

The steps are cut into ``open`` (before the first bulk OUT), ``invokes`` (one per recorded host
``invoke()``: from one INPUT-bearing request's first bulk OUT until its output and completion event
have arrived) and ``close`` (what follows the last invoke).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usbtrace.capture.pcapng_check import Packet, iter_packets
from usbtrace.edgetpu.constants import (
    EDGETPU_IDS,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    HEADER_LEN,
    OUTPUT_READ_LEN_USB3,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    Tag,
)
from usbtrace.errors import InputError
from usbtrace.formats.usbmon import (
    HEADER_LEN_BY_LINKTYPE,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    header_dtype,
)
from usbtrace.usb.descriptors import DIR_IN, DT_DEVICE


@dataclass(frozen=True)
class ControlStep:
    """A control transfer: ``data`` for OUT (None when the capture cut it), ``length`` for IN."""

    frame: int
    request_type: int
    request: int
    value: int
    index: int
    length: int
    data: bytes | None = None

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & DIR_IN)


@dataclass(frozen=True)
class BulkOutStep:
    """One bulk OUT URB; ``payload`` None when the capture kept less than ``length`` bytes."""

    frame: int
    endpoint: int
    length: int
    payload: bytes | None
    tag: int  # of the logical transfer this URB belongs to
    header: bool  # the 8-byte header in front of a logical transfer


@dataclass(frozen=True)
class WaitStep:
    """Wait for one recorded completion: ``length`` more bytes from the device on ``endpoint``.

    Waits count bytes, not reads: a device may split or merge chunks differently and still
    deliver the same bytes.
    """

    frame: int
    endpoint: int
    length: int


Step = ControlStep | BulkOutStep | WaitStep


@dataclass
class ReplayScript:
    source: str
    bus: int
    address: int
    open: list[Step] = field(default_factory=list)
    invokes: list[list[Step]] = field(default_factory=list)
    close: list[Step] = field(default_factory=list)
    output_read_len: int = OUTPUT_READ_LEN_USB3
    skipped_requests: int = 0  # standard and DFU control transfers left to the kernel

    def steps(self) -> Iterable[Step]:
        yield from self.open
        for invoke in self.invokes:
            yield from invoke
        yield from self.close

    @property
    def truncated_steps(self) -> list[BulkOutStep | ControlStep]:
        out: list[BulkOutStep | ControlStep] = []
        for step in self.steps():
            cut_bulk = isinstance(step, BulkOutStep) and step.payload is None
            cut_control = isinstance(step, ControlStep) and not step.is_in and step.data is None
            if cut_bulk or cut_control:
                out.append(step)  # type: ignore[arg-type]
        return out

    @property
    def truncated(self) -> bool:
        return bool(self.truncated_steps)

    def invoke_for(self, index: int) -> list[Step]:
        """Steps of the ``index``-th replayed invoke: the recorded ones in order, then the later
        ones again in turn (the first recorded invoke also carries the parameter caching)."""
        if not self.invokes:
            return []
        if index < len(self.invokes):
            return self.invokes[index]
        repeatable = self.invokes[1:] or self.invokes
        return repeatable[(index - len(self.invokes)) % len(repeatable)]

    @classmethod
    def from_capture(
        cls, path: str | Path, *, bus: int | None = None, address: int | None = None
    ) -> ReplayScript:
        packets = list(iter_packets(path))
        records = [r for r in (_record(p) for p in packets) if r is not None]
        if not records:
            raise InputError(path, "no usbmon records (link type 189/220) in this capture")
        if bus is None or address is None:
            bus, address = _find_edgetpu(path, records, bus)
        mine = [r for r in records if r.bus == bus and r.devnum == address]
        return _build(str(path), bus, address, mine)


@dataclass(frozen=True)
class _Record:
    frame: int
    urb_id: int
    type: int
    xfer: int
    epnum: int
    devnum: int
    bus: int
    status: int
    urb_len: int
    setup: bytes
    payload: bytes  # the captured data after the usbmon header


def _record(packet: Packet) -> _Record | None:
    hlen = HEADER_LEN_BY_LINKTYPE.get(packet.linktype)
    if hlen is None or len(packet.data) < hlen:
        return None
    h = np.frombuffer(packet.data[:hlen], dtype=header_dtype(packet.linktype, packet.byteorder))[0]
    return _Record(
        frame=packet.frame,
        urb_id=int(h["urb_id"]),
        type=int(h["type"]),
        xfer=int(h["xfer"]),
        epnum=int(h["epnum"]),
        devnum=int(h["devnum"]),
        bus=int(h["busnum"]),
        status=int(h["status"]),
        urb_len=int(h["urb_len"]),
        setup=bytes(h["setup"]),
        payload=packet.data[hlen:],
    )


def _find_edgetpu(path: str | Path, records: list[_Record], bus: int | None) -> tuple[int, int]:
    """Bus and address of the Edge TPU: from its device descriptor, else the busiest 0x01 sender."""
    for r in records:
        if (
            r.type == URB_COMPLETE
            and r.xfer == XFER_CONTROL
            and r.epnum == DIR_IN
            and len(r.payload) >= 12
            and r.payload[1] == DT_DEVICE
            and struct.unpack_from("<HH", r.payload, 8) in EDGETPU_IDS
            and (bus is None or r.bus == bus)
        ):
            return r.bus, r.devnum
    counts: dict[tuple[int, int], int] = {}
    for r in records:
        bulk_out = r.type == URB_SUBMIT and r.xfer == XFER_BULK and r.epnum == EP_BULK_OUT
        if bulk_out and (bus is None or r.bus == bus):
            counts[(r.bus, r.devnum)] = counts.get((r.bus, r.devnum), 0) + 1
    if not counts:
        raise InputError(
            path, "no Edge TPU traffic found (no device descriptor, no bulk OUT on 0x01)"
        )
    return max(counts, key=lambda k: counts[k])


def _build(source: str, bus: int, address: int, records: list[_Record]) -> ReplayScript:
    script = ReplayScript(source=source, bus=bus, address=address)
    steps: list[Step] = []
    out_remaining = 0  # payload bytes still due in the open logical transfer
    tag = -1
    read_len: int | None = None
    for r in records:
        if r.xfer == XFER_CONTROL and r.type == URB_SUBMIT:
            setup = r.setup
            request_type = setup[0]
            if request_type not in (REQTYPE_VENDOR_IN, REQTYPE_VENDOR_OUT):
                script.skipped_requests += 1
                continue
            value, index, length = struct.unpack_from("<HHH", setup, 2)
            data = None
            if not request_type & DIR_IN:
                data = r.payload[:length] if len(r.payload) >= length else None
            steps.append(ControlStep(r.frame, request_type, setup[1], value, index, length, data))
        elif r.xfer == XFER_BULK and r.epnum == EP_BULK_OUT and r.type == URB_SUBMIT:
            complete = len(r.payload) >= r.urb_len
            payload = r.payload[: r.urb_len] if complete else None
            if out_remaining == 0:
                if r.urb_len != HEADER_LEN or not complete:
                    raise InputError(
                        source, f"frame {r.frame}: expected an 8-byte bulk OUT header", None
                    )
                assert payload is not None
                out_remaining, tag_byte = struct.unpack_from("<IB", payload, 0)
                tag = tag_byte & 0x0F
                steps.append(BulkOutStep(r.frame, EP_BULK_OUT, r.urb_len, payload, tag, True))
            else:
                out_remaining = max(0, out_remaining - r.urb_len)
                steps.append(BulkOutStep(r.frame, EP_BULK_OUT, r.urb_len, payload, tag, False))
        elif r.xfer == XFER_BULK and r.epnum == EP_OUTPUT_IN and r.type == URB_SUBMIT:
            read_len = read_len or r.urb_len
        elif (
            r.xfer == XFER_BULK
            and r.epnum in (EP_OUTPUT_IN, EP_EVENT_IN)
            and r.type == URB_COMPLETE
            and r.status == 0
            and r.urb_len > 0
        ):
            steps.append(WaitStep(r.frame, r.epnum, r.urb_len))
    if read_len:
        script.output_read_len = read_len
    _cut(script, steps)
    return script


def _cut(script: ReplayScript, steps: list[Step]) -> None:
    first_out = next((i for i, s in enumerate(steps) if isinstance(s, BulkOutStep)), len(steps))
    script.open = steps[:first_out]
    current: list[Step] = []
    # The host's invoke() returns only after output and completion event, so an invoke ends at
    # the first bulk OUT after its INPUT was followed by both (a caching event may come between).
    has_input = got_output = got_event = False
    for step in steps[first_out:]:
        if isinstance(step, BulkOutStep) and has_input and got_output and got_event:
            script.invokes.append(current)
            current, has_input, got_output, got_event = [], False, False, False
        current.append(step)
        if isinstance(step, BulkOutStep) and step.tag == Tag.INPUT:
            has_input = True
        elif isinstance(step, WaitStep) and has_input:
            got_output |= step.endpoint == EP_OUTPUT_IN
            got_event |= step.endpoint == EP_EVENT_IN
    if has_input:
        script.invokes.append(current)
    else:
        script.close = current
    # control transfers after the last wait of the last invoke are the close sequence
    if script.invokes and not script.close:
        last = script.invokes[-1]
        tail = len(last)
        while tail > 0 and isinstance(last[tail - 1], ControlStep):
            tail -= 1
        script.invokes[-1], script.close = last[:tail], last[tail:]
