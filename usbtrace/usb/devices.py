"""The devices stage: whose URBs these are, and what USB itself says of each device.

In: a ``Paired`` batch (its records and their URBs, paired in the reader thread by
``UrbStage``). Out: a ``DeviceBatch``: per device, its USB facts (``UsbDevice``: bus, address,
device and configuration descriptors, first and last frame, standard requests, URB statistics)
and its share of the batch (its URBs, its other control transfers, its records), which the Edge
TPU decoder consumes. At the end, ``UsbCapture`` sums the capture up.

``UsbDevices`` runs in the main thread, batch after batch, before the decoder: the decoder reads
these facts (a descriptor naming an Edge TPU) while it frames the same batch, so they must be
those of the records read so far, not of what the reader thread has already read ahead.

Nothing here knows the Edge TPU: what a device's traffic means is the decoder's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from usbtrace.formats.records import RecordBatch
from usbtrace.formats.usbmon import (
    STATUS_CANCELLED,
    STATUS_CONNRESET,
    XFER_CONTROL,
)
from usbtrace.usb.descriptors import (
    DESCRIPTOR_TYPES,
    DT_CONFIGURATION,
    DT_DEVICE,
    GET_DESCRIPTOR,
    SET_CONFIGURATION,
    STANDARD_REQUESTS,
    ConfigDescriptor,
    DeviceDescriptor,
    Setup,
)
from usbtrace.usb.pairing import URB, UrbPairer, Urbs

DeviceKey = tuple[int, int]  # (bus, address)
# usbmon headers -> which of these open URBs are stamped by their submit time (what they
# become starts there); the caller knows, the USB layer does not
StampedAtSubmit = Callable[[np.ndarray], np.ndarray]


# -- the URB stage (reader thread) ---------------------------------------------------------------


@dataclass
class Paired:
    """A record batch and its URBs: the input of the devices stage."""

    batch: RecordBatch
    present: list[DeviceKey]  # (bus, device)s with records in the batch, sorted
    urbs: Urbs
    # submit time of the oldest URB still open after the batch that ``stamped`` selects
    oldest_open_ns: int | None = None


def present_devices(records: np.ndarray) -> list[DeviceKey]:
    """The (bus, device)s that have records in a batch, sorted."""
    if not len(records):
        return []
    h = records["hdr"]
    key = h["busnum"].astype(np.int64) << 8 | h["devnum"]
    lo, hi = int(key.min()), int(key.max())
    keys = [lo] if lo == hi else np.unique(key).tolist()
    return [(k >> 8, k & 0xFF) for k in keys]


class UrbStage:
    """Submit/completion pairing, batch after batch. It touches no device, so the pipeline runs
    it in the reader thread while the main thread decodes the previous batch."""

    def __init__(self, stamped: StampedAtSubmit) -> None:
        self.pairer = UrbPairer()
        self.stamped = stamped

    def pair(self, batch: RecordBatch) -> Paired:
        urbs = self.pairer.feed(batch.records)
        # read here: the pairer runs ahead of the decoder
        carry = self.pairer.carry
        ts = carry["ts_ns"][self.stamped(carry["hdr"])]
        oldest = int(ts.min()) if len(ts) else None
        return Paired(batch, present_devices(batch.records), urbs, oldest)

    def close(self) -> Urbs:
        """End of the capture: the URBs still open, as submit-only URBs."""
        return self.pairer.finish()


# -- what USB says of a device -------------------------------------------------------------------


@dataclass(slots=True)
class StandardRequest:
    frame: int
    t_ns: int
    name: str
    detail: str
    status: int

    @property
    def text(self) -> str:
        return f"{self.name} {self.detail}".strip()


def standard_request(urb: np.void, setup: Setup) -> StandardRequest:
    """One paired control URB (a row of ``usbtrace.usb.pairing.URB``) of a standard request."""
    name = STANDARD_REQUESTS.get(setup.request, f"request_{setup.request}")
    detail = ""
    if setup.request == GET_DESCRIPTOR:
        dtype = setup.value >> 8
        detail = f"{DESCRIPTOR_TYPES.get(dtype, dtype)} ({setup.length} B)"
    elif setup.request == SET_CONFIGURATION:
        detail = str(setup.value)
    frame = int(urb["s_frame"]) or int(urb["c_frame"])
    t_ns = int(urb["s_ts"]) or int(urb["c_ts"])
    return StandardRequest(frame, t_ns, name, detail, int(urb["status"]))


@dataclass
class UrbStats:
    """How a device's URBs ended, as far as USB tells."""

    cancelled: int = 0  # completed with -2 / -104 (killed or unlinked: timeouts, close)
    orphan_completions: int = 0  # completions whose submit is not in the capture
    never_completed: int = 0  # submits whose completion is not in the capture
    # other non-zero statuses of bulk and interrupt URBs, by message (control ones are the
    # class's or vendor's business)
    errors: dict[str, int] = field(default_factory=dict)

    def count(self, u: Urbs) -> None:
        self.orphan_completions += int(np.count_nonzero(~u.has_submit))
        self.never_completed += int(np.count_nonzero(~u.has_completion))
        bad = u.has_completion & (u.status != 0) & (u.xfer != XFER_CONTROL)
        if bad.any():
            st = u.status[bad]
            cancel = (st == STATUS_CANCELLED) | (st == STATUS_CONNRESET)
            self.cancelled += int(np.count_nonzero(cancel))
            # a failing device can fail every URB: count them per (endpoint, status) in numpy,
            # then word the few distinct pairs, new ones in the order they first failed
            pairs = np.stack([u.ep[bad][~cancel].astype(np.int64), st[~cancel]], axis=1)
            if len(pairs):
                kinds, first, n = np.unique(pairs, axis=0, return_index=True, return_counts=True)
                order = np.argsort(first)
                for (ep, s), k in zip(kinds[order].tolist(), n[order].tolist()):
                    msg = f"endpoint {ep:#04x} completed with status {s}"
                    self.errors[msg] = self.errors.get(msg, 0) + k


