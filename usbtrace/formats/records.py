"""A batch of usbmon records as numpy arrays: what the file-format layer hands to the USB layer.

Only fixed-size fields are kept per record (the usbmon header, the timestamp, and the first
``HEAD_BYTES`` captured data bytes, enough for every Edge TPU header, event and CSR value). Control
transfers (rare, and the only records whose longer payloads matter: descriptors) also keep their
whole captured payload. This bounds memory by the batch size, whatever the capture's snaplen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.formats.usbmon import XFER_CONTROL, header_dtype

HEAD_BYTES = 16

# The usbmon header normalised to one native layout, whatever the file's byte order or link type.
HEADER = header_dtype(220, "<")

RECORD = np.dtype(
    [
        ("frame", "<i8"),  # 1-based packet number, as Wireshark counts
        ("ts_ns", "<i8"),  # capture timestamp, ns since the epoch
        ("caplen", "<u4"),  # captured data bytes after the usbmon header
        ("hdr", HEADER),
        ("head", "u1", (HEAD_BYTES,)),
    ]
)


def take(records: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``records[index]`` for a structured array, as a plain row copy.

    numpy copies nested structured records field by field on fancy indexing; viewing the rows as
    opaque fixed-size blobs makes the same gather several times faster.
    """
    blob = np.dtype((np.void, records.dtype.itemsize))
    return records.view(blob)[index].view(records.dtype)


