"""Join a device's framed bulk-OUT submits with their paired URBs; sum each logical transfer.

The framer says, per bulk-OUT submit (by frame), which transfer it belongs to and whether it is
the header or payload; the decoder kept, per batch, the paired URBs' columns. This joins the two
into ``OUT_URB`` rows in (transfer, submit) order and computes the ``TRANSFER`` table from them.
Memory matters here: a long capture has millions of URBs, so each column is freed as soon as it
is gathered and the sums read columns through masks rather than copying rows.
"""

from __future__ import annotations

import numpy as np

from usbtrace.edgetpu.framing import ROLE_HEADER, ROLE_PAYLOAD, OutFramer
from usbtrace.edgetpu.trace import OUT_URB, TRANSFER
from usbtrace.intervals import segmented_union_length

# the bulk-OUT URB columns the decoder keeps per batch, in this order
OUT_COLUMNS = ("s_frame", "s_ts", "c_frame", "c_ts", "status", "length")


def _is_sorted(a: np.ndarray) -> bool:
    return bool((a[1:] >= a[:-1]).all())


def assemble_transfers(
    f: OutFramer, cols: dict[str, list[np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Join the framer's per-submit assignment with the paired URBs, then sum per transfer.

    The join works on index arrays and gathers each URB column once; each column is freed once
    gathered and the sums read columns through masks, not row copies, so a long capture's peak
    memory stays near the size of the result. In the usual capture every bulk-OUT submit was
    paired, in capture order, and transfers follow each other: then the sorts and the search
    below are skipped.
    """
    frames, tidx, roles = f.assignments()
    f.frames, f.tidx, f.roles = [], [], []
    s_frame = _column(cols, "s_frame")
    idx = np.flatnonzero(s_frame > 0)  # no submit: cannot be framed
    sf = s_frame[idx]
    if not _is_sorted(sf):
        o = np.argsort(sf, kind="stable")
        idx, sf = idx[o], sf[o]
    if len(sf) == len(frames) and np.array_equal(sf, frames):
        hit = slice(None)
    elif len(sf):
        pos = np.minimum(np.searchsorted(sf, frames), len(sf) - 1)
        hit = sf[pos] == frames
        idx = idx[pos[hit]]
        del pos
    else:
        hit = np.zeros(len(frames), dtype=bool)
    tidx, roles = tidx[hit], roles[hit]
    del frames, sf, hit
    # in submit order transfers follow each other: a stable sort by transfer gives (transfer,
    # submit time) order, and is needed only for interleaved (multi-EP) or unframed URBs
    if not _is_sorted(tidx):
        o = np.argsort(tidx, kind="stable")
        idx, tidx, roles = idx[o], tidx[o], roles[o]
        del o
    rows = np.empty(len(idx), dtype=OUT_URB)
    rows["tidx"] = tidx
    rows["role"] = roles
    del tidx, roles
    # the usual capture: every URB, in the order it was paired; no gather needed then
    same = len(idx) == len(s_frame) and bool((idx[1:] > idx[:-1]).all())
    rows["s_frame"] = s_frame if same else s_frame[idx]
    del s_frame
    for name in OUT_COLUMNS[1:]:
        col = _column(cols, name)
        rows[name] = col if same else col[idx]
        del col  # the concatenated column is freed before the next one is made
    del idx

    n = f.count
    store = f.store.arrays()
    table = np.zeros(n, dtype=TRANSFER)
    table["tag"] = store["tag"]
    table["length"] = store["length"]
    table["endpoint"] = store["endpoint"]
    table["header_frame"] = store["frame"]
    del store
    problems = dict(f.problems)
    tid, role = rows["tidx"], rows["role"]
    done = (rows["c_frame"] > 0) & (rows["status"] == 0)

    m = role == ROLE_HEADER
    t, ok = tid[m], done[m]
    table["t_submit_ns"][t] = rows["s_ts"][m]
    header_ok = np.ones(n, dtype=bool)
    header_ok[t[~ok]] = False
    header_end = np.zeros(n, dtype=np.int64)
    header_end[t[ok]] = rows["c_ts"][m][ok]

    m = (role == ROLE_PAYLOAD) & (tid >= 0)
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
    return rows, table, problems


def _column(cols: dict[str, list[np.ndarray]], name: str) -> np.ndarray:
    """One bulk-OUT URB column for the whole capture; its per-batch pieces are let go."""
    pieces = cols.pop(name, [])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=OUT_URB[name])
