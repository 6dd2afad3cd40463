"""A whole synthetic Coral USB session as usbmon records, written as pcapng, with its ground truth.

``generate(profile)`` simulates every device of the profile (enumeration, optional firmware
download, the 52-transfer open, requests, the 39-transfer close) plus a hub on the same bus, and
returns the records and the exact truth. ``write_session(profile, path)`` also writes the file.
"""

from __future__ import annotations

import io
import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lab.synthetic import payloads as pl
from lab.synthetic.profile import DeviceProfile, SessionProfile
from lab.synthetic.records import (
    URB_DIR_IN,
    URB_OUT_MAPPED,
    URB_OUT_MAPPED_ABOVE,
    UrbIdPool,
    assign_urb_ids,
    sort_records,
)
from lab.synthetic.timing import OutScheduler, RequestOut, transfer_us
from lab.synthetic.truth import (
    DeviceTruth,
    InvokeTruth,
    RequestTruth,
    SessionTruth,
    TransferTruth,
    UrbTruth,
    bound_verdict,
    streaming_figures,
)
from lab.usb.descriptors import bos_descriptor, setup_packet
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, write_capture
from usbtrace.edgetpu.constants import (
    APP_IDS,
    CSR_REQUEST_32,
    CSR_REQUEST_64,
    DFU_IDS,
    DFU_STATE_DNLOAD_IDLE,
    DFU_STATE_IDLE,
    DFU_STATUS_LEN,
    DFU_TRANSFER_SIZE,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    EVENT_REQUEST_DONE,
    FIRMWARE_MULTI_EP_BYTES,
    FIRMWARE_SINGLE_EP_BYTES,
    HUB_IDS_2019,
    INTERRUPT_INTERVAL,
    INTERRUPT_LEN,
    MULTI_EP_TAG_BY_ENDPOINT,
    OUTPUT_READS_QUEUED,
    REGISTERS_BY_NAME,
    REQTYPE_DFU_IN,
    REQTYPE_DFU_OUT,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    CsrStep,
    DfuRequest,
    csr_close_sequence,
    csr_open_sequence,
)
from usbtrace.edgetpu.wire import encode_header
from usbtrace.formats.metadata import (
    CaptureMetadata,
    InvokeTiming,
)
from usbtrace.formats.usbmon import (
    STATUS_CANCELLED,
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
)

ENDPOINT_BY_TAG = {int(tag): ep for ep, tag in MULTI_EP_TAG_BY_ENDPOINT.items()}
HUB_PORT = 3
HUB_INTERRUPT_INTERVAL = 128  # as the real captures' hub URBs show it
HUB_STATUS_BYTES = 2
HUB_REPORT_US = 16_000  # the hub reports a port change every 16 ms while a reset settles
REQ_GET_STATUS, REQ_CLEAR_FEATURE, REQ_SET_FEATURE = 0, 1, 3
REQ_GET_DESCRIPTOR, REQ_SET_CONFIGURATION = 6, 9
FEAT_PORT_RESET, FEAT_C_PORT_RESET = 4, 20
REQTYPE_STD_IN, REQTYPE_STD_OUT = 0x80, 0x00
REQTYPE_HUB_PORT_IN, REQTYPE_HUB_PORT_OUT = 0xA3, 0x23
CLOSE_CANCEL_STEP_US = 350  # real closes cancel the pending reads about this far apart
FIRST_INVOKE_AFTER_OPEN_US = 4_000
# Before the driver starts, something (lsusb-like) reads every device descriptor on the bus, as at
# the start of the real captures: the accelerator's, the hub's and the root hub's.
PROBE_LENGTH = 40
PROBE_STEP_US = 150
DEVICES_START_US = 200_000  # capture start -> the first device's session
ROOT_HUB_ADDRESS = 1
ROOT_HUB_IDS = (0x1D6B, 0x0003)  # Linux xHCI SuperSpeed root hub
USB_CLASS_HUB = 9


@dataclass
class Session:
    records: list[UsbRecord]
    truth: SessionTruth
    metadata: CaptureMetadata | None


