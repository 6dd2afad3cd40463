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

An URB is not copied out of its records: ``Urbs`` holds, per URB, the index of its submit and of
its completion record in the batch. Copying both halves of every URB into one wide row was most of
the pairing's time, and the decoder reads only a few fields of most URBs.
"""

from __future__ import annotations

import numpy as np

from usbtrace.formats.records import HEAD_BYTES, RECORD, concat_rows, take
from usbtrace.formats.usbmon import URB_SUBMIT

# The full form of an URB, both halves in one row: for the few URBs read field by field
# (control transfers, interrupts) and for tests.
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

_ZERO = np.zeros(1, dtype=RECORD)


class Urbs:
    """URBs as indices into ``records``, whose last row is all zeros: the stand-in for a half
    that was not captured (frame 0, timestamp 0, no data), so a missing half reads as zeros.

    ``ident`` is the record that names the URB (its completion, else its submit): bus, device,
    endpoint, transfer type and status come from it.
    """

    _COLUMNS = ("s", "c", "ident", "bus", "dev", "ep", "xfer", "status")
    __slots__ = ("records", *_COLUMNS)

    def __init__(self, records: np.ndarray, s: np.ndarray, c: np.ndarray) -> None:
        self.records = records  # RECORD
        self.s = s  # submit record index
        self.c = c  # completion record index
        self.ident = np.where(c == len(records) - 1, s, c)
        h = records["hdr"]
        self.bus = h["busnum"][self.ident]
        self.dev = h["devnum"][self.ident]
        self.ep = h["epnum"][self.ident]
        self.xfer = h["xfer"][self.ident]
        self.status = h["status"][self.ident]

    def __len__(self) -> int:
        return len(self.s)

    @property
    def has_submit(self) -> np.ndarray:
        return self.s != len(self.records) - 1

    @property
    def has_completion(self) -> np.ndarray:
        return self.c != len(self.records) - 1

    def select(self, which: np.ndarray) -> Urbs:
        """The URBs at a boolean mask or index array, sharing the records."""
        out = object.__new__(Urbs)
        out.records = self.records
        for name in self._COLUMNS:
            setattr(out, name, getattr(self, name)[which])
        return out

    def submit(self, name: str) -> np.ndarray:
        """A field of each URB's submit record: frame, ts_ns, caplen, head or a header field."""
        return _field(self.records, name)[self.s]

    def completion(self, name: str) -> np.ndarray:
        return _field(self.records, name)[self.c]

    def rows(self) -> np.ndarray:
        """The URBs in their full ``URB`` form."""
        s = take(self.records, self.s)
        c = take(self.records, self.c)
        idn = take(self.records, self.ident)["hdr"]
        out = np.zeros(len(self), dtype=URB)
        out["bus"], out["dev"], out["ep"] = idn["busnum"], idn["devnum"], idn["epnum"]
        out["xfer"], out["urb_id"], out["status"] = idn["xfer"], idn["urb_id"], idn["status"]
        # the setup packet rides on the submit; a completion-only URB keeps the completion's
        # setup field, which is what usbmon wrote there
        out["setup"] = np.where(self.has_submit[:, None], s["hdr"]["setup"], idn["setup"])
        for side, r in (("s", s), ("c", c)):
            out[f"{side}_frame"] = r["frame"]
            out[f"{side}_ts"] = r["ts_ns"]
            out[f"{side}_len"] = r["hdr"]["urb_len"]
            out[f"{side}_data_len"] = r["hdr"]["data_len"]
            out[f"{side}_cap"] = r["caplen"]
            out[f"{side}_head"] = r["head"]
        return out


_RECORD_FIELDS = frozenset(RECORD.names or ())  # the rest are usbmon header fields


def _field(records: np.ndarray, name: str) -> np.ndarray:
    return records[name] if name in _RECORD_FIELDS else records["hdr"][name]


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


MAX_OPEN = 1 << 14  # open submits kept: far above what any driver keeps posted at once
CHECK_EVERY = 1 << 14  # records between two checks of the open submits against MAX_OPEN


