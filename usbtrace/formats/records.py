"""A batch of usbmon records as numpy arrays: what the file-format layer hands to the USB layer.

Only fixed-size fields are kept per record (the usbmon header, the timestamp, and the first
``HEAD_BYTES`` captured data bytes, enough for every Edge TPU header, event and CSR value). Control
transfers (rare, and the only records whose longer payloads matter: descriptors) also keep their
whole captured payload. This bounds memory by the batch size, whatever the capture's snaplen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.usb.usbmon import XFER_CONTROL, header_dtype

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


@dataclass
class RecordBatch:
    records: np.ndarray  # dtype RECORD
    control_payloads: dict[int, bytes] = field(default_factory=dict)  # frame -> captured data
    short_records: int = 0  # packets too short to hold a usbmon header (skipped)

    def __len__(self) -> int:
        return len(self.records)


def extract_usbmon(
    buf: np.ndarray,
    data_pos: np.ndarray,
    caplen: np.ndarray,
    ts_ns: np.ndarray,
    frames: np.ndarray,
    linktype: int,
    byteorder: str,
) -> RecordBatch:
    """Gather usbmon records from packet data at ``data_pos`` (offsets into ``buf``), vectorised."""
    hdr_len = 64 if linktype == 220 else 48
    ok = caplen >= hdr_len
    short = int(np.count_nonzero(~ok))
    if short:
        data_pos, caplen, ts_ns, frames = data_pos[ok], caplen[ok], ts_ns[ok], frames[ok]
    n = len(data_pos)
    out = np.zeros(n, dtype=RECORD)
    out["frame"] = frames
    out["ts_ns"] = ts_ns
    if n == 0:
        return RecordBatch(out, short_records=short)
    idx = data_pos[:, None] + np.arange(hdr_len, dtype=np.int64)
    raw = buf[idx].reshape(n * hdr_len).view(header_dtype(linktype, byteorder))
    hdr = out["hdr"]
    for name in raw.dtype.names:
        hdr[name] = raw[name]
    data_cap = caplen - hdr_len
    out["caplen"] = data_cap
    take = np.minimum(data_cap, HEAD_BYTES)
    cols = np.arange(HEAD_BYTES, dtype=np.int64)
    mask = cols[None, :] < take[:, None]
    hidx = np.where(mask, data_pos[:, None] + hdr_len + cols, 0)
    out["head"] = np.where(mask, buf[hidx], 0)
    payloads: dict[int, bytes] = {}
    ctrl = np.flatnonzero((hdr["xfer"] == XFER_CONTROL) & (data_cap > 0))
    for i in ctrl.tolist():
        start = int(data_pos[i]) + hdr_len
        payloads[int(frames[i])] = buf[start : start + int(data_cap[i])].tobytes()
    return RecordBatch(out, payloads, short)


def concat(batches: list[RecordBatch]) -> RecordBatch:
    if not batches:
        return RecordBatch(np.zeros(0, dtype=RECORD))
    payloads: dict[int, bytes] = {}
    for b in batches:
        payloads.update(b.control_payloads)
    return RecordBatch(
        np.concatenate([b.records for b in batches]),
        payloads,
        sum(b.short_records for b in batches),
    )