class _Emitter:
    """Creates records; remembers creation order and URB serials."""

    def __init__(self, profile: SessionProfile) -> None:
        self.records: list[UsbRecord] = []  # in creation order: it breaks ties of equal times
        self.keep = profile.snaplen - 64
        self.cap = profile.usbmon_event_cap
        self._serial = 0

    def new_serial(self) -> int:
        self._serial += 1
        return self._serial

    def emit(self, *, ts_us: int, **fields: Any) -> UsbRecord:
        """A record at ``ts_us``; its ``urb_id`` is the URB's serial until ``assign_urb_ids``."""
        rec = UsbRecord(ts_ns=ts_us * 1000, **fields)
        self.records.append(rec)
        return rec

    def data_len(self, urb_len: int) -> int:
        return min(urb_len, self.cap)

    def bulk_out(
        self,
        *,
        bus: int,
        device: int,
        endpoint: int,
        submit_us: int,
        complete_us: int,
        length: int,
        data: bytes,
    ) -> int:
        """A bulk-OUT URB: the data rides on the submit. Returns its serial."""
        serial = self.new_serial()
        common = dict(busnum=bus, devnum=device, epnum=endpoint, xfer=XFER_BULK)
        n = self.data_len(length)
        self.emit(
            ts_us=submit_us,
            urb_id=serial,
            urb_type=URB_SUBMIT,
            status=STATUS_IN_PROGRESS,
            urb_len=length,
            data_len=n,
            data=data[: min(n, self.keep)],
            **common,
        )
        self.emit(
            ts_us=complete_us,
            urb_id=serial,
            urb_type=URB_COMPLETE,
            status=0,
            urb_len=length,
            data_len=0,
            xfer_flags=URB_OUT_MAPPED if length > URB_OUT_MAPPED_ABOVE else 0,
            **common,
        )
        return serial

    def control(
        self,
        *,
        bus: int,
        device: int,
        t_us: int,
        duration_us: int,
        setup: bytes,
        data: bytes = b"",
    ) -> int:
        """One control transfer; ``data`` is sent (OUT) or replied (IN). Returns completion µs."""
        serial = self.new_serial()
        is_in = bool(setup[0] & 0x80)
        w_length = struct.unpack_from("<H", setup, 6)[0]
        ep = 0x80 if is_in else 0x00
        flags = URB_DIR_IN if is_in else 0
        out_n = 0 if is_in else self.data_len(w_length)
        self.emit(
            ts_us=t_us,
            urb_id=serial,
            urb_type=URB_SUBMIT,
            xfer=XFER_CONTROL,
            epnum=ep,
            devnum=device,
            busnum=bus,
            status=STATUS_IN_PROGRESS,
            urb_len=w_length,
            data_len=out_n,
            data=b"" if is_in else data[: min(out_n, self.keep)],
            setup=setup,
            xfer_flags=flags,
        )
        done = t_us + duration_us
        actual = len(data) if is_in else w_length
        in_n = self.data_len(actual) if is_in else 0
        self.emit(
            ts_us=done,
            urb_id=serial,
            urb_type=URB_COMPLETE,
            xfer=XFER_CONTROL,
            epnum=ep,
            devnum=device,
            busnum=bus,
            status=0,
            urb_len=actual,
            data_len=in_n,
            data=data[: min(in_n, self.keep)] if is_in else b"",
            xfer_flags=flags,
        )
        return done