class UrbPairer:
    """Feed record batches in file order; get URBs back. Call ``finish()`` at the end.

    URBs come back in the order of the record that closes them (the completion, or the submit a
    later submit of the same key superseded), which is capture order within a batch.

    Memory and time stay linear however many submits are never completed: after every
    ``CHECK_EVERY``-th record of the capture, the submits open at that record are counted, and
    beyond ``MAX_OPEN`` the oldest are given up on: they come back as URBs without a completion,
    closed at that record, and are counted in ``dropped_open``; a completion of theirs that still
    comes is then one without its submit. The checks sit at fixed record numbers, so the result
    does not depend on how the reader cut the file into batches. Every batch pairs its records
    with at most ``MAX_OPEN + CHECK_EVERY`` carried submits; they were every open submit, and a
    capture of millions of unanswered reads re-sorted all of them with each batch.
    """

    def __init__(self) -> None:
        self.carry = np.zeros(0, dtype=RECORD)  # submits still open
        self.orphan_completions = 0
        self.superseded_submits = 0
        self.dropped_open = 0  # open submits given up on (more than MAX_OPEN open at a check)
        self.open_at_end = 0  # submits still open when the capture ended (set by finish)
        self.fed = 0  # records fed so far: where the checks fall

    def feed(self, records: np.ndarray) -> Urbs:
        # the carried submits first (they are older), and the zero row last
        recs = concat_rows([self.carry, records, _ZERO])
        n = len(recs) - 1
        none = n
        h = recs["hdr"][:n]
        where = h["busnum"].astype(np.int64) << 16 | h["devnum"].astype(np.int64) << 8 | h["epnum"]
        # records arrive in frame order and the grouping is stable, so within each key they
        # stay in frame order
        order = _group_order(h["urb_id"], where)
        is_submit = h["type"][order] == URB_SUBMIT
        sw = where[order]
        sid = h["urb_id"][order]
        same = np.zeros(n, dtype=bool)
        same[1:] = (sid[1:] == sid[:-1]) & (sw[1:] == sw[:-1])
        paired_c = np.zeros(n, dtype=bool)
        paired_c[1:] = ~is_submit[1:] & same[1:] & is_submit[:-1]
        paired_s = np.zeros(n, dtype=bool)
        paired_s[:-1] = paired_c[1:]
        # a submit whose next record of the same key is another submit was never completed
        followed = np.zeros(n, dtype=bool)
        followed[:-1] = same[1:]
        lone_s_closed = is_submit & ~paired_s & followed
        still_open = is_submit & ~paired_s & ~followed

        # per record (capture order): the submit a completion closes, and which records close
        # an URB; scattered back from the grouped order
        partner = np.full(n, none, dtype=np.int64)
        ci = np.flatnonzero(paired_c)
        partner[order[ci]] = order[ci - 1]
        # a submit another submit of its key superseded is closed by that later submit, which
        # is always in this batch's own records (the carry holds one submit per key at most):
        # closed at the superseded submit itself, a carried one came out ahead of the URBs
        # closed before it, and the order depended on where the batches were cut
        sup = np.flatnonzero(lone_s_closed)
        partner[order[sup + 1]] = order[sup]
        closes = np.zeros(n, dtype=bool)
        closes[order[~is_submit]] = True
        closes[order[sup + 1]] = True
        open_pos = np.sort(order[still_open])

        first = len(self.carry)
        dropped, at = self._give_up(recs, first, partner, closes, open_pos)
        self.fed += len(records)
        k = np.flatnonzero(closes)
        s = partner[k]
        c = np.where(h["type"][k] != URB_SUBMIT, k, none)
        self.orphan_completions += int(np.count_nonzero(c[s == none] != none))
        self.superseded_submits += int(np.count_nonzero(c[s != none] == none))
        if len(dropped):
            # given-up submits come out at the check that dropped them, after that record's own
            # URB, oldest first
            where_out = np.concatenate([2 * k, 2 * at + 1])
            out = np.argsort(where_out, kind="stable")
            s = np.concatenate([s, dropped])[out]
            c = np.concatenate([c, np.full(len(dropped), none)])[out]
            open_pos = open_pos[~np.isin(open_pos, dropped)]
        self.carry = take(recs, open_pos)
        return Urbs(recs, s, c)

    def _give_up(
        self,
        recs: np.ndarray,
        first: int,
        partner: np.ndarray,
        closes: np.ndarray,
        open_pos: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply the checks that fall in this batch (``recs[first:]`` are its own records).

        Returns the submits given up on and the record each was dropped at; ``partner`` and
        ``closes`` are updated so that their completions or superseding submits close nothing.
        """
        n = len(partner)
        none = n
        nothing = np.zeros(0, dtype=np.int64)
        is_submit = recs["hdr"]["type"][:n] == URB_SUBMIT
        if first + int(np.count_nonzero(is_submit[first:])) <= MAX_OPEN:
            return nothing, nothing  # never more than MAX_OPEN open in this batch
        # check after the records whose number in the capture (0-based) is CHECK_EVERY - 1 mod
        # CHECK_EVERY
        lead = (CHECK_EVERY - 1 - self.fed) % CHECK_EVERY
        checks = first + np.arange(lead, n - first, CHECK_EVERY, dtype=np.int64)
        if not len(checks):
            return nothing, nothing
        # every submit and where it closes (a completion, a superseding submit, or never)
        spos = np.flatnonzero(is_submit)
        close_at = np.full(n + 1, n, dtype=np.int64)
        closers = np.flatnonzero(closes & (partner != none))
        close_at[partner[closers]] = closers
        sclose = close_at[spos]
        alive = np.ones(len(spos), dtype=bool)
        drop_s: list[np.ndarray] = []
        drop_at: list[np.ndarray] = []
        for x in checks.tolist():
            is_open = alive & (spos <= x) & (sclose > x)
            extra = int(np.count_nonzero(is_open)) - MAX_OPEN
            if extra <= 0:
                continue
            gone = np.flatnonzero(is_open)[:extra]  # spos ascends: the oldest first
            alive[gone] = False
            drop_s.append(spos[gone])
            drop_at.append(np.full(extra, x, dtype=np.int64))
        if not drop_s:
            return nothing, nothing
        dropped = np.concatenate(drop_s)
        at = np.concatenate(drop_at)
        # what would have closed them closes nothing now: a completion stays, without its
        # submit; a superseding submit is just a submit
        gone_closers = close_at[dropped]
        gone_closers = gone_closers[gone_closers < n]
        partner[gone_closers] = none
        superseding = gone_closers[is_submit[gone_closers]]
        closes[superseding] = False
        self.dropped_open += len(dropped)
        return dropped, at

    def finish(self) -> Urbs:
        """URBs whose submit was never completed (pending reads, cut captures)."""
        recs = concat_rows([self.carry, _ZERO])
        n = len(self.carry)
        self.open_at_end = n
        self.carry = np.zeros(0, dtype=RECORD)
        return Urbs(recs, np.arange(n), np.full(n, n, dtype=np.int64))
