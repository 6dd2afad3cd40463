"""Join a device's framed bulk-OUT submits with their paired URBs; sum each logical transfer.

The framer says, per bulk-OUT submit (by frame), which transfer it belongs to and whether it is
the header or payload; the decoder keeps, per batch, the paired URBs' columns. ``OutState``
joins the two into ``OUT_URB`` rows in (transfer, submit) order and computes the ``TRANSFER``
table of the transfers still held.

Streaming: the state holds only the transfers not yet released. ``update`` joins what arrived
since the last call (a submit whose URB has not closed yet waits, unjoined, for the next call);
``table`` gives the held transfers; ``release`` drops the transfers the analysis has finished
with, and their URBs, so memory is bounded by the transfers in flight, not by the capture.
Transfer indices are global (the framer's count); a table row's index is in ``gidx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.framing import ROLE_HEADER, ROLE_PAYLOAD, OutFramer
from usbtrace.edgetpu.trace import OUT_URB, TRANSFER
from usbtrace.intervals import segmented_union_length

# the bulk-OUT URB columns the decoder keeps per batch, in this order
OUT_COLUMNS = ("s_frame", "s_ts", "c_frame", "c_ts", "status", "length")
_STORE = (("tag", np.int8), ("length", np.int64), ("endpoint", np.uint8), ("frame", np.int64))


def _is_sorted(a: np.ndarray) -> bool:
    return bool((a[1:] >= a[:-1]).all())


@dataclass
class TransferTable:
    """The held transfers of one device, computed from ``OutState``."""

    table: np.ndarray  # TRANSFER, one row per held transfer
    gidx: np.ndarray  # global transfer index of each row
    rows: np.ndarray  # OUT_URB of the held transfers, ``tidx`` = row in ``table``
    problems: dict[int, str]  # by row in ``table``
    unsettled: np.ndarray  # bool per row: more URBs of it may still arrive


@dataclass
class OutState:
    """One device's bulk-OUT transfers not yet released (see the module docstring)."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=OUT_URB))
    # framer assignments whose URB has not closed yet: frame, global transfer, role
    wait_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    wait_tidx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    wait_roles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    # held transfers: the framer's store fields plus the global index
    held: dict[str, np.ndarray] = field(
        default_factory=lambda: {
            **{n: np.zeros(0, dtype=t) for n, t in _STORE},
            "gidx": np.zeros(0, dtype=np.int64),
        }
    )
    taken: int = 0  # transfers copied out of the framer's store so far
    released: int = 0  # transfers released so far

    def update(self, f: OutFramer, cols: dict[str, list[np.ndarray]]) -> None:
        """Join the submits framed and the URBs paired since the last call."""
        frames, tidx, roles = f.assignments()
        f.frames, f.tidx, f.roles = [], [], []
        if len(self.wait_frames):
            frames = np.concatenate([self.wait_frames, frames])
            tidx = np.concatenate([self.wait_tidx, tidx.astype(np.int64)])
            roles = np.concatenate([self.wait_roles, roles])
            if not _is_sorted(frames):
                o = np.argsort(frames, kind="stable")
                frames, tidx, roles = frames[o], tidx[o], roles[o]
        s_frame = _column(cols, "s_frame")
        idx = np.flatnonzero(s_frame > 0)  # no submit: cannot be framed
        sf = s_frame[idx]
        if not _is_sorted(sf):
            o = np.argsort(sf, kind="stable")
            idx, sf = idx[o], sf[o]
        if len(sf) == len(frames) and np.array_equal(sf, frames):
            hit = np.ones(len(frames), dtype=bool)
        elif len(sf):
            pos = np.minimum(np.searchsorted(sf, frames), len(sf) - 1)
            hit = sf[pos] == frames
            idx = idx[pos[hit]]
            del pos
        else:
            hit = np.zeros(len(frames), dtype=bool)
            idx = idx[:0]
        miss = ~hit
        self.wait_frames = frames[miss]
        self.wait_tidx = tidx[miss].astype(np.int64)
        self.wait_roles = roles[miss]
        tidx, roles = tidx[hit], roles[hit]
        del frames, sf, hit, miss
        # unframed URBs (transfer -1) belong to no transfer: nothing reads them
        keep = tidx >= 0
        if not keep.all():
            idx, tidx, roles = idx[keep], tidx[keep], roles[keep]
        new = np.empty(len(idx), dtype=OUT_URB)
        new["tidx"] = tidx
        new["role"] = roles
        del tidx, roles
        same = len(idx) == len(s_frame) and bool((idx[1:] > idx[:-1]).all())
        new["s_frame"] = s_frame if same else s_frame[idx]
        del s_frame
        for name in OUT_COLUMNS[1:]:
            col = _column(cols, name)
            new[name] = col if same else col[idx]
            del col  # the concatenated column is freed before the next one is made
        del idx
        rows = np.concatenate([self.rows, new]) if len(self.rows) else new
        # (transfer, submit) order: a stable sort by transfer of submit-ordered rows
        t = rows["tidx"]
        if not _is_sorted(t) or (len(self.rows) and len(new)):
            o = np.lexsort((rows["s_frame"], t))
            if not np.array_equal(o, np.arange(len(o))):
                rows = rows[o]
        self.rows = rows
        # the transfers the framer created since the last call
        store = f.store
        if store.count > self.taken:
            arrays = store.arrays()
            fresh = {n: arrays[n][self.taken - store.base :] for n, _ in _STORE}
            fresh["gidx"] = np.arange(self.taken, store.count, dtype=np.int64)
            self.held = {n: np.concatenate([self.held[n], fresh[n]]) for n in self.held}
            self.taken = store.count
            store.drop_before(self.taken)

    def table(self, f: OutFramer) -> TransferTable:
        """The held transfers as a ``TRANSFER`` table (``update`` first)."""
        gidx = self.held["gidx"]
        n = len(gidx)
        table = np.zeros(n, dtype=TRANSFER)
        table["tag"] = self.held["tag"]
        length = self.held["length"].copy()
        for g, grown in f.store.length_override.items():  # multi-EP transfers grow
            i = int(np.searchsorted(gidx, g))
            if i < n and gidx[i] == g:
                length[i] = grown
        table["length"] = length
        table["endpoint"] = self.held["endpoint"]
        table["header_frame"] = self.held["frame"]
        rows = self.rows.copy()
        rows["tidx"] = np.searchsorted(gidx, rows["tidx"])
        problems = {}
        for g, text in f.problems.items():  # few: look each up, not every transfer
            i = int(np.searchsorted(gidx, g))
            if i < n and gidx[i] == g:
                problems[i] = text
        tid, role = rows["tidx"], rows["role"]
        done = (rows["c_frame"] > 0) & (rows["status"] == 0)

        m = role == ROLE_HEADER
        t, ok = tid[m], done[m]
        table["t_submit_ns"][t] = rows["s_ts"][m]
        header_ok = np.ones(n, dtype=bool)
        header_ok[t[~ok]] = False
        header_end = np.zeros(n, dtype=np.int64)
        header_end[t[ok]] = rows["c_ts"][m][ok]

        m = role == ROLE_PAYLOAD
        t, ok = tid[m], done[m]
        del done
        table["payload_bytes"] = np.bincount(t, weights=rows["length"][m], minlength=n)
        table["payload_urbs"] = np.bincount(t, minlength=n)
        s_ts = rows["s_ts"][m]
        firsts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) if len(t) else np.zeros(0, np.int64)
        table["t_payload_start_ns"][t[firsts]] = s_ts[firsts]
        del firsts
        missing = table["t_submit_ns"] == 0  # multi-EP: no header
        table["t_submit_ns"][missing] = table["t_payload_start_ns"][missing]
        c_ts = rows["c_ts"][m]
        del m
        not_done = np.bincount(t[~ok], minlength=n)
        if not ok.all():  # the usual capture has every payload URB completed: no copies then
            t, s_ts, c_ts = t[ok], s_ts[ok], c_ts[ok]
        del ok
        last_done = np.zeros(n, dtype=np.int64)
        np.maximum.at(last_done, t, c_ts)
        table["busy_ns"] = segmented_union_length(t, s_ts, c_ts, n)
        del t, s_ts, c_ts

        full = table["payload_bytes"] == table["length"]
        table["complete"] = full & header_ok & (not_done == 0)
        table["t_complete_ns"] = np.where(full, last_done, 0)
        empty = table["length"] == 0
        table["t_complete_ns"][empty] = header_end[empty]
        for i in np.flatnonzero(~full).tolist():
            problems.setdefault(
                i,
                f"header announces {int(table['length'][i])} bytes but only "
                f"{int(table['payload_bytes'][i])} followed",
            )
        # more URBs may still join these: a submit not closed yet, a payload still due, a
        # multi-EP transfer still open on its endpoint
        open_ids = [g for g in (f.open_transfer, *f.open_by_endpoint) if g >= 0]
        waiting = np.union1d(self.wait_tidx[self.wait_tidx >= 0], open_ids).astype(np.int64)
        unsettled = np.isin(gidx, waiting)
        return TransferTable(table, gidx, rows, problems, unsettled)

    def release(self, f: OutFramer, gidx: np.ndarray) -> None:
        """Drop the transfers with these global indices, and their URBs: analysed for good."""
        if not len(gidx):
            return
        gone = np.isin(self.held["gidx"], gidx)
        self.held = {n: a[~gone] for n, a in self.held.items()}
        self.rows = self.rows[~np.isin(self.rows["tidx"], gidx)]
        for table in (f.problems, f.store.length_override):
            if table:  # few entries: test each, not every released transfer
                keys = np.fromiter(table, dtype=np.int64, count=len(table))
                for g in keys[np.isin(keys, gidx)].tolist():
                    del table[g]
        self.released += len(gidx)


def _column(cols: dict[str, list[np.ndarray]], name: str) -> np.ndarray:
    """One bulk-OUT URB column of what arrived since the last call; its pieces are let go."""
    pieces = cols.pop(name, [])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=OUT_URB[name])