class _ReadQueue:
    """Reads the driver keeps pending on one IN endpoint: FIFO, re-posted after each completion,
    timed out (status −2, re-posted) after the libusb timeout, cancelled at close."""

    def __init__(
        self,
        em: _Emitter,
        dev: DeviceProfile,
        endpoint: int,
        xfer: int,
        length: int,
        interval: int = 0,
    ) -> None:
        self.em, self.dev = em, dev
        self.endpoint, self.xfer, self.length, self.interval = endpoint, xfer, length, interval
        self.pending: deque[tuple[int, int]] = deque()  # (serial, posted µs)
        self.timing = dev.timing

    def post(self, t_us: int) -> None:
        serial = self.em.new_serial()
        self.em.emit(
            ts_us=t_us,
            urb_id=serial,
            urb_type=URB_SUBMIT,
            xfer=self.xfer,
            epnum=self.endpoint,
            devnum=self.dev.address,
            busnum=self.dev.bus,
            status=STATUS_IN_PROGRESS,
            urb_len=self.length,
            data_len=0,
            interval=self.interval,
            xfer_flags=URB_DIR_IN,
        )
        self.pending.append((serial, t_us))

    def _complete(self, serial: int, t_us: int, status: int, data: bytes) -> None:
        n = self.em.data_len(len(data))
        self.em.emit(
            ts_us=t_us,
            urb_id=serial,
            urb_type=URB_COMPLETE,
            xfer=self.xfer,
            epnum=self.endpoint,
            devnum=self.dev.address,
            busnum=self.dev.bus,
            status=status,
            urb_len=len(data),
            data_len=n,
            data=data[: min(n, self.em.keep)],
            interval=self.interval,
            xfer_flags=URB_DIR_IN,
        )

    def expire(self, until_us: int) -> None:
        timeout = self.timing.read_timeout_us
        if timeout is None:
            return
        while self.pending and self.pending[0][1] + timeout < until_us:
            serial, posted = self.pending.popleft()
            self._complete(serial, posted + timeout, STATUS_CANCELLED, b"")
            self.post(posted + timeout + self.timing.repost_us)

    def deliver(self, t_us: int, data: bytes) -> tuple[int, int]:
        """Complete the oldest pending read with ``data`` at ``t_us`` or as soon as a read is
        pending; re-post it. Returns (completion µs, URB serial)."""
        self.expire(t_us)
        serial, posted = self.pending.popleft()
        done = max(t_us, posted + 1)
        self._complete(serial, done, 0, data)
        self.post(done + self.timing.repost_us)
        return done, serial

    def cancel_all(self, t_us: int, step_us: int) -> int:
        self.expire(t_us)
        while self.pending:
            serial, posted = self.pending.popleft()
            # a read re-posted after a timeout may be younger than the close itself
            t_us = max(t_us, posted + 1)
            self._complete(serial, t_us, STATUS_CANCELLED, b"")
            t_us += step_us
        return t_us


def _jitter(index: int, limit: int) -> int:
    """A reproducible 0..limit µs for request ``index``."""
    if limit <= 0:
        return 0
    return int.from_bytes(pl.pseudo_random(f"jitter {index}", 8), "little") % (limit + 1)


