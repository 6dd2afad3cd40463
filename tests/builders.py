"""Explicit, URB-by-URB construction of small usbmon captures for tests.

Each call places records at exact microsecond times, so a test knows every expected number. (The
``lab.synthetic`` package simulates whole sessions; this is for precise edge cases.)
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.usb import descriptors
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, encode
from usbtrace.edgetpu import constants as C
from usbtrace.edgetpu.wire import encode_event, encode_header
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
)

T0_US = 1_700_000_000_000_000  # an arbitrary epoch time, in microseconds


class CaptureBuilder:
    """URBs at exact times (µs after ``T0_US``) as ``UsbRecord``s, written by the lab's writer."""

    def __init__(self, bus: int = 2, dev: int = 4, snaplen: int = 0) -> None:
        self.bus, self.dev, self.snaplen = bus, dev, snaplen
        self.records: list[UsbRecord] = []  # in creation order, which breaks ties of equal times
        self._ids = itertools.count(0xFFFF_FFC0_0000_0000, 0x100)

    def urb(
        self,
        ep: int,
        xfer: int,
        t_submit: int,
        t_complete: int | None,
        *,
        length: int,
        out_data: bytes | None = None,
        in_data: bytes | None = None,
        status: int = 0,
        setup: bytes | None = None,
        dev: int | None = None,
        urb_id: int | None = None,
    ) -> int:
        """One URB: a submit at ``t_submit`` µs and (unless None) a completion at ``t_complete``."""
        urb_id = next(self._ids) if urb_id is None else urb_id
        dev = self.dev if dev is None else dev
        is_in = bool(ep & 0x80)
        sdata = b"" if is_in else (out_data if out_data is not None else bytes(min(length, 64)))
        sdl = 0 if is_in else min(length, C.USBMON_DEFAULT_EVENT_CAP)
        self.records.append(
            UsbRecord(
                ts_ns=(T0_US + t_submit) * 1000,
                urb_id=urb_id,
                urb_type=URB_SUBMIT,
                xfer=xfer,
                epnum=ep,
                devnum=dev,
                busnum=self.bus,
                status=STATUS_IN_PROGRESS,
                urb_len=length,
                data_len=sdl,  # usbmon attached that much; ``data`` may keep less (a snaplen)
                data=sdata[:sdl],
                setup=setup,
            )
        )
        if t_complete is not None:
            actual = len(in_data) if (is_in and in_data is not None) else length
            cdata = (in_data or b"") if is_in else b""
            self.records.append(
                UsbRecord(
                    ts_ns=(T0_US + t_complete) * 1000,
                    urb_id=urb_id,
                    urb_type=URB_COMPLETE,
                    xfer=xfer,
                    epnum=ep,
                    devnum=dev,
                    busnum=self.bus,
                    status=status,
                    urb_len=actual if status == 0 else 0,
                    data_len=len(cdata),
                    data=cdata,
                )
            )
        return urb_id

    # -- Edge TPU level -------------------------------------------------------------------------

    def header(self, tag: int, length: int, t_submit: int, t_complete: int) -> None:
        data = encode_header(tag, length)
        self.urb(C.EP_BULK_OUT, XFER_BULK, t_submit, t_complete, length=8, out_data=data)

    def payload(self, length: int, t_submit: int, t_complete: int | None, fill: int = 0x80) -> None:
        self.urb(
            C.EP_BULK_OUT,
            XFER_BULK,
            t_submit,
            t_complete,
            length=length,
            out_data=bytes([fill]) * min(length, 64),
        )

    def transfer(self, tag: int, length: int, t_submit: int, t_complete: int) -> None:
        """Header then one payload URB submitted 1 µs later, completing at ``t_complete``."""
        self.header(tag, length, t_submit, t_submit + 1)
        self.payload(length, t_submit + 1, t_complete)

    def event(self, t_submit: int, t_complete: int, tag: int = C.Tag.INTERRUPT0) -> None:
        data = encode_event(tag)
        self.urb(C.EP_EVENT_IN, XFER_BULK, t_submit, t_complete, length=16, in_data=data)

    def output(self, nbytes: int, t_submit: int, t_complete: int, read: int = 1024) -> None:
        self.urb(
            C.EP_OUTPUT_IN, XFER_BULK, t_submit, t_complete, length=read, in_data=bytes(nbytes)
        )

    def interrupt(self, value: int, t_submit: int, t_complete: int) -> None:
        self.urb(
            C.EP_INTERRUPT_IN,
            XFER_INTERRUPT,
            t_submit,
            t_complete,
            length=4,
            in_data=struct.pack("<I", value),
        )

    def csr(
        self,
        address: int,
        t: int,
        *,
        width: int = 64,
        value: int | None = None,
        read_value: int | None = None,
    ) -> None:
        """A CSR write (``value``) or read (``read_value``), completing 100 µs later."""
        nbytes = width // 8
        request = C.CSR_REQUEST_64 if width == 64 else C.CSR_REQUEST_32
        rt = C.REQTYPE_VENDOR_OUT if value is not None else C.REQTYPE_VENDOR_IN
        setup = descriptors.setup_packet(rt, request, address & 0xFFFF, address >> 16, nbytes)
        if value is not None:
            self.urb(
                0x00,
                XFER_CONTROL,
                t,
                t + 100,
                length=nbytes,
                setup=setup,
                out_data=value.to_bytes(nbytes, "little"),
            )
        else:
            self.urb(
                0x80,
                XFER_CONTROL,
                t,
                t + 100,
                length=nbytes,
                setup=setup,
                in_data=(read_value or 0).to_bytes(nbytes, "little"),
            )

    def device_descriptor(
        self,
        t: int,
        vid: int = C.VID_GOOGLE,
        pid: int = C.PID_EDGETPU_APP,
        bcd_usb: int = 0x0310,
        mps0: int = 9,
        dev: int | None = None,
    ) -> None:
        setup = descriptors.setup_packet(0x80, 6, 0x0100, 0, 18)
        desc = descriptors.device_descriptor(
            vid, pid, bcd_usb=bcd_usb, max_packet0=mps0, bcd_device=0x100, strings=(1, 2, 0)
        )
        self.urb(0x80, XFER_CONTROL, t, t + 100, length=18, setup=setup, in_data=desc, dev=dev)

    # -- output ---------------------------------------------------------------------------------

    def capture_order(self) -> list[UsbRecord]:
        """The records by time; records of the same time in creation order."""
        return sorted(self.records, key=lambda r: r.ts_ns)

    def layout(self, **kw: Any) -> Layout:
        """The builder's file layout (one little-endian pcapng section, µs), changed by ``kw``."""
        base = Layout(
            snaplen=self.snaplen,
            statistics=False,
            comment="usbtrace test capture",
            interface=f"usbmon{self.bus}",
        )
        return replace(base, **kw)

    def pcapng_bytes(self, *, drops: int | None = None, **layout: Any) -> bytes:
        """The file; ``drops`` adds an Interface Statistics Block with that drop count."""
        if drops is not None:
            layout.update(statistics=True, dropped=drops)
        return encode(self.capture_order(), self.layout(**layout)).data

    def write(self, path: Path, **kw: Any) -> Path:
        path.write_bytes(self.pcapng_bytes(**kw))
        return path


def inference(
    b: CaptureBuilder,
    t: int,
    *,
    instr: int = 93_360,
    params: list[int] | None = None,
    compute_us: int = 1000,
    out: int = 8,
) -> int:
    """A simple inference at ``t``: instructions, input, optional parameters, output, event.

    Returns the event's completion time.
    """
    b.transfer(C.Tag.INSTRUCTIONS, instr, t, t + 100)
    b.transfer(C.Tag.INPUT, 16, t + 110, t + 120)
    now = t + 120
    for p in params or []:
        b.transfer(C.Tag.PARAMETERS, p, now + 1, now + 500)
        now += 500
    done = now + compute_us
    b.output(out, t, done - 10)
    b.event(t, done)
    return done