@dataclass
class UsbDevice:
    """One (bus, address) of the capture. A device that re-enumerates at another address is
    another ``UsbDevice``; one that comes back at the same address keeps its latest
    descriptors."""

    bus: int
    address: int
    descriptor: DeviceDescriptor | None = None
    config: ConfigDescriptor | None = None
    standard: list[StandardRequest] = field(default_factory=list)  # in close order until finish
    first_frame: int = 0  # of its first and last record, 0 until it has one
    last_frame: int = 0
    stats: UrbStats = field(default_factory=UrbStats)

    @property
    def key(self) -> DeviceKey:
        return (self.bus, self.address)

    @property
    def ids(self) -> tuple[int, int] | None:
        """(vendor, product), once its device descriptor was read."""
        d = self.descriptor
        return (d.vendor, d.product) if d else None

    def control(self, urb: np.void, setup: Setup, payloads: dict[int, bytes]) -> None:
        """A standard request of this device; a GET_DESCRIPTOR answer updates its descriptors."""
        self.standard.append(standard_request(urb, setup))
        data = payloads.get(int(urb["c_frame"]))
        if setup.request == GET_DESCRIPTOR and data and int(urb["status"]) == 0:
            if setup.value >> 8 == DT_DEVICE:
                self.descriptor = DeviceDescriptor.parse(data) or self.descriptor
            elif setup.value >> 8 == DT_CONFIGURATION:
                self.config = ConfigDescriptor.parse(data) or self.config


# -- the stage's output --------------------------------------------------------------------------


@dataclass(slots=True)
class DeviceTraffic:
    """One device's share of a batch."""

    device: UsbDevice
    urbs: Urbs  # its URBs, in the order they closed
    control: np.ndarray  # its control URBs other than standard requests (``URB`` rows)
    mine: np.ndarray | None  # which of the batch's records are its own; None: all of them

    def records(self, which: np.ndarray) -> np.ndarray:
        """Indices of the batch's records selected by ``which`` that are this device's."""
        return np.flatnonzero(which if self.mine is None else which & self.mine)


@dataclass(slots=True)
class DeviceBatch:
    records: np.ndarray  # the batch's records (RECORD), in frame order
    # the devices with records in the batch (sorted), then those with only URBs closed in it
    devices: list[DeviceTraffic]


@dataclass
class UsbCapture:
    """What the USB layer found in the whole capture."""

    devices: list[UsbDevice]  # in the order they appeared (their first frame)
    first_ts_ns: int | None  # of the first record; None: no record
    last_ts_ns: int | None  # the latest record's time
    orphan_completions: int
    superseded_submits: int
    dropped_open: int  # open submits the pairer gave up on (more than MAX_OPEN at once)


_NO_URBS = np.zeros(0, dtype=np.int64)
_NO_CONTROL = np.zeros(0, dtype=URB)