class _DeviceSim:
    def __init__(self, em: _Emitter, profile: SessionProfile, dev: DeviceProfile) -> None:
        self.em, self.profile, self.dev, self.t = em, profile, dev, dev.timing
        self.truth = DeviceTruth(
            bus=dev.bus,
            address=dev.address,
            link_speed=dev.link_speed,
            multi_ep=dev.multi_ep,
            link_peak_out=dev.timing.link_out_bytes_per_s,
        )
        self.invokes: list[InvokeTruth] = []
        self.link_urbs: list[tuple[int, int, int]] = []  # (start on the link, completion, bytes)

    # --- control-transfer helpers -------------------------------------------------------------

    def _ctrl(self, t_us: int, device: int, setup: bytes, data: bytes = b"") -> int:
        done = self.em.control(
            bus=self.dev.bus,
            device=device,
            t_us=t_us,
            duration_us=self.t.control_us,
            setup=setup,
            data=data,
        )
        return done + self.t.control_gap_us

    def _hub_port_reset(self, t_us: int) -> int:
        hub, bus = self.profile.hub_address, self.dev.bus
        port_status = setup_packet(REQTYPE_HUB_PORT_IN, REQ_GET_STATUS, 0, HUB_PORT, 4)
        t_us = self._ctrl(t_us, hub, port_status, struct.pack("<HH", 0x0203, 0))
        t_us = self._ctrl(
            t_us,
            hub,
            setup_packet(REQTYPE_HUB_PORT_OUT, REQ_SET_FEATURE, FEAT_PORT_RESET, HUB_PORT, 0),
        )
        # The hub's status-change endpoint is also 0x81, like the accelerator's output: only the
        # device address tells them apart. Each report is one byte, the changed port's bit.
        common = dict(
            busnum=bus,
            devnum=hub,
            epnum=0x81,
            xfer=XFER_INTERRUPT,
            interval=HUB_INTERRUPT_INTERVAL,
            xfer_flags=URB_DIR_IN,
        )
        report = bytes([1 << HUB_PORT])
        for _ in range(3):
            serial = self.em.new_serial()
            self.em.emit(
                ts_us=t_us,
                urb_id=serial,
                urb_type=URB_SUBMIT,
                status=STATUS_IN_PROGRESS,
                urb_len=HUB_STATUS_BYTES,
                data_len=0,
                **common,
            )
            t_us += HUB_REPORT_US
            self.em.emit(
                ts_us=t_us,
                urb_id=serial,
                urb_type=URB_COMPLETE,
                status=0,
                urb_len=len(report),
                data_len=len(report),
                data=report[: self.em.keep],
                **common,
            )
            t_us += 10
        t_us = self._ctrl(
            t_us,
            hub,
            setup_packet(REQTYPE_HUB_PORT_OUT, REQ_CLEAR_FEATURE, FEAT_C_PORT_RESET, HUB_PORT, 0),
        )
        return self._ctrl(t_us, hub, port_status, struct.pack("<HH", 0x0203, 0))

    def _enumerate(self, t_us: int, address: int, ids: tuple[int, int], dfu: bool) -> int:
        speed = self.dev.link_speed
        desc = pl.device_descriptor(*ids, speed)
        get = REQTYPE_STD_IN
        t_us = self._ctrl(
            t_us, address, setup_packet(get, REQ_GET_DESCRIPTOR, 0x0100, 0, 8), desc[:8]
        )
        t_us = self._ctrl(t_us, address, setup_packet(get, REQ_GET_DESCRIPTOR, 0x0100, 0, 18), desc)
        if speed == "super":
            bos = bos_descriptor()
            for n in (5, len(bos)):
                t_us = self._ctrl(
                    t_us, address, setup_packet(get, REQ_GET_DESCRIPTOR, 0x0F00, 0, n), bos[:n]
                )
        config = pl.dfu_config_descriptor() if dfu else pl.config_descriptor(speed)
        t_us = self._ctrl(
            t_us,
            address,
            setup_packet(get, REQ_GET_DESCRIPTOR, 0x0200, 0, len(config)),
            config,
        )
        return self._ctrl(
            t_us, address, setup_packet(REQTYPE_STD_OUT, REQ_SET_CONFIGURATION, 1, 0, 0)
        )

    def _firmware_download(self, t_us: int) -> int:
        """DFU download to the boot loader, then read-back (driver source and a libusb trace)."""
        addr = self.dev.dfu_address
        size = FIRMWARE_MULTI_EP_BYTES if self.dev.multi_ep else FIRMWARE_SINGLE_EP_BYTES
        image = pl.pseudo_random("synthetic firmware (not the real image)", size)
        # the driver reads the configuration (up to 512 bytes) for the DFU functional descriptor
        config = pl.dfu_config_descriptor()
        t_us = self._ctrl(
            t_us, addr, setup_packet(REQTYPE_STD_IN, REQ_GET_DESCRIPTOR, 0x0200, 0, 512), config
        )
        blocks = [image[i : i + DFU_TRANSFER_SIZE] for i in range(0, size, DFU_TRANSFER_SIZE)]
        for n, block in enumerate([*blocks, b""]):
            t_us = self._ctrl(
                t_us,
                addr,
                setup_packet(REQTYPE_DFU_OUT, DfuRequest.DNLOAD, n & 0xFFFF, 0, len(block)),
                block,
            )
            state = DFU_STATE_DNLOAD_IDLE if block else DFU_STATE_IDLE
            t_us = self._ctrl(
                t_us,
                addr,
                setup_packet(REQTYPE_DFU_IN, DfuRequest.GETSTATUS, 0, 0, DFU_STATUS_LEN),
                bytes([0, 0, 0, 0, state, 0]),
            )
        for n, block in enumerate(blocks):
            t_us = self._ctrl(
                t_us,
                addr,
                setup_packet(REQTYPE_DFU_IN, DfuRequest.UPLOAD, n & 0xFFFF, 0, DFU_TRANSFER_SIZE),
                block,
            )
        self.truth.dfu_blocks = len(blocks)
        self.truth.dfu_address = addr
        return t_us

    def _csr(self, t_us: int, steps: tuple[CsrStep, ...]) -> int:
        for step in steps:
            reg = REGISTERS_BY_NAME[step.register]
            request = CSR_REQUEST_32 if reg.width == 32 else CSR_REQUEST_64
            size = reg.width // 8
            value = step.value.to_bytes(size, "little")
            req_type = REQTYPE_VENDOR_OUT if step.write else REQTYPE_VENDOR_IN
            setup = setup_packet(req_type, request, reg.address & 0xFFFF, reg.address >> 16, size)
            t_us = self._ctrl(t_us, self.dev.address, setup, value)
        return t_us

    # --- the session ----------------------------------------------------------------------------

    def run(self, t_us: int) -> int:
        dev = self.dev
        if dev.firmware_download:
            t_us = self._hub_port_reset(t_us)
            t_us = self._enumerate(t_us, dev.dfu_address, DFU_IDS, dfu=True)
            t_us = self._firmware_download(t_us)
            t_us = self._hub_port_reset(t_us)
            t_us = self._enumerate(t_us, dev.address, APP_IDS, dfu=False)
            t_us += dev.open_idle_us
        elif dev.enumeration:
            t_us = self._hub_port_reset(t_us)
            t_us = self._enumerate(t_us, dev.address, APP_IDS, dfu=False)
            t_us += dev.open_idle_us
        open_steps = csr_open_sequence(
            outfeed_chunk_length=dev.outfeed_chunk_length, multi_bo_ep=int(dev.multi_ep)
        )
        t_us = self._csr(t_us, open_steps)
        self.truth.open_csr = len(open_steps)

        em = self.em
        events = _ReadQueue(em, dev, EP_EVENT_IN, XFER_BULK, EVENT_LEN)
        interrupts = _ReadQueue(
            em, dev, EP_INTERRUPT_IN, XFER_INTERRUPT, INTERRUPT_LEN, INTERRUPT_INTERVAL
        )
        outputs = _ReadQueue(em, dev, EP_OUTPUT_IN, XFER_BULK, dev.output_read_len)
        events.post(t_us)
        interrupts.post(t_us + 30)
        for i in range(OUTPUT_READS_QUEUED):
            outputs.post(t_us + 60 + 17 * i)

        sched = OutScheduler(dev.timing, headers=not dev.multi_ep)
        invoke_at = t_us + FIRST_INVOKE_AFTER_OPEN_US
        previous_done = 0
        last_end = t_us
        invoke_index = 0
        requests = dev.requests()
        for index, (kind, transfers) in enumerate(requests):
            queued_behind_caching = index == 1 and requests[0][0] == "parameter-caching"
            if not queued_behind_caching:
                host_start = invoke_at + self.t.invoke_setup_us
                invoke_start = invoke_at
            req = sched.schedule(index, kind, transfers, host_start, previous_done)
            self._emit_out(req)
            truth = self._finish_request(req, outputs, events)
            previous_done = truth.event_us
            last_end = max(last_end, truth.t_end_us)
            self.truth.requests.append(truth)
            if kind != "parameter-caching":
                ret = truth.t_end_us + self.t.invoke_return_us
                self.invokes.append(InvokeTruth(invoke_index, invoke_start, ret))
                invoke_index += 1
                invoke_at = ret + dev.interval_us

        t_us = max(last_end, sched.last_submit_us) + self.profile.tail_idle_us
        for queue in (outputs, events, interrupts):
            t_us = queue.cancel_all(t_us, CLOSE_CANCEL_STEP_US)
        close_steps = csr_close_sequence()
        t_us = self._csr(t_us, close_steps)
        self.truth.close_csr = len(close_steps)
        return t_us

    def _emit_out(self, req: RequestOut) -> None:
        offsets: dict[int, int] = {}
        for urb in req.urbs:
            tag, length = req.transfers[urb.transfer]
            # the same weights and instructions every time the request runs, as on the real device
            label = f"{self.dev.bus}.{self.dev.address} {req.kind} t{urb.transfer}"
            if urb.header:
                data = encode_header(tag, length)
            else:
                off = offsets.get(urb.transfer, 0)
                offsets[urb.transfer] = off + urb.length
                data = pl.payload(tag, urb.length, off, f"{label} @{off}", self.em.keep)
            endpoint = ENDPOINT_BY_TAG[tag] if self.dev.multi_ep else EP_BULK_OUT
            urb.serial = self.em.bulk_out(
                bus=self.dev.bus,
                device=self.dev.address,
                endpoint=endpoint,
                submit_us=urb.submit_us,
                complete_us=urb.complete_us,
                length=urb.length,
                data=data,
            )

    def _finish_request(
        self, req: RequestOut, outputs: _ReadQueue, events: _ReadQueue
    ) -> RequestTruth:
        t, dev = self.t, self.dev
        last_out = req.last_complete_us
        chunks: list[tuple[int, int]] = []
        if req.kind == "parameter-caching":
            event_at = last_out + t.caching_tail_us
        else:
            out_start = last_out + t.tail_us
            if req.exec_start_us is not None:
                # output needs at least a microsecond of execution after the input arrived
                compute = t.compute_us + _jitter(req.index, t.compute_jitter_us)
                out_start = max(out_start, req.exec_start_us + max(compute, 1))
            # out_start is when the first chunk arrives; the rest follow at the IN link rate
            at = out_start
            remaining = dev.output_bytes
            while remaining > 0:
                n = min(remaining, dev.output_read_len)
                remaining -= n
                if chunks:
                    at += transfer_us(n, t.link_in_bytes_per_s)
                at, _ = outputs.deliver(at, bytes(n))
                chunks.append((at, n))
            event_at = at + t.event_after_output_us if chunks else out_start
        event_us, event_serial = events.deliver(event_at, EVENT_REQUEST_DONE)
        truth = self._request_truth(req, chunks, event_us)
        truth.event_serial = event_serial
        return truth

    def _request_truth(
        self, req: RequestOut, chunks: list[tuple[int, int]], event_us: int
    ) -> RequestTruth:
        transfers: list[TransferTruth] = []
        for ti, (tag, length) in enumerate(req.transfers):
            urbs = [u for u in req.urbs if u.transfer == ti]
            header = next(
                (
                    UrbTruth(u.submit_us, u.complete_us, u.length, serial=u.serial)
                    for u in urbs
                    if u.header
                ),
                None,
            )
            body = [
                UrbTruth(u.submit_us, u.complete_us, u.length, serial=u.serial)
                for u in urbs
                if not u.header
            ]
            endpoint = ENDPOINT_BY_TAG[tag] if self.dev.multi_ep else EP_BULK_OUT
            transfers.append(TransferTruth(tag, length, header, body, endpoint))
        t_end = max([event_us, *(c for c, _ in chunks)])
        streamed = req.kind == "inference"
        params = [
            (u.submit_us, u.complete_us)
            for u in req.urbs
            if streamed and u.tag == 2 and not u.header
        ]
        param_bytes = sum(n for tag, n in req.transfers if tag == 2)
        streamed_bytes = param_bytes if streamed else 0
        exec_start = req.input_complete_us
        window = (exec_start, t_end) if exec_start is not None else None
        overlap, busy, rate = streaming_figures(params, streamed_bytes, window)
        for u in sorted(req.urbs, key=lambda u: u.complete_us):
            on_link = max(u.submit_us, self.link_urbs[-1][1] if self.link_urbs else u.submit_us)
            self.link_urbs.append((on_link, u.complete_us, u.length))
        t = self.t
        verdict = bound_verdict(
            self.link_urbs,
            (req.urbs[0].submit_us, t_end),
            req.last_complete_us,
            sum(transfer_us(n, t.link_in_bytes_per_s) for _, n in chunks),
            lambda n: t.urb_overhead_us + transfer_us(n, t.link_out_bytes_per_s),
        )
        return RequestTruth(
            index=req.index,
            kind=req.kind,
            t_start_us=req.urbs[0].submit_us,
            t_end_us=t_end,
            event_us=event_us,
            transfers=transfers,
            output_chunks=chunks,
            exec_start_us=exec_start,
            param_intervals=params,
            overlap=overlap,
            stream_busy_us=busy,
            streamed_bytes=streamed_bytes,
            cached_bytes=0 if streamed else param_bytes,
            stream_rate=rate,
            verdict=verdict,
        )


