"""Decode URB batches into Edge TPU traces, one per device (the pipeline feeds it).

Per batch: control transfers decoded, the bulk-OUT submit stream framed, IN completions
collected per device, keeping only compact arrays. The per-transfer view is assembled when the
pipeline asks for a window (``Decoder.window``); what the analysis has finished with is
released (``Decoder.release``), so memory follows the requests in flight (``assemble.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.assemble import OUT_COLUMNS, OutState
from usbtrace.edgetpu.constants import (
    APP_IDS,
    COMPLETION_TAG,
    CSR_DESCR_EP,
    CSR_MULTI_BO_EP,
    CSR_OUTFEED_CHUNK_LENGTH,
    DESCR_EP_INTERRUPTS_ONLY,
    DFU_IDS,
    EDGETPU_IDS,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    OUTFEED_CHUNK_HIGHSPEED,
    OUTFEED_CHUNK_SUPERSPEED,
    DfuRequest,
)
from usbtrace.edgetpu.control import (
    CsrAccess,
    DfuStep,
    StandardRequest,
    decode_control,
    is_firmware_download,
)
from usbtrace.edgetpu.framing import OutFramer
from usbtrace.edgetpu.trace import (
    EVENT,
    OUTPUT_CHUNK,
    EdgeTpuTrace,
    FirmwareDownload,
    Interrupt,
)
from usbtrace.edgetpu.wire import event_columns, event_tag_captured
from usbtrace.errors import InputError
from usbtrace.formats.capture import CaptureInfo
from usbtrace.formats.metadata import CaptureMetadata, metadata_from_blocks
from usbtrace.formats.records import RecordBatch, concat_rows, take
from usbtrace.formats.usbmon import (
    STATUS_CANCELLED,
    STATUS_CONNRESET,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
)
from usbtrace.usb import pairing
from usbtrace.usb.descriptors import (
    DIR_IN,
    DT_CONFIGURATION,
    DT_DEVICE,
    GET_DESCRIPTOR,
    ConfigDescriptor,
    DeviceDescriptor,
    Setup,
)
from usbtrace.usb.pairing import UrbPairer, Urbs

GIVE_UP_UNFRAMED = 64  # a bulk device with this many non-header URBs and no header is not a TPU
# The driver keeps a few reads posted on 0x81-0x83 at all times, so some URBs of a device are
# always left open when a capture ends; more than this many never completed is a flood.
NEVER_COMPLETED_NORMAL = 64


@dataclass
class _Device:
    bus: int
    dev: int
    descriptor: DeviceDescriptor | None = None
    config: ConfigDescriptor | None = None
    framer: OutFramer = field(default_factory=OutFramer)
    state: OutState = field(default_factory=OutState)  # bulk-OUT transfers not yet released
    # bulk-OUT URB columns (OUT_COLUMNS) paired since the last window, one piece per batch
    out: dict[str, list[np.ndarray]] = field(default_factory=dict)
    chunks: list[np.ndarray] = field(default_factory=list)  # OUTPUT_CHUNK not yet released
    events: list[np.ndarray] = field(default_factory=list)  # EVENT not yet released
    interrupts: list[Interrupt] = field(default_factory=list)
    csr: list[CsrAccess] = field(default_factory=list)
    dfu: list[DfuStep] = field(default_factory=list)
    standard: list[StandardRequest] = field(default_factory=list)
    cancelled: int = 0
    orphan_completions: int = 0
    never_completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_frame: int = 0
    last_frame: int = 0
    abandoned: bool = False  # bulk traffic that is clearly not the Edge TPU protocol
    multi_ep_from: int = 0  # completion frame of the multi_bo_ep := 1 write, 0 if none
    descr_events_from: int = 0  # completion frame of a descr_ep write enabling tags 0-3
    assumed_event_tags: int = 0  # events whose tag byte was not captured (tag 4 assumed)
    taken: tuple[int, int, int, int] = (0, 0, 0, 0)  # control items handed on (take_controls)

    @property
    def ids(self) -> tuple[int, int] | None:
        d = self.descriptor
        return (d.vendor, d.product) if d else None


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


@dataclass
class Paired:
    """A record batch and its URBs: what the USB layer hands to the Edge TPU decoder."""

    batch: RecordBatch
    present: list[tuple[int, int]]  # (bus, device)s with records in the batch, sorted
    urbs: Urbs
    # submit time of the oldest control or bulk-OUT URB still open after the batch
    oldest_open_ns: int | None = None


def present_devices(records: np.ndarray) -> list[tuple[int, int]]:
    """The (bus, device)s that have records in a batch, sorted."""
    if not len(records):
        return []
    h = records["hdr"]
    key = h["busnum"].astype(np.int64) << 8 | h["devnum"]
    lo, hi = int(key.min()), int(key.max())
    keys = [lo] if lo == hi else np.unique(key).tolist()
    return [(k >> 8, k & 0xFF) for k in keys]


class Decoder:
    """The Edge TPU protocol of every device on the bus, fed URB batch after URB batch.

    ``only`` is the (bus, address) the user named, to decode whatever its traffic looks like.
    Streaming: ``window`` gives a device's traffic not yet released as a trace, ``release``
    lets go of what the analysis has finished with; ``finish`` gives what is left.
    """

    def __init__(self, only: tuple[int, int] | None = None) -> None:
        self.only = only
        self.pairer = UrbPairer()
        self.devices: dict[tuple[int, int], _Device] = {}
        # None until a record is seen: 0 (or less) is a timestamp a capture can hold
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self._closed = False
        self._oldest_open: int | None = None

    def dev(self, bus: int, dev: int) -> _Device:
        d = self.devices.get((bus, dev))
        if d is None:
            d = self.devices[(bus, dev)] = _Device(bus, dev)
        return d

    # -- per batch ------------------------------------------------------------------------------

    def pair(self, batch: RecordBatch) -> Paired:
        """The USB-level half of a batch: submit/completion pairing.

        It touches only the pairer, never the devices, so the pipeline runs it in the reader
        thread while the main thread frames the previous batch.
        """
        urbs = self.pairer.feed(batch.records)
        # read here: the pairer runs ahead of the decoder. Only the URBs whose submit time
        # stamps what they become count: control accesses and bulk-OUT transfers (reads are
        # stamped at their completion, and the driver keeps some posted for ever)
        h = self.pairer.carry["hdr"]
        stamped = (h["xfer"] == XFER_CONTROL) | ((h["xfer"] == XFER_BULK) & (h["epnum"] < DIR_IN))
        ts = self.pairer.carry["ts_ns"][stamped]
        oldest = int(ts.min()) if len(ts) else None
        return Paired(batch, present_devices(batch.records), urbs, oldest)

    def feed(self, batch: RecordBatch) -> None:
        self.feed_paired(self.pair(batch))

    def feed_paired(self, paired: Paired) -> None:
        """The Edge TPU half of a batch, in batch order."""
        recs, present, urbs = paired.batch.records, paired.present, paired.urbs
        self._oldest_open = paired.oldest_open_ns
        if not len(recs):
            return
        ts = recs["ts_ns"]
        if self.first_ts is None:
            self.first_ts = int(ts[0])
        last = int(ts.max())
        self.last_ts = last if self.last_ts is None else max(self.last_ts, last)
        devkey = None
        if len(present) > 1:
            h = recs["hdr"]
            devkey = h["busnum"].astype(np.int64) << 8 | h["devnum"]
        for bus, dev in present:
            d = self.dev(bus, dev)
            frames = recs["frame"] if devkey is None else recs["frame"][devkey == bus << 8 | dev]
            if not d.first_frame:
                d.first_frame = int(frames[0])
            d.last_frame = int(frames[-1])
        ctrl = np.flatnonzero(urbs.xfer == XFER_CONTROL)
        if len(ctrl):
            self._control(urbs.select(ctrl).rows(), paired.batch.control_payloads)
        self._frame_out(recs, present, devkey)
        self._urbs(urbs)

    def _control(self, urbs: np.ndarray, payloads: dict[int, bytes]) -> None:
        for u in urbs:
            d = self.dev(int(u["bus"]), int(u["dev"]))
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
            elif isinstance(item, StandardRequest):
                d.standard.append(item)
                setup = Setup.parse(bytes(u["setup"].tolist()))
                data = payloads.get(int(u["c_frame"]))
                if setup.request == GET_DESCRIPTOR and data and int(u["status"]) == 0:
                    if setup.value >> 8 == DT_DEVICE:
                        d.descriptor = DeviceDescriptor.parse(data) or d.descriptor
                    elif setup.value >> 8 == DT_CONFIGURATION:
                        d.config = ConfigDescriptor.parse(data) or d.config

    def _frame_out(
        self, recs: np.ndarray, present: list[tuple[int, int]], devkey: np.ndarray | None
    ) -> None:
        h = recs["hdr"]
        sel = (h["type"] == URB_SUBMIT) & (h["xfer"] == XFER_BULK) & (h["epnum"] < DIR_IN)
        for bus, dev in present:
            d = self.dev(bus, dev)
            if d.abandoned:
                continue
            m = sel if devkey is None else sel & (devkey == bus << 8 | dev)
            r = take(recs, np.flatnonzero(m))
            if not len(r):
                continue
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
        forced = d.ids in EDGETPU_IDS or self.only == (d.bus, d.dev)
        while len(r) and not d.abandoned:
            probing = not forced and not f.multi_ep and f.valid_headers == 0
            part = r[: max(1, GIVE_UP_UNFRAMED - f.unframed)] if probing else r
            r = r[len(part) :]
            ph = part["hdr"]
            f.feed(part["frame"], ph["epnum"], ph["urb_len"], part["caplen"], part["head"])
            if probing and f.valid_headers == 0 and f.unframed >= GIVE_UP_UNFRAMED:
                d.abandoned = True

    def _urbs(self, urbs: Urbs) -> None:
        if not len(urbs):
            return
        devkey = urbs.bus.astype(np.int64) << 8 | urbs.dev
        lo, hi = int(devkey.min()), int(devkey.max())
        keys = [lo] if lo == hi else np.unique(devkey).tolist()
        for key in keys:
            d = self.dev(key >> 8, key & 0xFF)
            u = urbs if len(keys) == 1 else urbs.select(devkey == key)
            d.orphan_completions += int(np.count_nonzero(~u.has_submit))
            d.never_completed += int(np.count_nonzero(~u.has_completion))
            bulk = u.xfer == XFER_BULK
            completed = u.has_completion
            ok = completed & (u.status == 0)
            bad = completed & (u.status != 0) & (u.xfer != XFER_CONTROL)
            if bad.any():
                st = u.status[bad]
                cancel = (st == STATUS_CANCELLED) | (st == STATUS_CONNRESET)
                d.cancelled += int(np.count_nonzero(cancel))
                for ep, s in zip(u.ep[bad][~cancel].tolist(), st[~cancel].tolist()):
                    msg = f"endpoint {ep:#04x} completed with status {s}"
                    d.errors[msg] = d.errors.get(msg, 0) + 1
            if d.abandoned:
                continue
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
            for i in intr.rows() if len(intr) else ():
                if int(i["c_len"]) == 0:
                    continue
                n = min(4, int(i["c_cap"]))
                value = int.from_bytes(bytes(i["c_head"][:n].tolist()), "little")
                d.interrupts.append(Interrupt(int(i["c_frame"]), int(i["c_ts"]), value))

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
            if d.dev != 0
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

    def oldest_open_ns(self) -> int | None:
        """The submit time of the oldest control or bulk-OUT URB not yet completed: what it may
        still become (a transfer, a control access) is stamped no earlier."""
        return self._oldest_open

    def take_controls(
        self, key: tuple[int, int]
    ) -> tuple[list[Interrupt], list[CsrAccess], list[DfuStep], list[StandardRequest]]:
        """The interrupts and control accesses decoded since the last call (in close order)."""
        d = self.devices[key]
        ni, nc, nd, ns = d.taken
        d.taken = (len(d.interrupts), len(d.csr), len(d.dfu), len(d.standard))
        return d.interrupts[ni:], d.csr[nc:], d.dfu[nd:], d.standard[ns:]

    def close_pending(self) -> None:
        """End of the capture: the URBs still open become submit-only URBs."""
        if not self._closed:
            self._closed = True
            self._urbs(self.pairer.finish())

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

    def finish(self, info: CaptureInfo, error: InputError | None = None) -> DecodedCapture:
        self.close_pending()
        metadata = metadata_from_blocks(info.custom_blocks)
        traces: list[EdgeTpuTrace] = []
        others: list[tuple[int, int, tuple[int, int] | None]] = []
        for d in self.devices.values():
            # frame order: the order a batch's URBs closed in is not capture order
            for steps in (d.csr, d.dfu, d.standard):
                steps.sort(key=lambda x: x.frame)
        found = {key: how for key, d in self.devices.items() if (how := self._identify(d))}
        downloads = self._downloads(found)
        tied = {id(x) for key, x in downloads.items() if self.devices[key] is not x}
        for (bus, dev), d in sorted(self.devices.items()):
            if id(d) in tied:
                continue  # reported as the firmware download of the Edge TPU that followed
            how = found.get((bus, dev))
            if how is None:
                if dev != 0:
                    others.append((bus, dev, d.ids))
                continue
            traces.append(self._trace(d, how, downloads.get((bus, dev)), metadata))
        if self.only and not traces:
            bus, dev = self.only
            raise InputError(info.path, f"no traffic of device {bus}.{dev} in this capture")
        return DecodedCapture(
            info.path,
            info,
            traces,
            others,
            self.first_ts or 0,
            self.last_ts or 0,
            self.pairer.orphan_completions,
            self.pairer.superseded_submits,
            metadata,
            error,
            self.pairer.dropped_open,
        )

    def _downloads(self, found: dict[tuple[int, int], str]) -> dict[tuple[int, int], _Device]:
        """Each firmware download, by the Edge TPU it was for.

        A download is found by its DFU class requests alone (``is_firmware_download``), or by
        the boot loader's descriptor. The boot loader then re-enumerates as the app-mode device:
        the download belongs to the Edge TPU that appears next on the same bus, or to the same
        device when it came back at the same address. A boot loader nothing followed is reported
        as itself when its descriptor names it, else it is just another device.
        """
        out: dict[tuple[int, int], _Device] = {}
        # oldest first: a later download of the same Edge TPU replaces an earlier one
        for x in sorted(self.devices.values(), key=lambda d: d.last_frame):
            key = (x.bus, x.dev)
            if x.ids == DFU_IDS:
                if not x.dfu:
                    continue
            elif x.ids not in (None, APP_IDS) or not is_firmware_download(x.dfu):
                continue
            elif key in found:
                out[key] = x  # the download ran at the address the Edge TPU came back at
                continue
            later = [
                (d.first_frame, k)
                for k, d in self.devices.items()
                if k in found and d.bus == x.bus and d.ids != DFU_IDS
                and d.first_frame > x.last_frame
            ]  # fmt: skip
            if later:
                out[min(later)[1]] = x
            elif key in found:
                out[key] = x
        return out

    def _identify(self, d: _Device) -> str | None:
        if d.dev == 0:
            return None  # the default address: a device being enumerated, not yet addressed
        if self.only is not None:
            return "--device" if (d.bus, d.dev) == self.only else None
        if d.ids in EDGETPU_IDS:
            return "descriptor"
        if d.ids is None and not d.abandoned and d.framer.valid_headers:
            f = d.framer
            if f.valid_headers >= f.unframed:
                return "signature"
        return None

    def _trace(
        self, d: _Device, how: str, download: _Device | None, meta: CaptureMetadata | None
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
        trace = EdgeTpuTrace(
            bus=d.bus,
            address=d.dev,
            vendor=d.ids[0] if d.ids else None,
            product=d.ids[1] if d.ids else None,
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
            standard=d.standard,
            unframed_urbs=d.framer.unframed,
            cancelled=d.cancelled,
            orphan_completions=d.orphan_completions,
            never_completed=d.never_completed,
            assumed_event_tags=d.assumed_event_tags,
            # sorted: the dict fills in pairing order, which depends on the read chunking
            errors=[f"{msg} ({n}x)" for msg, n in sorted(d.errors.items())],
            first_frame=d.first_frame,
            last_frame=d.last_frame,
            transfer_index=held.gidx,
            unsettled=held.unsettled,
        )
        if download is not None:
            trace.firmware = _firmware(download)
        return trace


def _link_speed(d: _Device, meta: CaptureMetadata | None) -> tuple[str | None, str | None]:
    if meta and meta.link_speed and (meta.device in (None, d.dev)):
        return meta.link_speed, "metadata"
    if d.descriptor and d.descriptor.speed_hint:
        return d.descriptor.speed_hint, "descriptor"
    for c in d.csr:
        if c.write and c.address == CSR_OUTFEED_CHUNK_LENGTH and c.value is not None:
            if c.value == OUTFEED_CHUNK_SUPERSPEED:
                return "super", "outfeed_chunk_length"
            if c.value == OUTFEED_CHUNK_HIGHSPEED:
                return "high", "outfeed_chunk_length"
    return None, None


def _firmware(d: _Device) -> FirmwareDownload:
    down = [s for s in d.dfu if s.request == DfuRequest.DNLOAD.name]
    up = [s for s in d.dfu if s.request == DfuRequest.UPLOAD.name]
    return FirmwareDownload(
        bus=d.bus,
        address=d.dev,
        blocks=sum(1 for s in down if s.length > 0),
        nbytes=sum(s.length for s in down),
        uploaded=sum(s.length for s in up),
        t_start_ns=d.dfu[0].t_ns,
        t_end_ns=d.dfu[-1].t_ns,
        status_ok=all(s.status == 0 for s in d.dfu),
        steps=d.dfu,
    )


def _by_frame(rows: np.ndarray) -> np.ndarray:
    f = rows["frame"]
    if (f[1:] >= f[:-1]).all():
        return rows  # the usual case: URBs come back in capture order
    return take(rows, np.argsort(f, kind="stable"))