class UsbDevices:
    """The devices stage, fed ``Paired`` batches in capture order (see the module's note)."""

    def __init__(self) -> None:
        # by the batch they first had records in, then by (bus, address)
        self.devices: dict[DeviceKey, UsbDevice] = {}
        # None until a record is seen: 0 (or less) is a timestamp a capture can hold
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.oldest_open_ns: int | None = None  # the latest batch's ``Paired.oldest_open_ns``

    def feed(self, paired: Paired) -> DeviceBatch:
        recs, present, urbs = paired.batch.records, paired.present, paired.urbs
        self.oldest_open_ns = paired.oldest_open_ns
        if not len(recs):
            return DeviceBatch(recs, [])
        ts = recs["ts_ns"]
        if self.first_ts is None:
            self.first_ts = int(ts[0])
        last = int(ts.max())
        self.last_ts = last if self.last_ts is None else max(self.last_ts, last)
        devkey = None
        if len(present) > 1:
            h = recs["hdr"]
            devkey = h["busnum"].astype(np.int64) << 8 | h["devnum"]
        mine: dict[DeviceKey, np.ndarray | None] = {}
        for bus, dev in present:
            d = self._device(bus, dev)
            m = mine[bus, dev] = None if devkey is None else devkey == bus << 8 | dev
            frames = recs["frame"] if m is None else recs["frame"][m]
            if not d.first_frame:
                d.first_frame = int(frames[0])
            d.last_frame = int(frames[-1])
        out = self._split(urbs, present, mine, len(recs))
        for t in out:
            ctrl = np.flatnonzero(t.urbs.xfer == XFER_CONTROL)
            if len(ctrl):
                t.control = self._control(t.device, t.urbs.select(ctrl).rows(), paired.batch)
        return DeviceBatch(recs, out)

    def close(self, urbs: Urbs) -> DeviceBatch:
        """The URBs still open at the end (``UrbStage.close``): counted, not decoded (a control
        transfer without its answer is left out, as it always was)."""
        return DeviceBatch(urbs.records[:0], self._split(urbs, [], {}, 0))

    def finish(self, pairer: UrbPairer) -> UsbCapture:
        for d in self.devices.values():
            # frame order: the order a batch's URBs closed in is not capture order
            d.standard.sort(key=lambda x: x.frame)
        return UsbCapture(
            sorted(self.devices.values(), key=lambda d: d.first_frame),
            self.first_ts,
            self.last_ts,
            pairer.orphan_completions,
            pairer.superseded_submits,
            pairer.dropped_open,
        )

    def _device(self, bus: int, dev: int) -> UsbDevice:
        d = self.devices.get((bus, dev))
        if d is None:
            d = self.devices[(bus, dev)] = UsbDevice(bus, dev)
        return d

    def _split(
        self,
        urbs: Urbs,
        present: list[DeviceKey],
        mine: dict[DeviceKey, np.ndarray | None],
        nrecs: int,
    ) -> list[DeviceTraffic]:
        """Each device's URBs (counted in its statistics), present devices first."""
        keys: list[int] = []
        devkey = None
        if len(urbs):
            devkey = urbs.bus.astype(np.int64) << 8 | urbs.dev
            lo, hi = int(devkey.min()), int(devkey.max())
            keys = [lo] if lo == hi else np.unique(devkey).tolist()
        order = [b << 8 | d for b, d in present]
        order += [k for k in keys if k not in order]
        out = []
        for key in order:
            d = self._device(key >> 8, key & 0xFF)
            if key not in keys:
                u = urbs.select(_NO_URBS)
            elif len(keys) == 1:
                u = urbs
            else:
                assert devkey is not None
                u = urbs.select(devkey == key)
            if len(u):
                d.stats.count(u)
            # none of the records for a device whose URBs closed in a batch without its records
            # (a submit given up on, the end of the capture)
            m = mine[d.key] if d.key in mine else np.zeros(nrecs, dtype=bool)
            out.append(DeviceTraffic(d, u, _NO_CONTROL, m))
        return out

    @staticmethod
    def _control(d: UsbDevice, rows: np.ndarray, batch: RecordBatch) -> np.ndarray:
        """Standard requests taken; the device's other control URBs handed on."""
        rest = np.ones(len(rows), dtype=bool)
        for i, u in enumerate(rows):
            setup = Setup.parse(bytes(u["setup"].tolist()))
            if setup.kind == "standard":
                d.control(u, setup, batch.control_payloads)
                rest[i] = False
        return rows if rest.all() else rows[rest]
