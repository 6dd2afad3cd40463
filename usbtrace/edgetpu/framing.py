"""Cut the bulk-OUT stream into logical transfers (single-EP mode: 8-byte header + payload URBs).

The driver writes one header (u32 length of the whole logical transfer, tag in byte 4) and then
payload URBs whose lengths add up to exactly that length; the next header is submitted only after
all of those. So the device's bulk-OUT submits on 0x01, in submit order, are a stream: with no
transfer open the next URB must be a header, after that URBs are payload until the length is
reached. An 8-byte payload URB is never mistaken for a header, because it is only read as one
when no transfer is open.

What can go wrong, and what is done (each is flagged on the transfer, never silently attributed):
* a URB where a header is due is not a valid header (capture started mid-transfer, dropped
  frames): it is counted as unframed and skipped, and the next URB is tried as a header;
* a payload URB overshoots the bytes the header announced (dropped frames): the transfer is closed
  as inconsistent and the overshooting URB is re-examined as a possible header;
* the capture ends before the payload is complete: the transfer stays incomplete.

Multi-EP mode (no headers; the endpoint gives the tag): URBs on one endpoint form one transfer
until a URB shorter than the driver's 1 MiB chunk size ends it. That boundary rule is inferred
from the driver source, not seen on a capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    HEADER_LEN,
    MAX_BULK_OUT_CHUNK,
    MULTI_EP_TAG_BY_ENDPOINT,
)

ROLE_HEADER = 0
ROLE_PAYLOAD = 1
ROLE_UNFRAMED = 2


def parse_header(urb_len: int, cap: int, head: np.ndarray) -> tuple[int, int] | None:
    """(length, tag) of an 8-byte bulk-OUT header, or None when these bytes cannot be one."""
    if urb_len != HEADER_LEN or cap < HEADER_LEN:
        return None
    b = head[:HEADER_LEN].tolist()
    if b[4] > 7 or b[5] or b[6] or b[7]:
        return None
    return b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24, b[4]


@dataclass(slots=True)
class OpenTransfer:
    index: int
    tag: int
    length: int
    endpoint: int
    header_frame: int  # 0 in multi-EP mode
    submitted: int = 0
    problem: str | None = None


@dataclass
class OutFramer:
    """Per device; feed its bulk-OUT submits in frame order, batch after batch."""

    multi_ep: bool = False
    transfers: list[OpenTransfer] = field(default_factory=list)
    # per submit: frame, transfer index (-1 unframed), role
    frames: list[np.ndarray] = field(default_factory=list)
    tidx: list[np.ndarray] = field(default_factory=list)
    roles: list[np.ndarray] = field(default_factory=list)
    unframed: int = 0
    valid_headers: int = 0
    _open: OpenTransfer | None = None
    _open_by_ep: dict[int, OpenTransfer] = field(default_factory=dict)

    def feed(
        self,
        frame: np.ndarray,
        ep: np.ndarray,
        length: np.ndarray,
        cap: np.ndarray,
        head: np.ndarray,
    ) -> None:
        n = len(frame)
        tidx = np.full(n, -1, dtype=np.int64)
        roles = np.full(n, ROLE_UNFRAMED, dtype=np.int8)
        fl, el, ll, cl = frame.tolist(), ep.tolist(), length.tolist(), cap.tolist()
        for i in range(n):
            if self.multi_ep or (el[i] != EP_BULK_OUT and el[i] in MULTI_EP_TAG_BY_ENDPOINT):
                t = self._multi(el[i], ll[i], fl[i])
                tidx[i], roles[i] = t.index, ROLE_PAYLOAD
                continue
            cur = self._open
            if cur is not None:
                if cur.submitted + ll[i] <= cur.length:
                    cur.submitted += ll[i]
                    tidx[i], roles[i] = cur.index, ROLE_PAYLOAD
                    if cur.submitted == cur.length:
                        self._open = None
                    continue
                cur.problem = (
                    f"payload overshoots the header: {cur.submitted} of {cur.length} bytes, "
                    f"then a {ll[i]}-byte URB (frame {fl[i]})"
                )
                self._open = None
            hdr = parse_header(ll[i], cl[i], head[i])
            if hdr is None:
                self.unframed += 1
                continue
            self.valid_headers += 1
            t = OpenTransfer(len(self.transfers), hdr[1], hdr[0], EP_BULK_OUT, fl[i])
            self.transfers.append(t)
            tidx[i], roles[i] = t.index, ROLE_HEADER
            if t.length > 0:
                self._open = t
        self.frames.append(frame.astype(np.int64))
        self.tidx.append(tidx)
        self.roles.append(roles)

    def _multi(self, ep: int, length: int, frame: int) -> OpenTransfer:
        t = self._open_by_ep.get(ep)
        if t is None:
            t = OpenTransfer(
                len(self.transfers), int(MULTI_EP_TAG_BY_ENDPOINT.get(ep, 0)), 0, ep, 0
            )
            self.transfers.append(t)
            self._open_by_ep[ep] = t
        t.submitted += length
        t.length = t.submitted  # no header: the transfer is what was sent
        if length < MAX_BULK_OUT_CHUNK:
            del self._open_by_ep[ep]
        return t

    def assignments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.frames:
            z = np.zeros(0, dtype=np.int64)
            return z, z, np.zeros(0, dtype=np.int8)
        return np.concatenate(self.frames), np.concatenate(self.tidx), np.concatenate(self.roles)
