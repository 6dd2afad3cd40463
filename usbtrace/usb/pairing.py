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

from usbtrace.formats.records import HEAD_BYTES, RECORD
from usbtrace.usb.usbmon import URB_SUBMIT

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


class UrbPairer:
    """Feed record batches in file order; get URBs back. Call ``finish()`` at the end."""

    def __init__(self) -> None:
        self.carry = np.zeros(0, dtype=RECORD)  # submits still open
        self.orphan_completions = 0
        self.superseded_submits = 0

    def feed(self, records: np.ndarray) -> np.ndarray:
        recs = np.concatenate([self.carry, records]) if len(self.carry) else records
        if not len(recs):
            return np.zeros(0, dtype=URB)
        h = recs["hdr"]
        order = np.lexsort((recs["frame"], h["epnum"], h["devnum"], h["busnum"], h["urb_id"]))
        s = recs[order]
        sh = s["hdr"]
        is_submit = sh["type"] == URB_SUBMIT
        same = np.zeros(len(s), dtype=bool)
        same[1:] = (
            (sh["urb_id"][1:] == sh["urb_id"][:-1])
            & (sh["busnum"][1:] == sh["busnum"][:-1])
            & (sh["devnum"][1:] == sh["devnum"][:-1])
            & (sh["epnum"][1:] == sh["epnum"][:-1])
        )
        paired_c = np.zeros(len(s), dtype=bool)
        paired_c[1:] = ~is_submit[1:] & same[1:] & is_submit[:-1]
        paired_s = np.zeros(len(s), dtype=bool)
        paired_s[:-1] = paired_c[1:]
        lone_c = ~is_submit & ~paired_c
        # a submit whose next record of the same key is another submit was never completed
        followed = np.zeros(len(s), dtype=bool)
        followed[:-1] = same[1:]
        lone_s_closed = is_submit & ~paired_s & followed
        still_open = is_submit & ~paired_s & ~followed
        self.orphan_completions += int(np.count_nonzero(lone_c))
        self.superseded_submits += int(np.count_nonzero(lone_s_closed))
        self.carry = s[still_open]

        ci = np.flatnonzero(paired_c)
        pairs = np.zeros(len(ci), dtype=URB)
        _identity(pairs, s[ci])
        _fill(pairs, s[ci - 1], "s")
        _fill(pairs, s[ci], "c")
        pairs["setup"] = s["hdr"]["setup"][ci - 1]

        lc = s[lone_c]
        lone_cs = np.zeros(len(lc), dtype=URB)
        _identity(lone_cs, lc)
        _fill(lone_cs, lc, "c")
        lone_cs["setup"] = lc["hdr"]["setup"]

        ls = s[lone_s_closed]
        lone_ss = self._submit_only(ls)
        return np.concatenate([pairs, lone_cs, lone_ss])

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
