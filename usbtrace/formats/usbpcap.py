"""USBPcap captures (Windows; link type 249) read into the same usbmon-shaped records as Linux.

USBPcap records one packet each time an I/O request packet (IRP) carrying an URB passes its filter:
on the way down to the host controller (FDO -> PDO: the submission) and on the way back (PDO -> FDO:
the completion), told apart by bit 0 of the packet's ``info`` byte. Every packet starts with a
27-byte little-endian header (length of the whole pseudo-header, IRP id, USBD_STATUS, URB function,
info, bus, 16-bit device address, endpoint, transfer type, data length); control packets add a stage
byte, isochronous ones their packet table. The transfer data follows at ``headerLen``.

Each packet becomes one usbmon record (``records.RECORD``), so pairing and everything above see
URBs exactly as from usbmon: the IRP id is the URB id, submissions are ``S`` with status
-EINPROGRESS, completions ``C`` with the USBD_STATUS mapped to the -errno usbmon would show.

Control transfers come in stages. USBPcap 1.5 and later write a SETUP packet (the 8-byte setup
packet followed by any OUT data) and a COMPLETE packet (any IN data). Earlier versions wrote SETUP,
an optional DATA packet, and STATUS; those are folded into one submission (SETUP + OUT DATA) and one
completion (IN DATA, else STATUS). Versions before 1.3 marked the OUT DATA packet as a completion;
as Wireshark does, a DATA packet to endpoint 0x00 is taken as part of the submission.

What USBPcap does not carry (see the README's format table): the length a read asked for (its
submission carries no length), the actual length of an OUT transfer (its completion carries none),
interval, start frame and transfer flags; device addresses above 255 are cut to 8 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from usbtrace.formats.records import (
    RECORD,
    PacketSums,
    RecordBatch,
    gather_heads,
    payloads_of,
    tally_packets,
)
from usbtrace.formats.status import StatusMap
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_CONTROL,
)

LINKTYPE_USBPCAP = 249

INFO_PDO_TO_FDO = 0x01  # set on the way back: a completion
STAGE_SETUP = 0
STAGE_DATA = 1
STAGE_STATUS = 2
STAGE_COMPLETE = 3
TRANSFER_IRP_INFO = 0xFE  # an IRP without a transfer (e.g. ABORT_PIPE): not an URB
TRANSFER_UNKNOWN = 0xFF
SETUP_LEN = 8

URB_FUNCTION_CONTROL_TRANSFER = 0x0008
URB_FUNCTION_BULK_OR_INTERRUPT_TRANSFER = 0x0009
URB_FUNCTION_ISOCH_TRANSFER = 0x000A

# Old-style control IRPs whose IN DATA came and whose STATUS is still to come: a real capture
# holds a few at a time; a crafted one could send IN DATA without STATUS for ever
MAX_IN_DATA_PENDING = 1024

# The base header plus the control stage byte (packed, little-endian, as USBPcap writes it).
HEADER = np.dtype(
    [
        ("header_len", "<u2"),
        ("irp_id", "<u8"),
        ("status", "<u4"),
        ("function", "<u2"),
        ("info", "u1"),
        ("bus", "<u2"),
        ("device", "<u2"),
        ("endpoint", "u1"),
        ("transfer", "u1"),
        ("data_len", "<u4"),
        ("stage", "u1"),
    ]
)
BASE_LEN = 27
CONTROL_LEN = 28
assert HEADER.itemsize == CONTROL_LEN

# USBD_STATUS -> the -errno Linux reports for the same outcome (drivers/usb/host/*), so a
# cancelled read is -ENOENT as on Linux and not counted as an error. Codes without a Linux
# counterpart keep their own value (as a negative int32), which still shows as an error.
USBD_TO_ERRNO = {
    0x00000000: 0,  # SUCCESS
    0xC0010000: -2,  # CANCELED -> ENOENT (killed URB)
    0xC0000004: -32,  # STALL_PID -> EPIPE
    0xC0000030: -32,  # ENDPOINT_HALTED -> EPIPE
    0xC0000001: -84,  # CRC -> EILSEQ
    0xC0000003: -84,  # DATA_TOGGLE_MISMATCH -> EILSEQ
    0xC0000002: -71,  # BTSTUFF -> EPROTO
    0xC0000005: -71,  # DEV_NOT_RESPONDING -> EPROTO
    0xC0000011: -71,  # XACT_ERROR -> EPROTO
    0xC0000008: -75,  # DATA_OVERRUN -> EOVERFLOW
    0xC0000012: -75,  # BABBLE_DETECTED -> EOVERFLOW
    0xC0000009: -121,  # DATA_UNDERRUN -> EREMOTEIO
    0xC000000C: -70,  # BUFFER_OVERRUN -> ECOMM
    0xC000000D: -63,  # BUFFER_UNDERRUN -> ENOSR
    0xC0006000: -110,  # TIMEOUT -> ETIMEDOUT
    0xC0007000: -19,  # DEVICE_GONE -> ENODEV
}
_STATUS = StatusMap(USBD_TO_ERRNO)


def usbd_to_errno(status: np.ndarray) -> np.ndarray:
    """USBD_STATUS values (uint32) as usbmon statuses (int32)."""
    return _STATUS.to_errno(status)


def errno_to_usbd(status: int) -> int:
    """A usbmon status as the USBD_STATUS USBPcap would show (for the project's writer)."""
    return _STATUS.from_errno(status)


@dataclass
class UsbpcapConverter:
    """Turns batches of USBPcap packets into usbmon records; one per capture (keeps state).

    State spans batches only for old-style control stages: IRPs whose IN DATA packet became the
    completion (their STATUS packet is then dropped), at most ``MAX_IN_DATA_PENDING`` of them.
    """

    # (IRP id, bus, device) -> None: a set that remembers its order, so the oldest can go
    in_data_seen: dict[tuple[int, int, int], None] = field(default_factory=dict)
    in_data_forgotten: int = 0  # IRPs let go of because too many were waiting for STATUS
    dropped_stage_packets: int = 0  # old-style OUT DATA whose SETUP was in an earlier batch
    skipped: int = 0  # IRP_INFO / unknown packets: not transfers
    # per (bus, device, endpoint, "S"/"C" by the info bit): packets, 0, sum of data length, as
    # Wireshark's fields show them (what ``verify`` compares)
    packet_sums: PacketSums = field(default_factory=dict)
    keep_data: bool = False  # every record's captured data in ``RecordBatch.data`` (replay)
    # says a capture warning (``_Reader.warn``: ``CaptureInfo.warnings`` and on stderr)
    warn: Callable[[str], None] = field(default=lambda message: None)

    def convert(
        self,
        buf: np.ndarray,
        data_pos: np.ndarray,
        caplen: np.ndarray,
        ts_ns: np.ndarray,
        frames: np.ndarray,
    ) -> RecordBatch:
        ok = caplen >= BASE_LEN
        short = int(np.count_nonzero(~ok))
        if short:
            data_pos, caplen, ts_ns, frames = data_pos[ok], caplen[ok], ts_ns[ok], frames[ok]
        n = len(data_pos)
        if n == 0:
            return RecordBatch(np.zeros(0, dtype=RECORD), short_records=short)
        idx = data_pos[:, None] + np.arange(CONTROL_LEN, dtype=np.int64)
        np.minimum(idx, len(buf) - 1, out=idx)
        h = np.ascontiguousarray(buf[idx]).view(HEADER).reshape(n)
        hlen = h["header_len"].astype(np.int64)
        # a header length that is too short or runs past the captured bytes is a lie: skip
        sane = (hlen >= BASE_LEN) & (hlen <= caplen)
        sane &= (h["transfer"] != XFER_CONTROL) | (hlen >= CONTROL_LEN)
        self._tally(h[sane])
        good = sane & (h["transfer"] <= 3)
        short += int(np.count_nonzero(~sane))
        self.skipped += int(np.count_nonzero(sane & ~good))
        if not good.all():
            h, hlen = h[good], hlen[good]
            data_pos, caplen = data_pos[good], caplen[good]
            ts_ns, frames = ts_ns[good], frames[good]
        n = len(h)
        if n == 0:
            return RecordBatch(np.zeros(0, dtype=RECORD), short_records=short)
        start = data_pos + hlen  # first data byte
        cap = caplen - hlen  # data bytes in the file
        dlen = h["data_len"].astype(np.int64)  # data bytes the packet had
        completion = (h["info"] & INFO_PDO_TO_FDO) != 0
        ctrl = h["transfer"] == XFER_CONTROL
        stage = np.where(ctrl, h["stage"], 255)
        # before USBPcap 1.3 the OUT DATA stage was marked PDO -> FDO
        completion &= ~(ctrl & (stage == STAGE_DATA) & (h["endpoint"] == 0))
        setup_pkt = ctrl & (stage == STAGE_SETUP) & (cap >= SETUP_LEN)

        out = np.zeros(n, dtype=RECORD)
        hdr = out["hdr"]
        out["frame"] = frames
        out["ts_ns"] = ts_ns
        hdr["urb_id"] = h["irp_id"]
        hdr["type"] = np.where(completion, URB_COMPLETE, URB_SUBMIT)
        hdr["xfer"] = h["transfer"]
        hdr["epnum"] = h["endpoint"]
        hdr["devnum"] = h["device"] & 0xFF
        hdr["busnum"] = h["bus"]
        sec, nsec = np.divmod(ts_ns, 1_000_000_000)
        hdr["ts_sec"] = sec
        hdr["ts_usec"] = nsec // 1000
        hdr["status"] = np.where(completion, usbd_to_errno(h["status"]), STATUS_IN_PROGRESS)
        # the setup packet leads a SETUP packet's data; any OUT data follows it
        skip = np.where(setup_pkt, SETUP_LEN, 0)
        if setup_pkt.any():
            sidx = start[setup_pkt][:, None] + np.arange(SETUP_LEN)
            hdr["setup"][setup_pkt] = buf[sidx]
            hdr["flag_setup"] = np.where(setup_pkt, 0, ord("-"))
        else:
            hdr["flag_setup"] = ord("-")
        start = start + skip
        cap = np.maximum(cap - skip, 0)
        dlen = np.maximum(dlen - skip, 0)
        # urb_len: what was offered (OUT submission) or moved (IN completion); a control
        # submission asks for wLength
        wlength = hdr["setup"][:, 6].astype(np.int64) | hdr["setup"][:, 7].astype(np.int64) << 8
        hdr["urb_len"] = np.where(setup_pkt, wlength, dlen)
        hdr["data_len"] = dlen
        hdr["flag_data"] = np.where(dlen > 0, 0, np.where(completion, ord(">"), ord("<")))
        out["caplen"] = cap
        out["head"] = gather_heads(buf, start, cap)
        payloads = payloads_of(buf, ctrl, start, cap, frames)
        drop = self._old_stages(out, stage, completion, payloads) if ctrl.any() else None
        if drop is not None and drop.any():
            out = out[~drop]
        kept: dict[int, bytes] = {}
        if self.keep_data:
            # control data is in payloads, already moved to the packet that stays of its IRP
            kept = payloads_of(buf, ~ctrl, start, cap, frames)
            kept.update(payloads)
        return RecordBatch(out, payloads, short, kept)

    def _old_stages(
        self,
        out: np.ndarray,
        stage: np.ndarray,
        completion: np.ndarray,
        payloads: dict[int, bytes],
    ) -> np.ndarray | None:
        """Fold the DATA and STATUS packets of USBPcap before 1.5 into submission/completion.

        Control transfers are rare (a few hundred per capture), so a plain loop is fine here.
        """
        old = np.flatnonzero((stage == STAGE_DATA) | (stage == STAGE_STATUS))
        if not len(old):
            return None
        hdr = out["hdr"]
        drop = np.zeros(len(out), dtype=bool)
        setups: dict[tuple[int, int, int], int] = {}  # the latest SETUP row of each IRP
        for i in np.flatnonzero(stage <= STAGE_STATUS).tolist():
            key = (int(hdr["urb_id"][i]), int(hdr["busnum"][i]), int(hdr["devnum"][i]))
            if stage[i] == STAGE_SETUP:
                setups[key] = i
                continue
            frame = int(out["frame"][i])
            if stage[i] == STAGE_DATA and not completion[i]:
                # OUT data: belongs to its SETUP packet's submission
                drop[i] = True
                j = setups.pop(key, None)
                if j is None:
                    self.dropped_stage_packets += 1
                    payloads.pop(frame, None)
                    continue
                hdr["data_len"][j] = hdr["data_len"][i]
                hdr["flag_data"][j] = 0
                out["caplen"][j] = out["caplen"][i]
                out["head"][j] = out["head"][i]
                if frame in payloads:
                    payloads[int(out["frame"][j])] = payloads.pop(frame)
            elif stage[i] == STAGE_DATA:
                # IN data: this packet is the completion; its STATUS packet is dropped
                # an id seen again is the newest, not the oldest, of those waiting
                self.in_data_seen.pop(key, None)
                self.in_data_seen[key] = None
                if len(self.in_data_seen) > MAX_IN_DATA_PENDING:
                    self._forget_oldest()
            elif key in self.in_data_seen:
                del self.in_data_seen[key]
                drop[i] = True
        return drop

    def _forget_oldest(self) -> None:
        del self.in_data_seen[next(iter(self.in_data_seen))]
        if not self.in_data_forgotten:
            self.warn(
                f"more than {MAX_IN_DATA_PENDING} control transfers had IN data and no STATUS "
                "stage yet (USBPcap before 1.5): the oldest were let go of, and a STATUS "
                "stage that still comes for one is read as a second completion"
            )
        self.in_data_forgotten += 1

    def _tally(self, h: np.ndarray) -> None:
        tally_packets(
            self.packet_sums,
            h["bus"],
            h["device"],
            h["endpoint"],
            (h["info"] & INFO_PDO_TO_FDO) != 0,
            h["data_len"],
        )