def _probe_buses(em: _Emitter, profile: SessionProfile) -> None:
    """GET_DESCRIPTOR(device) to every accelerator (already enumerated), hub and root hub."""
    t_us = profile.start_us
    setup = setup_packet(REQTYPE_STD_IN, REQ_GET_DESCRIPTOR, 0x0100, 0, PROBE_LENGTH)
    for bus in sorted({d.bus for d in profile.devices}):
        replies = [
            (d.address, pl.device_descriptor(*APP_IDS, d.link_speed))
            for d in profile.devices
            if d.bus == bus and not d.firmware_download
        ]
        hub = pl.device_descriptor(
            *HUB_IDS_2019, "super", 0x0120, bcd_usb=0x0320, device_class=USB_CLASS_HUB, protocol=3
        )
        root = pl.device_descriptor(
            *ROOT_HUB_IDS, "super", 0x0409, bcd_usb=0x0300, device_class=USB_CLASS_HUB, protocol=3
        )
        replies += [(profile.hub_address, hub), (ROOT_HUB_ADDRESS, root)]
        for address, reply in replies:
            t_us = em.control(
                bus=bus,
                device=address,
                t_us=t_us,
                duration_us=PROBE_STEP_US // 3,
                setup=setup,
                data=reply,
            )
            t_us += PROBE_STEP_US


