"""Pair each usbmon submit (S) with its completion (C, or E for a failed submission).

The key is (URB id, bus, device, endpoint). URB ids are kernel addresses and are reused as soon as
an URB is freed, so the same key recurs many times in a capture: a completion is paired with the
*open* submit of its key, i.e. the latest earlier record of that key when that record is a submit.
Done vectorised: sort records stably by (key, frame); a completion directly preceded (in that order)
by a submit of the same key is its pair.

Failure modes, counted rather than guessed at:
* a completion whose key has no open submit (the capture started after the submit, or a frame was
  dropped): an URB with a completion only;
* a submit followed by another submit of the same key before any completion (its completion was
  dropped): an URB with a submit only;
* submits still open at the end of the capture (pending reads, cut captures): submit only.

Streaming: submits still open at the end of a batch are carried into the next batch.
"""

from __future__ import annotations

import numpy as np

from usbtrace.formats.records import HEAD_BYTES, RECORD, concat_rows, take
from usbtrace.formats.usbmon import URB_SUBMIT

URB = np.dtype(
    [
        ("bus", "<u2"),
        ("dev", "u1"),
        ("ep", "u1"),  # endpoint address, direction bit included (0x81 = IN 1)
        ("xfer", "u1"),
        ("urb_id", "<u8"),
        ("s_frame", "<i8"),  # 0 when the submit was not captured
        ("s_ts", "<i8"),
        ("c_frame", "<i8"),  # 0 when the completion was not captured
        ("c_ts", "<i8"),
        ("status", "<i4"),  # completion status (the submit's when no completion)
        ("s_len", "<u4"),  # urb_len at submit: bytes offered (OUT) or asked for (IN)
        ("c_len", "<u4"),  # urb_len at completion: bytes actually transferred
        ("s_data_len", "<u4"),  # usbmon's data_len (what it kept, before snaplen)
        ("c_data_len", "<u4"),
        ("s_cap", "<u4"),  # data bytes actually in the file
        ("c_cap", "<u4"),
        ("setup", "u1", (8,)),
        ("s_head", "u1", (HEAD_BYTES,)),
        ("c_head", "u1", (HEAD_BYTES,)),
    ]
)


def _fill(out: np.ndarray, recs: np.ndarray, side: str) -> None:
    h = recs["hdr"]
    out[f"{side}_frame"] = recs["frame"]
    out[f"{side}_ts"] = recs["ts_ns"]
    out[f"{side}_len"] = h["urb_len"]
    out[f"{side}_data_len"] = h["data_len"]
    out[f"{side}_cap"] = recs["caplen"]
    out[f"{side}_head"] = recs["head"]


def _identity(out: np.ndarray, recs: np.ndarray) -> None:
    h = recs["hdr"]
    out["bus"] = h["busnum"]
    out["dev"] = h["devnum"]
    out["ep"] = h["epnum"]
    out["xfer"] = h["xfer"]
    out["urb_id"] = h["urb_id"]
    out["status"] = h["status"]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _group_order(urb_id: np.ndarray, where: np.ndarray) -> np.ndarray:
    """A stable order that puts records of equal (urb_id, where) next to each other.

    Sorting by the exact 128-bit key is the slow part of pairing, so records are ordered by a
    32-bit hash of it with two 16-bit stable radix passes (numpy sorts 16-bit keys by radix). If
    two different keys share a hash inside the batch, their records could interleave, so that is
    checked and the exact (slower) lexsort is used instead.
    """
    with np.errstate(over="ignore"):
        mixed = (urb_id ^ (urb_id >> np.uint64(31))) * _GOLDEN + where.astype(np.uint64) * _GOLDEN
        h = (mixed >> np.uint64(32)).astype(np.uint32)
    lo = (h & 0xFFFF).astype(np.uint16)
    hi = (h >> 16).astype(np.uint16)
    order = np.argsort(lo, kind="stable")
    order = order[np.argsort(hi[order], kind="stable")]
    hs, ids, ws = h[order], urb_id[order], where[order]
    same_hash = hs[1:] == hs[:-1]
    if (same_hash & ((ids[1:] != ids[:-1]) | (ws[1:] != ws[:-1]))).any():
        return np.lexsort((where, urb_id))
    return order


class UrbPairer:
    """Feed record batches in file order; get URBs back. Call ``finish()`` at the end."""

    def __init__(self) -> None:
        self.carry = np.zeros(0, dtype=RECORD)  # submits still open
        self.orphan_completions = 0
        self.superseded_submits = 0

    def feed(self, records: np.ndarray) -> np.ndarray:
        recs = concat_rows([self.carry, records]) if len(self.carry) else records
        if not len(recs):
            return np.zeros(0, dtype=URB)
        h = recs["hdr"]
        # records arrive in frame order and lexsort is stable, so sorting by the key alone keeps
        # frame order within each key
        where = h["busnum"].astype(np.int64) << 16 | h["devnum"].astype(np.int64) << 8 | h["epnum"]
        order = _group_order(h["urb_id"], where)
        typ = h["type"][order]
        is_submit = typ == URB_SUBMIT
        sw = where[order]
        sid = h["urb_id"][order]
        same = np.zeros(len(order), dtype=bool)
        same[1:] = (sid[1:] == sid[:-1]) & (sw[1:] == sw[:-1])
        paired_c = np.zeros(len(order), dtype=bool)
        paired_c[1:] = ~is_submit[1:] & same[1:] & is_submit[:-1]
        paired_s = np.zeros(len(order), dtype=bool)
        paired_s[:-1] = paired_c[1:]
        lone_c = ~is_submit & ~paired_c
        # a submit whose next record of the same key is another submit was never completed
        followed = np.zeros(len(order), dtype=bool)
        followed[:-1] = same[1:]
        lone_s_closed = is_submit & ~paired_s & followed
        still_open = is_submit & ~paired_s & ~followed
        self.orphan_completions += int(np.count_nonzero(lone_c))
        self.superseded_submits += int(np.count_nonzero(lone_s_closed))
        self.carry = take(recs, np.sort(order[still_open]))

        ci = np.flatnonzero(paired_c)
        c_rows = take(recs, order[ci])
        s_rows = take(recs, order[ci - 1])
        pairs = np.zeros(len(ci), dtype=URB)
        _identity(pairs, c_rows)
        _fill(pairs, s_rows, "s")
        _fill(pairs, c_rows, "c")
        pairs["setup"] = s_rows["hdr"]["setup"]

        lc = take(recs, order[lone_c])
        lone_cs = np.zeros(len(lc), dtype=URB)
        _identity(lone_cs, lc)
        _fill(lone_cs, lc, "c")
        lone_cs["setup"] = lc["hdr"]["setup"]

        lone_ss = self._submit_only(take(recs, order[lone_s_closed]))
        return concat_rows([pairs, lone_cs, lone_ss])

    def _submit_only(self, recs: np.ndarray) -> np.ndarray:
        out = np.zeros(len(recs), dtype=URB)
        _identity(out, recs)
        _fill(out, recs, "s")
        out["setup"] = recs["hdr"]["setup"]
        return out

    def finish(self) -> np.ndarray:
        """URBs whose submit was never completed (pending reads, cut captures)."""
        out = self._submit_only(self.carry)
        self.carry = np.zeros(0, dtype=RECORD)
        return out