def concat_rows(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate`` of same-dtype structured arrays, as plain row copies (see ``take``)."""
    dtype = arrays[0].dtype
    blob = np.dtype((np.void, dtype.itemsize))
    return np.concatenate([a.view(blob) for a in arrays]).view(dtype)


@dataclass
class RecordBatch:
    records: np.ndarray  # dtype RECORD
    control_payloads: dict[int, bytes] = field(default_factory=dict)  # frame -> captured data
    short_records: int = 0  # packets too short to hold a usbmon header (skipped)
    # frame -> captured data of every record that has some, only from ``Capture(keep_data=True)``
    # (the replay backend re-sends recorded payloads; analysis needs only ``head``)
    data: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)


SUB_BATCH = 1 << 16  # records gathered at once: bounds the temporary index arrays
assert RECORD.fields is not None  # a structured dtype
_HDR_OFFSET: int = RECORD.fields["hdr"][1]
assert RECORD.fields["head"][1] == _HDR_OFFSET + HEADER.itemsize
_HEAD_WORDS = (64 + HEAD_BYTES) // 4
# KEEP_HEAD[n]: 0xFF for the first n of HEAD_BYTES bytes, 0 after (a mask every reader applies
# to a record's head, so bytes past what was captured read as zero)
KEEP_HEAD = np.where(np.arange(HEAD_BYTES) < np.arange(HEAD_BYTES + 1)[:, None], 0xFF, 0).astype(
    np.uint8
)


def extract_usbmon(
    buf: np.ndarray,
    data_pos: np.ndarray,
    caplen: np.ndarray,
    ts_ns: np.ndarray,
    frames: np.ndarray,
    linktype: int,
    byteorder: str,
    keep_data: bool = False,
) -> RecordBatch:
    """Gather usbmon records from packet data at ``data_pos`` (offsets into ``buf``), vectorised.

    When every record starts on a 4-byte boundary (always in pcapng) the 64-byte header and the
    first data bytes are gathered as 20 aligned words per record, a quarter of the index work of
    a byte gather; pcap's unaligned records take the byte path.
    """
    hdr_len = 64 if linktype == 220 else 48
    ok = caplen >= hdr_len
    short = int(np.count_nonzero(~ok))
    if short:
        data_pos, caplen, ts_ns, frames = data_pos[ok], caplen[ok], ts_ns[ok], frames[ok]
    n = len(data_pos)
    out = np.empty(n, dtype=RECORD)
    out["frame"] = frames
    out["ts_ns"] = ts_ns
    data_cap = (caplen - hdr_len).astype(np.uint32)
    out["caplen"] = data_cap
    if n == 0:
        return RecordBatch(out, short_records=short)
    span = hdr_len + HEAD_BYTES
    native = byteorder == "<" and hdr_len == 64
    out_bytes = out.view(np.uint8).reshape(n, RECORD.itemsize)
    aligned = native and not (data_pos & 3).any()
    if aligned:
        # every record's header + head as one row of a zero-copy sliding window over the words
        # (a row gather, much cheaper than an index per word); the buffer is padded so the
        # last record's window never runs off its end
        words = buf[: len(buf) - len(buf) % 4].view("<u4")
        if len(words) < int(data_pos.max() >> 2) + _HEAD_WORDS:
            words = np.concatenate([words, np.zeros(_HEAD_WORDS, dtype="<u4")])
        windows = np.lib.stride_tricks.sliding_window_view(words, _HEAD_WORDS)
    for lo in range(0, n, SUB_BATCH):
        hi = min(n, lo + SUB_BATCH)
        pos = data_pos[lo:hi]
        if aligned:
            raw = windows[pos >> 2].view(np.uint8).reshape(hi - lo, span)
        else:
            idx = pos[:, None] + np.arange(span, dtype=np.int64)
            np.minimum(idx, len(buf) - 1, out=idx)
            raw = buf[idx]
        head = raw[:, hdr_len:]  # raw is a gathered copy: safe to change in place
        # bytes past the captured data belong to padding or the next block: zero them, by an
        # AND with a per-length mask (a masked where on the short rows was 3x slower)
        head &= KEEP_HEAD[np.minimum(data_cap[lo:hi], HEAD_BYTES)]
        if native:
            # "hdr" and "head" are adjacent in RECORD: one row copy fills both
            out_bytes[lo:hi, _HDR_OFFSET : _HDR_OFFSET + span] = raw
        else:
            out["head"][lo:hi] = head
            src = np.ascontiguousarray(raw[:, :hdr_len]).view(header_dtype(linktype, byteorder))
            src = src.reshape(hi - lo)
            dst = out["hdr"][lo:hi]
            for name in HEADER.names or ():
                if name in (src.dtype.names or ()):
                    dst[name] = src[name]
                else:
                    dst[name] = 0
    payloads: dict[int, bytes] = {}
    ctrl = np.flatnonzero((out["hdr"]["xfer"] == XFER_CONTROL) & (data_cap > 0))
    for i in ctrl.tolist():
        start = int(data_pos[i]) + hdr_len
        payloads[int(frames[i])] = buf[start : start + int(data_cap[i])].tobytes()
    kept: dict[int, bytes] = {}
    if keep_data:
        every = np.ones(n, dtype=bool)
        kept = payloads_of(buf, every, data_pos + hdr_len, data_cap.astype(np.int64), frames)
    return RecordBatch(out, payloads, short, kept)


def concat(batches: list[RecordBatch]) -> RecordBatch:
    if not batches:
        return RecordBatch(np.zeros(0, dtype=RECORD))
    payloads: dict[int, bytes] = {}
    kept: dict[int, bytes] = {}
    for b in batches:
        payloads.update(b.control_payloads)
        kept.update(b.data)
    return RecordBatch(
        concat_rows([b.records for b in batches]),
        payloads,
        sum(b.short_records for b in batches),
        kept,
    )


# usbmon's URB types in byte order ("C" < "E" < "S"), as 2-bit codes; 3 marks any other byte
_TYPES = np.array([ord("C"), ord("E"), ord("S")], dtype=np.int64)
_TYPE_CODE = np.full(256, 3, dtype=np.intp)
_TYPE_CODE[_TYPES] = np.arange(3)


def endpoint_sums(records: np.ndarray) -> list[tuple[tuple[int, int, int, int], int, int, int]]:
    """Per (bus, device, endpoint, URB type byte): record count, sum of urb_len, of data_len.

    What ``verify`` compares with tshark and what the decoder keeps as per-endpoint statistics.
    In key order. The usual batch (one bus, endpoint numbers 0-15, types S/C/E) is tallied by
    counting into a 15-bit key; anything else takes an exact sort.
    """
    h = records["hdr"]
    if not len(records):
        return []
    bus, ep = h["busnum"], h["epnum"]
    code = _TYPE_CODE[h["type"]]
    if (bus == bus[0]).all() and not (ep & 0x70).any() and code.max() < 3:
        # endpoint address to 5 bits: number and direction
        key = h["devnum"].astype(np.intp) << 7 | (ep & 0x0F | (ep >> 3) & 0x10) << 2 | code
        counts = np.bincount(key)
        uniq = np.flatnonzero(counts)
        ulen = np.bincount(key, weights=h["urb_len"])[uniq]
        dlen = np.bincount(key, weights=h["data_len"])[uniq]
        b = int(bus[0])
        e5 = (uniq >> 2) & 0x1F
        keys = zip(
            (uniq >> 7).tolist(),
            (e5 & 0x0F | (e5 & 0x10) << 3).tolist(),
            _TYPES[uniq & 3].tolist(),
        )
        return [
            ((b, d, e, t), c, int(u), int(x))
            for (d, e, t), c, u, x in zip(keys, counts[uniq].tolist(), ulen.tolist(), dlen.tolist())
        ]
    key = (
        bus.astype(np.int64) << 24
        | h["devnum"].astype(np.int64) << 16
        | ep.astype(np.int64) << 8
        | h["type"]
    )
    uniq, inv = np.unique(key, return_inverse=True)
    counts = np.bincount(inv)
    # float64 sums are exact below 2**53 bytes, far beyond any capture
    ulen = np.bincount(inv, weights=h["urb_len"].astype(np.float64))
    dlen = np.bincount(inv, weights=h["data_len"].astype(np.float64))
    return [
        ((k >> 24, (k >> 16) & 0xFF, (k >> 8) & 0xFF, k & 0xFF), c, int(u), int(d))
        for k, c, u, d in zip(uniq.tolist(), counts.tolist(), ulen.tolist(), dlen.tolist())
    ]


# -- shared by the readers of other link types (USBPcap, macOS) ---------------------------------

PacketSums = dict[tuple[int, int, int, str], list[int]]  # (bus, dev, ep, "S"/"C") -> [n, 0, bytes]


def gather_heads(buf: np.ndarray, start: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """The first HEAD_BYTES data bytes of each packet (``cap`` bytes captured from ``start``),
    zero past what was captured, as one (n, HEAD_BYTES) array."""
    hidx = start[:, None] + np.arange(HEAD_BYTES, dtype=np.int64)
    np.minimum(hidx, len(buf) - 1, out=hidx)
    return buf[hidx] & KEEP_HEAD[np.minimum(cap, HEAD_BYTES)]


def payloads_of(
    buf: np.ndarray, which: np.ndarray, start: np.ndarray, cap: np.ndarray, frames: np.ndarray
) -> dict[int, bytes]:
    """Captured data by frame number, for the packets ``which`` selects (control transfers, or
    every packet for ``Capture(keep_data=True)``)."""
    out: dict[int, bytes] = {}
    for i in np.flatnonzero(which & (cap > 0)).tolist():
        s = int(start[i])
        out[int(frames[i])] = buf[s : s + int(cap[i])].tobytes()
    return out


def tally_packets(
    sums: PacketSums,
    bus: np.ndarray,
    dev: np.ndarray,
    ep: np.ndarray,
    completion: np.ndarray,
    length: np.ndarray,
) -> None:
    """Add packets to per (bus, device, endpoint, submit/completion) counts and byte sums
    (what ``verify`` compares with tshark)."""
    if not len(bus):
        return
    key = (
        bus.astype(np.int64) << 40
        | dev.astype(np.int64) << 16
        | ep.astype(np.int64) << 8
        | completion.astype(np.int64)
    )
    uniq, inv = np.unique(key, return_inverse=True)
    counts = np.bincount(inv)
    total = np.bincount(inv, weights=length.astype(np.float64))
    for k, c, d in zip(uniq.tolist(), counts.tolist(), total.tolist()):
        name = (k >> 40, (k >> 16) & 0xFFFF, (k >> 8) & 0xFF, "C" if k & 1 else "S")
        entry = sums.setdefault(name, [0, 0, 0])
        entry[0] += c
        entry[2] += int(d)