def generate(profile: SessionProfile) -> Session:
    """Simulate ``profile``: records in capture order (URB ids assigned) and the ground truth."""
    em = _Emitter(profile)
    devices: list[DeviceTruth] = []
    invokes: list[InvokeTruth] = []
    _probe_buses(em, profile)
    end = profile.start_us
    for n, dev in enumerate(profile.devices):
        sim = _DeviceSim(em, profile, dev)
        end = max(end, sim.run(profile.start_us + DEVICES_START_US + dev.start_offset_us))
        devices.append(sim.truth)
        if n == 0:
            invokes = sim.invokes
    records = sort_records(em.records)
    keys = {(r.busnum, r.devnum) for r in records}
    serials = assign_urb_ids(records, {key: UrbIdPool(seed=key[0] * 256 + key[1]) for key in keys})
    truth = SessionTruth(
        name=profile.name,
        devices=devices,
        frames=len(records),
        dropped=profile.dropped,
        snaplen=profile.snaplen,
        invokes=invokes,
        start_us=profile.start_us,
        end_us=records[-1].ts_ns // 1000 if records else profile.start_us,
    )
    _fill_frames(records, serials, truth)
    meta = _metadata(profile, truth) if profile.metadata else None
    return Session(records, truth, meta)


def _fill_frames(records: list[UsbRecord], serials: list[int], truth: SessionTruth) -> None:
    """Put the 1-based frame numbers of every bulk-OUT URB and event into the truth."""
    submit: dict[int, int] = {}
    complete: dict[int, int] = {}
    for i, (rec, serial) in enumerate(zip(records, serials), start=1):
        (submit if rec.urb_type == URB_SUBMIT else complete)[serial] = i
    for dev in truth.devices:
        for req in dev.requests:
            for tr in req.transfers:
                for u in ([tr.header] if tr.header else []) + tr.chunks:
                    u.frame_submit = submit[u.serial]
                    u.frame_complete = complete[u.serial]
            req.event_frame = complete[req.event_serial]


