"""usbmon records of a synthetic session, their URB ids, and writing them as pcapng blocks.

Records are built with a placeholder URB serial; real-looking URB ids are handed out at the end,
in time order, from a last-in-first-out pool of kernel-address-like values. That way an id is
reused as soon as its URB completed (as the kernel's allocator does) and never while it is in
flight, whatever order the simulator built the records in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usbtrace.formats.pcapng_writer import PcapngWriter
from usbtrace.formats.usbmon import (
    LINKTYPE_USB_LINUX_MMAPPED,
    URB_COMPLETE,
    URB_SUBMIT,
    header_dtype,
)

USBMON_HEADER_LEN = 64
URB_DIR_IN = 0x200  # kernel transfer_flags bit usbmon shows on every IN URB
# transfer_flags the real captures show on completions of larger bulk-OUT URBs (DMA mapping)
URB_OUT_MAPPED = 0x400000
URB_OUT_MAPPED_ABOVE = 8192

FLAG_SETUP_ABSENT = ord("-")
FLAG_DATA_IN_SUBMIT = ord("<")
FLAG_DATA_OUT_COMPLETE = ord(">")


@dataclass
class Record:
    """One usbmon event. ``data`` is what a capture keeps of the URB's data (maybe a prefix)."""

    ts_us: int
    serial: int  # which URB: one submit and (usually) one completion share it
    kind: int  # URB_SUBMIT or URB_COMPLETE
    xfer: int
    endpoint: int  # with the direction bit, e.g. 0x81
    device: int
    bus: int
    status: int
    urb_len: int
    data_len: int  # bytes usbmon attached (after its own per-event cap)
    data: bytes = b""  # the first bytes of those data_len bytes (the capture's snaplen cuts)
    setup: bytes | None = None
    interval: int = 0
    xfer_flags: int = 0
    seq: int = 0  # tie-break for records in the same microsecond: creation order
    urb_id: int = 0


class UrbIdPool:
    """Kernel-address-like URB ids, reused last-in-first-out."""

    def __init__(self, seed: int, base: int = 0xFFFF_9A3C_8E40_0000) -> None:
        rng = np.random.default_rng(seed)
        # URB structs are 192 bytes apart in a slab; take 256 slots in a shuffled order
        slots = rng.permutation(256)
        self._free = [base + int(s) * 0xC0 for s in slots[::-1]]
        self._next_extra = base + 256 * 0xC0

    def take(self) -> int:
        if self._free:
            return self._free.pop()
        self._next_extra += 0xC0
        return self._next_extra

    def give_back(self, urb_id: int) -> None:
        self._free.append(urb_id)


def sort_records(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.ts_us, r.seq))


def assign_urb_ids(records: list[Record], pool_by_device: dict[tuple[int, int], UrbIdPool]) -> None:
    """Give every URB an id in time order; ``records`` must already be sorted."""
    live: dict[int, int] = {}
    for rec in records:
        pool = pool_by_device[(rec.bus, rec.device)]
        if rec.kind == URB_SUBMIT:
            if rec.serial in live:
                raise AssertionError(f"URB serial {rec.serial} submitted twice")
            live[rec.serial] = rec.urb_id = pool.take()
        else:
            rec.urb_id = live.pop(rec.serial)
            pool.give_back(rec.urb_id)


def header_array(records: list[Record]) -> np.ndarray:
    """The 64-byte usbmon headers of ``records`` as a little-endian structured array."""
    n = len(records)
    hdr = np.zeros(n, header_dtype(LINKTYPE_USB_LINUX_MMAPPED, "<"))
    if not n:
        return hdr
    ts = np.fromiter((r.ts_us for r in records), np.int64, n)
    kind = np.fromiter((r.kind for r in records), np.uint8, n)
    xfer = np.fromiter((r.xfer for r in records), np.uint8, n)
    ep = np.fromiter((r.endpoint for r in records), np.uint8, n)
    has_setup = np.fromiter((r.setup is not None for r in records), bool, n)
    data_len = np.fromiter((r.data_len for r in records), np.uint32, n)
    hdr["urb_id"] = np.fromiter((r.urb_id for r in records), np.uint64, n)
    hdr["type"] = kind
    hdr["xfer"] = xfer
    hdr["epnum"] = ep
    hdr["devnum"] = np.fromiter((r.device for r in records), np.uint8, n)
    hdr["busnum"] = np.fromiter((r.bus for r in records), np.uint16, n)
    hdr["flag_setup"] = np.where(has_setup, 0, FLAG_SETUP_ABSENT)
    hdr["flag_data"] = flag_data(kind, ep, data_len)
    hdr["ts_sec"] = ts // 1_000_000
    hdr["ts_usec"] = ts % 1_000_000
    hdr["status"] = np.fromiter((r.status for r in records), np.int32, n)
    hdr["urb_len"] = np.fromiter((r.urb_len for r in records), np.uint32, n)
    hdr["data_len"] = data_len
    for i in np.flatnonzero(has_setup):
        hdr["setup"][i] = np.frombuffer(records[i].setup, np.uint8)
    hdr["interval"] = np.fromiter((r.interval for r in records), np.int32, n)
    hdr["xfer_flags"] = np.fromiter((r.xfer_flags for r in records), np.uint32, n)
    return hdr


def flag_data(kind: np.ndarray, endpoint: np.ndarray, data_len: np.ndarray) -> np.ndarray:
    """usbmon's data flag: '<' on IN submits, '>' on OUT completions, else 0 (mon_bin.c)."""
    is_in = (endpoint & 0x80) != 0
    out = np.zeros(len(kind), np.uint8)
    out[(kind == URB_SUBMIT) & is_in] = FLAG_DATA_IN_SUBMIT
    out[(kind == URB_COMPLETE) & ~is_in] = FLAG_DATA_OUT_COMPLETE
    return out


def write_records(writer: PcapngWriter, records: list[Record], snaplen: int) -> None:
    """One Enhanced Packet Block per record; records longer than ``snaplen`` are cut."""
    raw = header_array(records).tobytes()
    for i, rec in enumerate(records):
        header = raw[i * USBMON_HEADER_LEN : (i + 1) * USBMON_HEADER_LEN]
        full_len = USBMON_HEADER_LEN + rec.data_len
        kept = min(full_len, snaplen) - USBMON_HEADER_LEN
        if len(rec.data) < kept:
            raise AssertionError(f"record {i}: {len(rec.data)} data bytes kept, {kept} needed")
        writer.packet(header + rec.data[:kept], rec.ts_us * 1000, orig_len=full_len)
