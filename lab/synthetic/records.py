"""URB ids of a synthetic session's records, and the kernel flags the simulator sets.

Records are built with a placeholder URB serial; real-looking URB ids are handed out at the end,
in time order, from a last-in-first-out pool of kernel-address-like values. That way an id is
reused as soon as its URB completed (as the kernel's allocator does) and never while it is in
flight, whatever order the simulator built the records in.
"""

from __future__ import annotations

import numpy as np

from lab.usb.record import UsbRecord
from usbtrace.formats.usbmon import URB_SUBMIT

URB_DIR_IN = 0x200  # kernel transfer_flags bit usbmon shows on every IN URB
# transfer_flags the real captures show on completions of larger bulk-OUT URBs (DMA mapping)
URB_OUT_MAPPED = 0x400000
URB_OUT_MAPPED_ABOVE = 8192


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


def sort_records(records: list[UsbRecord]) -> list[UsbRecord]:
    """Capture order: by time, records of the same time in creation order (the sort is stable)."""
    return sorted(records, key=lambda r: r.ts_ns)


def assign_urb_ids(
    records: list[UsbRecord], pool_by_device: dict[tuple[int, int], UrbIdPool]
) -> list[int]:
    """Replace every URB's serial (its placeholder ``urb_id``) by an id, in time order.

    ``records`` must already be sorted. Returns the serial of each record.
    """
    live: dict[int, int] = {}
    serials = [r.urb_id for r in records]
    for rec, serial in zip(records, serials):
        pool = pool_by_device[(rec.busnum, rec.devnum)]
        if rec.urb_type == URB_SUBMIT:
            if serial in live:
                raise AssertionError(f"URB serial {serial} submitted twice")
            live[serial] = rec.urb_id = pool.take()
        else:
            rec.urb_id = live.pop(serial)
            pool.give_back(rec.urb_id)
    return serials
