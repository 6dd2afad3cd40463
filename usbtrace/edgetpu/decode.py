"""Decode each device's URBs into Edge TPU traces (the pipeline feeds it ``DeviceBatch``es).

The USB layer (``usbtrace.usb.devices``) has split each batch by device and read what USB says
of each (descriptors, frames, standard requests, URB statistics). Here, per device: its CSR and
DFU control transfers decoded, its bulk-OUT submit stream framed, its IN completions (events,
output chunks, interrupts) collected, keeping only compact arrays; and which device is an Edge
TPU. The per-transfer view is assembled when the pipeline asks for a window
(``Decoder.window``); what the analysis has finished with is released (``Decoder.release``), so
memory follows the requests in flight (``assemble.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.assemble import OUT_COLUMNS, OutState
from usbtrace.edgetpu.constants import (
    COMPLETION_TAG,
    CSR_DESCR_EP,
    CSR_MULTI_BO_EP,
    CSR_OUTFEED_CHUNK_LENGTH,
    DESCR_EP_INTERRUPTS_ONLY,
    EDGETPU_IDS,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    OUTFEED_CHUNK_HIGHSPEED,
    OUTFEED_CHUNK_SUPERSPEED,
)
from usbtrace.edgetpu.control import CsrAccess, DfuStep, decode_control
from usbtrace.edgetpu.firmware import downloads, firmware_download
from usbtrace.edgetpu.framing import OutFramer
from usbtrace.edgetpu.trace import (
    EVENT,
    OUTPUT_CHUNK,
    EdgeTpuTrace,
    FirmwareDownload,
    Interrupt,
)
from usbtrace.edgetpu.wire import event_columns, event_tag_captured, interrupt_words
from usbtrace.errors import InputError
from usbtrace.formats.capture import CaptureInfo
from usbtrace.formats.metadata import CaptureMetadata, metadata_from_blocks
from usbtrace.formats.records import concat_rows, take
from usbtrace.formats.usbmon import URB_SUBMIT, XFER_BULK, XFER_CONTROL, XFER_INTERRUPT
from usbtrace.usb import pairing
from usbtrace.usb.descriptors import DIR_IN
from usbtrace.usb.devices import (
    DeviceBatch,
    DeviceKey,
    DeviceTraffic,
    StandardRequest,
    UsbCapture,
    UsbDevice,
    UsbDevices,
)
from usbtrace.usb.pairing import Urbs

GIVE_UP_UNFRAMED = 64  # a bulk device with this many non-header URBs and no header is not a TPU
# The driver keeps a few reads posted on 0x81-0x83 at all times, so some URBs of a device are
# always left open when a capture ends; more than this many never completed is a flood.
NEVER_COMPLETED_NORMAL = 64


@dataclass
class _Device:
    """The Edge TPU side of one USB device (its USB facts are ``usb``'s)."""

    usb: UsbDevice
    framer: OutFramer = field(default_factory=OutFramer)
    state: OutState = field(default_factory=OutState)  # bulk-OUT transfers not yet released
    # bulk-OUT URB columns (OUT_COLUMNS) paired since the last window, one piece per batch
    out: dict[str, list[np.ndarray]] = field(default_factory=dict)
    chunks: list[np.ndarray] = field(default_factory=list)  # OUTPUT_CHUNK not yet released
    events: list[np.ndarray] = field(default_factory=list)  # EVENT not yet released
    interrupts: list[Interrupt] = field(default_factory=list)
    csr: list[CsrAccess] = field(default_factory=list)
    dfu: list[DfuStep] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # Edge TPU ones (USB's: ``usb.stats``)
    abandoned: bool = False  # bulk traffic that is clearly not the Edge TPU protocol
    multi_ep_from: int = 0  # completion frame of the multi_bo_ep := 1 write, 0 if none
    descr_events_from: int = 0  # completion frame of a descr_ep write enabling tags 0-3
    assumed_event_tags: int = 0  # events whose tag byte was not captured (tag 4 assumed)
    taken: tuple[int, int, int, int] = (0, 0, 0, 0)  # control items handed on (take_controls)


@dataclass
class DecodedCapture:
    path: str
    info: CaptureInfo
    devices: list[EdgeTpuTrace]
    other_devices: list[tuple[int, int, tuple[int, int] | None]]  # bus, address, (vid, pid)
    first_ts_ns: int
    last_ts_ns: int
    orphan_completions: int
    superseded_submits: int
    metadata: CaptureMetadata | None
    error: InputError | None = None  # set when partial_ok and the file broke off
    dropped_open: int = 0  # open submits the pairer gave up on (more than MAX_OPEN at once)

    @property
    def problems(self) -> list[str]:
        out: list[str] = []
        if self.error is not None:
            out.append(f"unreadable after byte {self.error.offset}: {self.error.message}")
        if self.info.cut_at is not None:
            out.append(f"file is cut at byte {self.info.cut_at}")
        if self.info.dropped:
            out.append(f"{self.info.dropped} packet(s) dropped by the capture")
        if self.info.short_records:
            out.append(f"{self.info.short_records} record(s) too short for a usbmon header")
        if self.dropped_open:
            n, cap = self.dropped_open, pairing.MAX_OPEN
            out.append(f"{n} open URB(s) given up on: more than {cap} open at once")
        return out

    def problems_for(self, trace: EdgeTpuTrace) -> list[str]:
        """Capture-wide problems plus the traffic of this device that could not be paired."""
        out = self.problems
        if trace.orphan_completions:
            out.append(f"{trace.orphan_completions} completion(s) without their submit")
        if trace.assumed_event_tags:
            n = trace.assumed_event_tags
            out.append(f"event payloads not captured: tags assumed ({n} event(s))")
        if trace.never_completed > NEVER_COMPLETED_NORMAL:
            out.append(f"{trace.never_completed} URB(s) never completed")
        return out


def stamped_at_submit(hdr: np.ndarray) -> np.ndarray:
    """Which open URBs (usbmon headers) stamp what they become with their submit time: control
    accesses and bulk-OUT transfers. Reads are stamped at their completion, and the driver keeps
    some posted for ever. (``usbtrace.usb.devices.UrbStage`` asks, for ``oldest_open_ns``.)"""
    xfer = hdr["xfer"]
    return (xfer == XFER_CONTROL) | ((xfer == XFER_BULK) & (hdr["epnum"] < DIR_IN))


class Decoder:
    """The Edge TPU protocol of every device on the bus, fed device batch after device batch.

    ``usb`` is the devices stage that feeds it (what USB says of each device, and how far the
    capture has been read). ``only`` is the (bus, address) the user named, to decode whatever
    its traffic looks like. Streaming: ``window`` gives a device's traffic not yet released as a
    trace, ``release`` lets go of what the analysis has finished with; ``finish`` gives what is
    left.
    """

    def __init__(self, usb: UsbDevices, only: DeviceKey | None = None) -> None:
        self.usb = usb
        self.only = only
        self.devices: dict[DeviceKey, _Device] = {}

    @property
    def first_ts(self) -> int | None:
        """The first record's time, None before any record."""
        return self.usb.first_ts

    @property
    def last_ts(self) -> int | None:
        """The latest record's time so far, None before any record."""
        return self.usb.last_ts

    # -- per batch ------------------------------------------------------------------------------

    def feed(self, batch: DeviceBatch) -> None:
        """One batch of the devices stage, in batch order."""
        recs = batch.records
        out = None
        if len(recs):
            h = recs["hdr"]
            out = (h["type"] == URB_SUBMIT) & (h["xfer"] == XFER_BULK) & (h["epnum"] < DIR_IN)
        for t in batch.devices:
            key = t.device.key
            d = self.devices.get(key)
            if d is None:
                d = self.devices[key] = _Device(t.device)
            if len(t.control):
                self._control(d, t.control)
            if out is not None and not d.abandoned:
                self._frame_out(d, t, recs, out)
            if len(t.urbs):
                self._urbs(d, t.urbs)

    def _control(self, d: _Device, urbs: np.ndarray) -> None:
        for u in urbs:
            item = decode_control(u)
            if isinstance(item, CsrAccess):
                d.csr.append(item)
                if (
                    item.write
                    and item.address == CSR_MULTI_BO_EP
                    and item.value
                    and item.complete_frame
                    and not d.multi_ep_from
                ):
                    # The mode switches at the write's completion frame, not for the whole
                    # batch it was read in: before, bulk-OUT URBs earlier in the same batch
                    # were framed multi-EP too, so results depended on the read chunking.
                    d.multi_ep_from = item.complete_frame
                if (
                    item.write
                    and item.address == CSR_DESCR_EP
                    and item.value is not None
                    and item.value & ~DESCR_EP_INTERRUPTS_ONLY & 0xFF
                    and item.complete_frame
                    and not d.descr_events_from
                ):
                    # events with tags 0-3 (DMA descriptors) may arrive on 0x82 from here on
                    d.descr_events_from = item.complete_frame
            elif isinstance(item, DfuStep):
                d.dfu.append(item)

    def _frame_out(self, d: _Device, t: DeviceTraffic, recs: np.ndarray, out: np.ndarray) -> None:
        """The device's bulk-OUT submits (``out``: of any device) to its framer."""
        r = take(recs, t.records(out))
        if not len(r):
            return
        f = d.framer
        if d.multi_ep_from and not f.multi_ep:
            before = r["frame"] < d.multi_ep_from
            self._feed_framer(d, r[before])
            f.multi_ep = True
            r = r[~before]
        self._feed_framer(d, r)

    def _feed_framer(self, d: _Device, r: np.ndarray) -> None:
        """Feed a device's bulk-OUT submits; give up on it exactly at its 64th unframed URB.

        While no header has been seen, URBs go in slices no longer than the unframed URBs
        still allowed, so giving up happens at the same URB whatever the batch size (it was
        checked once per batch: a header later in a big batch saved a device that small
        batches gave up on). Never for a device whose descriptor or the user names it a TPU.
        """
        f = d.framer
        forced = d.usb.ids in EDGETPU_IDS or self.only == d.usb.key
        while len(r) and not d.abandoned:
            probing = not forced and not f.multi_ep and f.valid_headers == 0
            part = r[: max(1, GIVE_UP_UNFRAMED - f.unframed)] if probing else r
            r = r[len(part) :]
            ph = part["hdr"]
            f.feed(part["frame"], ph["epnum"], ph["urb_len"], part["caplen"], part["head"])
            if probing and f.valid_headers == 0 and f.unframed >= GIVE_UP_UNFRAMED:
                d.abandoned = True

    def _urbs(self, d: _Device, u: Urbs) -> None:
        """The device's bulk-OUT URBs kept for framing's transfers; its events, output chunks
        and interrupts collected."""
        if d.abandoned:
            return
        bulk = u.xfer == XFER_BULK
        ok = u.has_completion & (u.status == 0)
        out = u.select(bulk & (u.ep < DIR_IN))
        if len(out):
            for name, col in zip(
                OUT_COLUMNS,
                (
                    out.submit("frame"),
                    out.submit("ts_ns"),
                    out.completion("frame"),
                    out.completion("ts_ns"),
                    out.status,
                    out.submit("urb_len"),
                ),
            ):
                d.out.setdefault(name, []).append(col)
        c = u.select(bulk & ok & (u.ep == EP_OUTPUT_IN))
        c = c.select(c.completion("urb_len") > 0)
        if len(c):
            rows = np.zeros(len(c), dtype=OUTPUT_CHUNK)
            rows["frame"], rows["t_ns"] = c.completion("frame"), c.completion("ts_ns")
            rows["length"], rows["asked"] = c.completion("urb_len"), c.submit("urb_len")
            rows["s_ts"] = c.submit("ts_ns")
            d.chunks.append(rows)
        ev = u.select(bulk & ok & (u.ep == EP_EVENT_IN))
        if len(ev):
            self._events(d, ev)
        intr = u.select((u.xfer == XFER_INTERRUPT) & ok & (u.ep == EP_INTERRUPT_IN))
        intr = intr.select(intr.completion("urb_len") > 0)  # an empty completion says nothing
        if len(intr):
            words = interrupt_words(intr.completion("head"), intr.completion("caplen"))
            d.interrupts += map(
                Interrupt,
                intr.completion("frame").tolist(),
                intr.completion("ts_ns").tolist(),
                words.tolist(),
            )

    def _events(self, d: _Device, ev: Urbs) -> None:
        """Successful completions on 0x82. A 16-byte one is an event even when its tag byte was
        not captured (snaplen below 77, usbmon without IN data): its tag is then assumed to be
        the completion tag, since nothing else arrives on 0x82 in single-endpoint mode with
        interrupt events only (``descr_ep`` 0xF0). After a switch to multi-endpoint mode, or a
        ``descr_ep`` write that enables DMA-descriptor events (tags 0-3), the tag is unknown."""
        frame = ev.completion("frame")
        sized = ev.completion("urb_len") >= EVENT_LEN
        seen = event_tag_captured(ev.completion("caplen"))
        ambiguous = np.zeros(len(ev), dtype=bool)
        for since in (d.multi_ep_from, d.descr_events_from):
            if since:
                ambiguous |= frame >= since
        assumed = sized & ~seen & ~ambiguous
        good = sized & (seen | assumed)
        if not good.all():
            msg = "event shorter than 16 bytes or not captured"
            d.errors[msg] = d.errors.get(msg, 0) + int(np.count_nonzero(~good))
        d.assumed_event_tags += int(np.count_nonzero(assumed))
        ev = ev.select(good)
        tag, address, length = event_columns(ev.completion("head"))
        rows = np.zeros(len(ev), dtype=EVENT)
        rows["frame"], rows["t_ns"] = ev.completion("frame"), ev.completion("ts_ns")
        rows["tag"] = np.where(seen[good], tag, COMPLETION_TAG)
        rows["address"], rows["length"] = address, length
        d.events.append(rows)

    # -- streaming windows ---------------------------------------------------------------------

    def candidates(self) -> list[tuple[int, int]]:
        """Devices whose traffic can be an Edge TPU's so far (the final choice is ``finish``'s)."""
        return [
            k
            for k, d in sorted(self.devices.items())
            if d.usb.address != 0
            and not d.abandoned
            and (d.framer.valid_headers or d.framer.multi_ep or d.events or d.chunks)
        ]

    def window(self, key: tuple[int, int]) -> EdgeTpuTrace:
        """The device's traffic not yet released, as a trace (``transfer_index`` and
        ``unsettled`` say which transfers these are and which may still grow)."""
        d = self.devices[key]
        return self._trace(d, self._identify(d) or "signature", None, None)

    def identify(self, key: tuple[int, int]) -> str | None:
        """How the device is an Edge TPU so far ("descriptor", "signature", "--device"), or
        None."""
        return self._identify(self.devices[key])

    def take_controls(
        self, key: tuple[int, int]
    ) -> tuple[list[Interrupt], list[CsrAccess], list[DfuStep], list[StandardRequest]]:
        """The interrupts and control accesses decoded since the last call (in close order),
        the USB layer's standard requests with them."""
        d = self.devices[key]
        ni, nc, nd, ns = d.taken
        standard = d.usb.standard
        d.taken = (len(d.interrupts), len(d.csr), len(d.dfu), len(standard))
        return d.interrupts[ni:], d.csr[nc:], d.dfu[nd:], standard[ns:]

    def release(
        self, key: tuple[int, int], transfers: np.ndarray, events: np.ndarray, chunks: np.ndarray
    ) -> None:
        """Let go of transfers (global indices), and of events and output chunks (boolean masks
        over the last ``window``'s tables): the analysis is done with them."""
        d = self.devices[key]
        d.state.release(d.framer, transfers)
        if d.events:
            d.events = [d.events[0][~events]]
        if d.chunks:
            d.chunks = [d.chunks[0][~chunks]]

    # -- end of capture -------------------------------------------------------------------------

    def finish(
        self, info: CaptureInfo, usb: UsbCapture, error: InputError | None = None
    ) -> DecodedCapture:
        """The Edge TPUs of the capture, once the URBs still open at its end were fed, and
        ``usb`` is what the USB layer found in it."""
        metadata = metadata_from_blocks(info.custom_blocks)
        traces: list[EdgeTpuTrace] = []
        others: list[tuple[int, int, tuple[int, int] | None]] = []
        for d in self.devices.values():
            # frame order: the order a batch's URBs closed in is not capture order
            for steps in (d.csr, d.dfu):
                steps.sort(key=lambda x: x.frame)
        found = {key: how for key, d in self.devices.items() if (how := self._identify(d))}
        loaded = downloads([(d.usb, d.dfu) for d in self.devices.values()], found)
        tied = {boot for tpu, boot in loaded.items() if boot != tpu}
        for (bus, dev), d in sorted(self.devices.items()):
            if (bus, dev) in tied:
                continue  # reported as the firmware download of the Edge TPU that followed
            how = found.get((bus, dev))
            if how is None:
                if dev != 0:
                    others.append((bus, dev, d.usb.ids))
                continue
            boot = loaded.get((bus, dev))
            fw = None if boot is None else self.devices[boot]
            firmware = None if fw is None else firmware_download(fw.usb, fw.dfu)
            traces.append(self._trace(d, how, firmware, metadata))
        if self.only and not traces:
            bus, dev = self.only
            raise InputError(info.path, f"no traffic of device {bus}.{dev} in this capture")
        return DecodedCapture(
            info.path,
            info,
            traces,
            others,
            usb.first_ts_ns or 0,
            usb.last_ts_ns or 0,
            usb.orphan_completions,
            usb.superseded_submits,
            metadata,
            error,
            usb.dropped_open,
        )

    def _identify(self, d: _Device) -> str | None:
        u = d.usb
        if u.address == 0:
            return None  # the default address: a device being enumerated, not yet addressed
        if self.only is not None:
            return "--device" if u.key == self.only else None
        if u.ids in EDGETPU_IDS:
            return "descriptor"
        if u.ids is None and not d.abandoned and d.framer.valid_headers:
            f = d.framer
            if f.valid_headers >= f.unframed:
                return "signature"
        return None

    def _trace(
        self,
        d: _Device,
        how: str,
        firmware: FirmwareDownload | None,
        meta: CaptureMetadata | None,
    ) -> EdgeTpuTrace:
        d.state.update(d.framer, d.out)
        held = d.state.table(d.framer)
        # one piece each from now on: ``release`` masks them
        chunks = concat_rows(d.chunks) if d.chunks else np.zeros(0, dtype=OUTPUT_CHUNK)
        d.chunks = [_by_frame(chunks)]
        events = concat_rows(d.events) if d.events else np.zeros(0, dtype=EVENT)
        d.events = [_by_frame(events)]
        chunks, events = d.chunks[0], d.events[0]
        speed, source = _link_speed(d, meta)
        u = d.usb
        ids = u.ids
        return EdgeTpuTrace(
            bus=u.bus,
            address=u.address,
            vendor=ids[0] if ids else None,
            product=ids[1] if ids else None,
            identified_by=how,
            link_speed=speed,
            link_speed_source=source,
            multi_ep=d.framer.multi_ep or bool(d.multi_ep_from),
            table=held.table,
            transfer_problems=held.problems,
            out_urbs=held.rows,
            event_table=events,
            interrupts=d.interrupts,
            output_chunks=chunks,
            csr=d.csr,
            dfu=d.dfu,
            standard=u.standard,
            unframed_urbs=d.framer.unframed,
            cancelled=u.stats.cancelled,
            orphan_completions=u.stats.orphan_completions,
            never_completed=u.stats.never_completed,
            assumed_event_tags=d.assumed_event_tags,
            # sorted: the dicts fill in pairing order, which depends on the read chunking
            errors=[f"{msg} ({n}x)" for msg, n in sorted({**u.stats.errors, **d.errors}.items())],
            first_frame=u.first_frame,
            last_frame=u.last_frame,
            transfer_index=held.gidx,
            unsettled=held.unsettled,
            firmware=firmware,
        )


def _link_speed(d: _Device, meta: CaptureMetadata | None) -> tuple[str | None, str | None]:
    # strictly the device the runner found: a boot loader's speed is not its Edge TPU's
    if meta and meta.link_speed and meta.names_device(d.usb.bus, d.usb.address):
        return meta.link_speed, "metadata"
    descriptor = d.usb.descriptor
    if descriptor and descriptor.speed_hint:
        return descriptor.speed_hint, "descriptor"
    for c in d.csr:
        if c.write and c.address == CSR_OUTFEED_CHUNK_LENGTH and c.value is not None:
            if c.value == OUTFEED_CHUNK_SUPERSPEED:
                return "super", "outfeed_chunk_length"
            if c.value == OUTFEED_CHUNK_HIGHSPEED:
                return "high", "outfeed_chunk_length"
    return None, None


def _by_frame(rows: np.ndarray) -> np.ndarray:
    f = rows["frame"]
    if (f[1:] >= f[:-1]).all():
        return rows  # the usual case: URBs come back in capture order
    return take(rows, np.argsort(f, kind="stable"))