def _metadata(profile: SessionProfile, truth: SessionTruth) -> CaptureMetadata:
    first = profile.devices[0]
    return CaptureMetadata(
        model=profile.model,
        label=profile.name,
        link_speed=first.link_speed,
        bus=first.bus,
        device=first.address,
        invokes=[InvokeTiming(i.index, i.start_us * 1000, i.end_us * 1000) for i in truth.invokes],
        extra={"synthetic": True, "generator": "usbtrace.synthetic", "preset": profile.name},
    )


def write_session(
    profile: SessionProfile, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Session:
    """Generate ``profile`` and write it to ``path`` (a new file unless ``overwrite``)."""
    session = generate(profile)
    with open(Path(path), "wb" if overwrite else "xb") as stream:
        write_pcapng(session, profile, stream)
    return session


def session_bytes(profile: SessionProfile) -> tuple[bytes, Session]:
    """The pcapng file of ``profile`` in memory, and the session."""
    session = generate(profile)
    buffer = io.BytesIO()
    write_pcapng(session, profile, buffer)
    return buffer.getvalue(), session


def section_comment(profile: SessionProfile) -> str:
    """Says the file is synthetic, and which parts follow only the driver source."""
    inferred = []
    if any(d.firmware_download for d in profile.devices):
        inferred.append("the DFU firmware download")
    if any(d.multi_ep for d in profile.devices):
        inferred.append("multi-endpoint mode")
    if any(d.link_speed != "super" for d in profile.devices):
        inferred.append("USB 2 behaviour")
    text = f"Synthetic Edge TPU session generated by usbtrace ({profile.name}); not a real capture"
    if inferred:
        text += f". Inferred from the driver source, never captured: {', '.join(inferred)}"
    return text


def write_pcapng(session: Session, profile: SessionProfile, stream: BinaryIO) -> None:
    write_capture(stream, session.records, layout(profile), metadata=session.metadata)


def layout(profile: SessionProfile) -> Layout:
    """How the simulator writes ``profile``: one little-endian pcapng section, microseconds."""
    buses = sorted({d.bus for d in profile.devices})
    return Layout(
        snaplen=profile.snaplen,
        statistics=bool(profile.dropped),
        dropped=profile.dropped,
        comment=section_comment(profile),
        application="usbtrace synthetic",
        interface=f"usbmon{buses[0]}" if len(buses) == 1 else "usbmon0",
    )
