"""Open a pcap or pcapng file and stream its usbmon records in numpy batches.

Memory stays bounded by the chunk size (plus the largest single block): the file is read in
chunks and each chunk becomes one ``RecordBatch``. Walking pcapng blocks is inherently sequential
(each block's length says where the next one starts), so ``_scan_pcapng`` finds the Enhanced Packet
Blocks of a chunk with a vectorised guess (every aligned word equal to the EPB type whose length
field is confirmed by the trailing length copy), then follows the real chain: where a guess run
is contiguous (each block ends where the next guessed block starts) it is taken whole; anywhere
else (other block types, payload bytes that happen to look like an EPB) a plain block-by-block
walk takes over until it lands on a guessed block again. A false guess inside a packet's payload is
therefore never used: the chain jumps over it.
"""

from __future__ import annotations

import io
import os
import select
import stat
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from usbtrace.errors import CaptureWarning, InputError
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.darwin import LINKTYPE_USB_DARWIN, DarwinConverter
from usbtrace.formats.metadata import METADATA_PEN, decode_metadata_payload
from usbtrace.formats.records import RecordBatch, concat, extract_usbmon
from usbtrace.formats.usbmon import HEADER_LEN_BY_LINKTYPE
from usbtrace.formats.usbmon_text import FORMAT_NAME as USBMON_TEXT
from usbtrace.formats.usbmon_text import UsbmonTextReader, looks_like
from usbtrace.formats.usbpcap import LINKTYPE_USBPCAP, UsbpcapConverter

# What the readers turn into usbmon records: usbmon (Linux), USBPcap (Windows), Darwin (macOS).
USB_LINKTYPES = (*HEADER_LEN_BY_LINKTYPE, LINKTYPE_USBPCAP, LINKTYPE_USB_DARWIN)
LINKTYPE_TEXT = -1  # the usbmon text format has no link type; its one pseudo-interface

# per batch: bounds the temporaries of each vectorised step (4 MiB: summarize on 14.4 M small
# records peaked at 190-194 MB, against 207-208 MB with 8 MiB, at the same speed)
CHUNK_BYTES = 4 << 20
MAX_BLOCK_BYTES = 256 << 20  # a larger length field is a lie, not a packet
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
MAX_COMMENTS = 1000
GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"  # the file name that means standard input
FIFO_WAIT_S = 60.0  # how long a FIFO nobody writes to is waited for
MAX_TSOFFSET_S = 9_000_000_000  # ~285 years: keeps offset + timestamp within int64 nanoseconds


@dataclass
class Interface:
    section: int
    linktype: int
    snaplen: int
    name: str | None = None
    tsresol: tuple[int, int] = (10, 6)  # (base, exponent): units are base**-exponent seconds
    tsoffset_s: int = 0
    received: int | None = None  # from the last Interface Statistics Block
    dropped: int | None = None

    @property
    def is_usbmon(self) -> bool:
        return self.linktype in HEADER_LEN_BY_LINKTYPE

    @property
    def is_usb(self) -> bool:
        """A USB interface usbtrace reads: usbmon binary or text, USBPcap, macOS."""
        return self.linktype in USB_LINKTYPES or self.linktype == LINKTYPE_TEXT


@dataclass
class CaptureInfo:
    path: str
    format: str = "pcapng"  # or "pcap", or "usbmon-text"
    size: int = 0
    sections: int = 0
    interfaces: list[Interface] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    custom_blocks: list[tuple[int, bytes]] = field(default_factory=list)  # (PEN, payload)
    metadata: list[dict] = field(default_factory=list)  # usbtrace metadata blocks, in file order
    packets: int = 0  # every packet record, usbmon or not
    non_usb_packets: int = 0
    short_records: int = 0  # packets too short for a usbmon header
    cut_at: int | None = None  # byte offset of an incomplete last block, if the file was cut
    bytes_read: int = 0  # so far: what a progress bar shows
    warnings: list[str] = field(default_factory=list)
    # USBPcap and macOS only: per (bus, device, endpoint, "S"/"C") packets, 0, data bytes, as
    # Wireshark counts their packets (USBPcap: several make one usbmon record); for ``verify``
    packet_sums: dict[tuple[int, int, int, str], list[int]] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(i.dropped or 0 for i in self.interfaces)


def _ts_to_ns(units: np.ndarray, iface: Interface) -> np.ndarray:
    base, exp = iface.tsresol
    units = units.astype(np.int64)
    if base == 10 and exp - 9 >= 19:
        # a garbage resolution option (finer than 1e-27 s): every timestamp is below 1 ns, and
        # 10**(exp - 9) no longer fits numpy's int64 (it raised OverflowError)
        ns = np.zeros(len(units), dtype=np.int64)
    elif base == 10:
        ns = units * 10 ** (9 - exp) if exp <= 9 else units // 10 ** (exp - 9)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            f = units.astype(np.float64) * (1e9 / float(base) ** exp)
        # a garbage resolution can take the product out of int64's range: clip, quietly (a
        # RuntimeWarning on stderr would break the one-line-error contract)
        ns = np.clip(np.nan_to_num(f), -9.2e18, 9.2e18).astype(np.int64)
    return ns + iface.tsoffset_s * 1_000_000_000


def _options(data: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(data):
        code, length = struct.unpack_from(order + "HH", data, pos)
        pos += 4
        if code == 0:
            return
        value = data[pos : pos + length]
        pos += length + (-length % 4)
        yield code, value


class _Reader:
    def __init__(
        self, path: Path, stream: BinaryIO, size: int, info: CaptureInfo, keep_data: bool
    ) -> None:
        self.path = path
        self.keep_data = keep_data
        self.stream = stream
        self.size = size
        self.info = info
        self.frame = 0
        self.order = "<"
        self.section_ifaces: list[Interface] = []
        self.warned_linktypes: set[int] = set()
        self.usbpcap = UsbpcapConverter(
            packet_sums=info.packet_sums, keep_data=keep_data, warn=self.warn
        )
        self.darwin = DarwinConverter(packet_sums=info.packet_sums, keep_data=keep_data)
        # damage found in a chunk: raised only after the chunk's good records were handed on
        self.error: InputError | None = None

    def fail(self, offset: int, message: str) -> InputError:
        return InputError(self.path, message, offset)

    def warn(self, message: str) -> None:
        """A capture warning: kept in ``CaptureInfo.warnings`` and said (``CaptureWarning``,
        naming the file), which ``inspect`` prints."""
        self.info.warnings.append(message)
        warnings.warn(f"{self.path}: {message}", CaptureWarning, stacklevel=3)

    # -- shared: turn packet positions into records --------------------------------------------

    def packets(
        self,
        buf: np.ndarray,
        iface_ids: np.ndarray,
        ts_units: np.ndarray | None,
        data_pos: np.ndarray,
        caplen: np.ndarray,
        frames: np.ndarray,
        base: int,
    ) -> list[RecordBatch]:
        out = []
        one = len(iface_ids) and (iface_ids == iface_ids[0]).all()  # the usual case
        for iid in [int(iface_ids[0])] if one else np.unique(iface_ids).tolist():
            if iid >= len(self.section_ifaces):
                first = int(data_pos[np.argmax(iface_ids == iid)])
                raise self.fail(base + first, f"packet refers to undefined interface {iid}")
            iface = self.section_ifaces[iid]
            sel = slice(None) if one else iface_ids == iid
            if not iface.is_usb:
                self.info.non_usb_packets += int(np.count_nonzero(iface_ids == iid))
                if iface.linktype not in self.warned_linktypes:
                    self.warned_linktypes.add(iface.linktype)
                    self.info.warnings.append(
                        f"interface {iid} has link type {iface.linktype}, not usbmon: skipped"
                    )
                continue
            ts_ns = (
                _ts_to_ns(ts_units[sel], iface)
                if ts_units is not None
                else np.zeros(len(data_pos[sel]), dtype=np.int64)
            )
            if iface.linktype == LINKTYPE_USBPCAP:
                batch = self.usbpcap.convert(buf, data_pos[sel], caplen[sel], ts_ns, frames[sel])
            elif iface.linktype == LINKTYPE_USB_DARWIN:
                batch = self.darwin.convert(buf, data_pos[sel], caplen[sel], ts_ns, frames[sel])
            else:
                batch = extract_usbmon(
                    buf,
                    data_pos[sel],
                    caplen[sel],
                    ts_ns,
                    frames[sel],
                    iface.linktype,
                    self.order,
                    self.keep_data,
                )
            if ts_units is None and len(batch):
                # simple packet blocks carry no timestamp; usbmon's own header has one
                h = batch.records["hdr"]
                batch.records["ts_ns"] = h["ts_sec"] * 1_000_000_000 + h["ts_usec"] * 1000
            self.info.short_records += batch.short_records
            out.append(batch)
        return out

    # -- pcapng ----------------------------------------------------------------------------------

    def pcapng(self, head: bytes = b"") -> Iterator[RecordBatch]:
        # one reusable buffer: unread bytes move to its front, the next chunk is read behind them;
        # it starts with the bytes format detection read (a pipe cannot be rewound)
        store = np.empty(max(CHUNK_BYTES * 2, len(head)), dtype=np.uint8)
        store[: len(head)] = np.frombuffer(head, dtype=np.uint8)
        held = len(head)  # bytes in store
        base = 0  # file offset of store[0]
        eof = False
        need = 0
        while True:
            if not eof:
                want = max(need, CHUNK_BYTES)
                if held + want > len(store):
                    grown = np.empty(held + want, dtype=np.uint8)
                    grown[:held] = store[:held]
                    store = grown
                got = _read_some(self.stream, store.data[held : held + want])
                self.info.bytes_read += got
                eof = got == 0
                held += got
            buf = store[:held]
            consumed, batches, need = self._scan_pcapng(buf, base, eof)
            yield from batches
            if self.error is not None:
                raise self.error
            # batches hold copies, never views of store, so it can be overwritten now
            store[: held - consumed] = store[consumed:held]
            held -= consumed
            base += consumed
            if eof and need:
                if held:
                    self.info.cut_at = base
                    msg = (
                        f"file ends in the middle of a block at byte {base} "
                        f"({held} bytes left over); decoded the complete prefix"
                    )
                    self.warn(msg)
                return
            if eof and not held:
                return

    def _scan_pcapng(self, buf: np.ndarray, base: int, eof: bool) -> tuple[int, list, int]:
        """Walk the complete blocks in ``buf``: (bytes consumed, batches, bytes still needed).

        On damage the batches before it are still returned, with the error in ``self.error``:
        a file that breaks off must yield the records of its readable prefix, and a chunk is
        4 MiB, i.e. the whole of most captures (found by fuzzing: every record was lost).
        """
        batches: list[RecordBatch] = []
        try:
            return self._walk_pcapng(buf, base, eof, batches)
        except InputError as exc:
            self.error = exc
            return 0, batches, 0

    def _walk_pcapng(
        self, buf: np.ndarray, base: int, eof: bool, batches: list[RecordBatch]
    ) -> tuple[int, list, int]:
        pos = 0
        limit = len(buf)
        words = buf[: limit - limit % 4].view(self.order + "u4")
        cpos, clen, breaks = self._candidates(words)
        nxt = cpos + clen
        while True:
            if pos + 12 > limit:
                return pos, batches, (12 if pos < limit or not eof else 0)
            i = int(np.searchsorted(cpos, pos))
            if i < len(cpos) and cpos[i] == pos and self.section_ifaces:
                k = int(np.searchsorted(breaks, i))
                j = int(breaks[k]) if k < len(breaks) else len(cpos) - 1
                self._epbs(buf, words, cpos[i : j + 1], clen[i : j + 1], base, batches)
                pos = int(nxt[j])
                continue
            btype, blen = (int(x) for x in words[pos // 4 : pos // 4 + 2])
            if btype == bt.BT_SHB:
                magic = bytes(buf[pos + 8 : pos + 12])
                order = (
                    "<"
                    if magic == b"\x4d\x3c\x2b\x1a"
                    else ">"
                    if magic == b"\x1a\x2b\x3c\x4d"
                    else None
                )
                if order is None:
                    raise self.fail(base + pos, "section header has no valid byte-order magic")
                if order != self.order:
                    self.order = order
                    return pos, batches, 0  # rescan from here with the section's byte order
                blen = int(words[pos // 4 + 1])
            if blen < 12 or blen % 4:
                raise self.fail(base + pos, f"block length {blen} is not a valid pcapng length")
            if blen > MAX_BLOCK_BYTES:
                raise self.fail(base + pos, f"block length {blen} is implausibly large")
            if pos + blen > limit:
                if eof:
                    return pos, batches, blen
                return pos, batches, blen - (limit - pos)
            trailer = int(words[(pos + blen) // 4 - 1])
            if trailer != blen:
                raise self.fail(
                    base + pos, f"block length {blen} disagrees with its trailing copy {trailer}"
                )
            body = bytes(buf[pos + 8 : pos + blen - 4])
            batches.extend(self._block(btype, body, buf, pos, blen, base))
            pos += blen

    def _candidates(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(words)
        if n < 8:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        w = np.flatnonzero(words[: n - 1] == bt.BT_EPB)
        length = words[w + 1].astype(np.int64)
        ok = (length >= 32) & ((length & 3) == 0) & (w + length // 4 <= n)
        w, length = w[ok], length[ok]
        ok = words[w + length // 4 - 1] == length
        cpos = w[ok] * 4
        clen = length[ok]
        breaks = np.flatnonzero(cpos[:-1] + clen[:-1] != cpos[1:])
        return cpos, clen, breaks

    def _epbs(
        self,
        buf: np.ndarray,
        words: np.ndarray,
        pos: np.ndarray,
        blen: np.ndarray,
        base: int,
        out: list[RecordBatch],
    ) -> None:
        w = pos // 4
        iface = words[w + 2].astype(np.int64)
        ts = (words[w + 3].astype(np.uint64) << np.uint64(32)) | words[w + 4].astype(np.uint64)
        caplen = words[w + 5].astype(np.int64)
        bad_len = caplen > blen - 32
        bad = bad_len | (iface >= len(self.section_ifaces))
        # the packets of the run before the first bad one are good: keep them, then fail
        k = int(np.argmax(bad)) if bad.any() else len(pos)
        frames = np.arange(self.frame + 1, self.frame + 1 + k, dtype=np.int64)
        self.frame += k
        self.info.packets += k
        if k:
            out.extend(self.packets(buf, iface[:k], ts[:k], pos[:k] + 28, caplen[:k], frames, base))
        if k < len(pos):
            at = base + int(pos[k])
            if bad_len[k]:
                raise self.fail(at, "packet's captured length is longer than its block")
            raise self.fail(at, f"packet refers to undefined interface {iface[k]}")

    def _block(
        self, btype: int, body: bytes, buf: np.ndarray, pos: int, blen: int, base: int
    ) -> list[RecordBatch]:
        o = self.order
        info = self.info
        if btype == bt.BT_SHB:
            info.sections += 1
            self.section_ifaces = []
            self._comments(body[16:])
        elif btype == bt.BT_IDB:
            if len(body) < 8:
                raise self.fail(base + pos, "interface description block is too short")
            linktype, _, snaplen = struct.unpack_from(o + "HHI", body)
            iface = Interface(section=info.sections, linktype=linktype, snaplen=snaplen)
            for code, value in _options(body[8:], o):
                if code == bt.OPT_IF_NAME:
                    iface.name = value.decode(errors="replace")
                elif code == bt.OPT_IF_TSRESOL and value:
                    v = value[0]
                    iface.tsresol = (2, v & 0x7F) if v & 0x80 else (10, v)
                elif code == 14 and len(value) == 8:  # if_tsoffset
                    offset = struct.unpack(o + "q", value)[0]
                    # an offset beyond +-285 years does not fit int64 nanoseconds (it raised
                    # OverflowError): garbage, so the timestamps are taken as written
                    if abs(offset) < MAX_TSOFFSET_S:
                        iface.tsoffset_s = offset
                    else:
                        info.warnings.append(f"interface timestamp offset {offset} s ignored")
                elif code == bt.OPT_COMMENT:
                    self._comment(value)
            self.section_ifaces.append(iface)
            info.interfaces.append(iface)
        elif btype == bt.BT_EPB:
            raise self.fail(base + pos, "enhanced packet block is malformed")
        elif btype in (bt.BT_SPB, 2):
            return self._odd_packet(btype, body, buf, pos, base)
        elif btype == bt.BT_ISB:
            if len(body) >= 12:
                iid = struct.unpack_from(o + "I", body)[0]
                if iid < len(self.section_ifaces):
                    iface = self.section_ifaces[iid]
                    for code, value in _options(body[12:], o):
                        if code == bt.OPT_ISB_IFRECV and len(value) == 8:
                            iface.received = struct.unpack(o + "Q", value)[0]
                        elif code == bt.OPT_ISB_IFDROP and len(value) == 8:
                            iface.dropped = struct.unpack(o + "Q", value)[0]
        elif btype in (bt.BT_CUSTOM_COPY, bt.BT_CUSTOM_NOCOPY) and len(body) >= 4:
            pen = struct.unpack_from(o + "I", body)[0]
            info.custom_blocks.append((pen, body[4:]))
            if pen == METADATA_PEN:
                meta = decode_metadata_payload(body[4:])
                if meta is not None:
                    info.metadata.append(meta)
        return []

    def _odd_packet(
        self, btype: int, body: bytes, buf: np.ndarray, pos: int, base: int
    ) -> list[RecordBatch]:
        o = self.order
        if btype == bt.BT_SPB:
            iface_id, ts = 0, None
            orig = struct.unpack_from(o + "I", body)[0] if len(body) >= 4 else 0
            snap = self.section_ifaces[0].snaplen if self.section_ifaces else 0
            caplen = min(orig, len(body) - 4, snap or orig)
            data_pos = pos + 12
        else:  # obsolete Packet Block
            if len(body) < 20:
                raise self.fail(base + pos, "packet block is too short")
            iface_id, _, hi, lo, caplen, _ = struct.unpack_from(o + "HHIIII", body)
            ts = np.array([(hi << 32) | lo], dtype=np.uint64)
            data_pos = pos + 28
            if caplen > len(body) - 20:
                raise self.fail(base + pos, "packet's captured length is longer than its block")
        self.frame += 1
        self.info.packets += 1
        return self.packets(
            buf,
            np.array([iface_id]),
            ts,
            np.array([data_pos], dtype=np.int64),
            np.array([caplen], dtype=np.int64),
            np.array([self.frame], dtype=np.int64),
            base,
        )

    def _comments(self, options: bytes) -> None:
        for code, value in _options(options, self.order):
            if code == bt.OPT_COMMENT:
                self._comment(value)

    def _comment(self, value: bytes) -> None:
        if len(self.info.comments) < MAX_COMMENTS:
            self.info.comments.append(value.decode(errors="replace").rstrip("\0"))

    # -- classic pcap ----------------------------------------------------------------------------

    def pcap(self, header: bytes) -> Iterator[RecordBatch]:
        magic_le = struct.unpack("<I", header[:4])[0]
        self.order = "<" if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic, _, _, _, _, snaplen, linktype = struct.unpack(self.order + "IHHiIII", header)
        exp = 9 if magic == PCAP_MAGIC_NS else 6
        iface = Interface(section=1, linktype=linktype & 0x0FFFFFFF, snaplen=snaplen)
        iface.tsresol = (10, exp)
        self.info.sections = 1
        self.info.interfaces.append(iface)
        self.section_ifaces = [iface]
        base = 24
        buf = np.zeros(0, dtype=np.uint8)
        rec = struct.Struct(self.order + "IIII")
        eof = False
        while True:
            chunk = bytearray(CHUNK_BYTES)
            data = b"" if eof else bytes(chunk[: _read_some(self.stream, memoryview(chunk))])
            self.info.bytes_read += len(data)
            eof = eof or not data
            if data:
                buf = np.concatenate([buf, np.frombuffer(data, dtype=np.uint8)])
            raw = buf.tobytes() if data or eof else b""
            starts, caps, ts = [], [], []
            pos, limit = 0, len(raw)
            while pos + 16 <= limit:
                sec, frac, incl, _orig = rec.unpack_from(raw, pos)
                if incl > MAX_BLOCK_BYTES:
                    # raised once the records before it have been handed on (a readable prefix)
                    self.error = self.fail(base + pos, f"record length {incl} is implausibly large")
                    break
                if pos + 16 + incl > limit:
                    break
                starts.append(pos + 16)
                caps.append(incl)
                ts.append(sec * 10**exp + frac)
                pos += 16 + incl
            if starts:
                n = len(starts)
                frames = np.arange(self.frame + 1, self.frame + 1 + n, dtype=np.int64)
                self.frame += n
                self.info.packets += n
                yield from self.packets(
                    buf,
                    np.zeros(n, dtype=np.int64),
                    np.array(ts, dtype=np.uint64),
                    np.array(starts, dtype=np.int64),
                    np.array(caps, dtype=np.int64),
                    frames,
                    base,
                )
            if self.error is not None:
                raise self.error
            buf = buf[pos:]
            base += pos
            if eof:
                if len(buf):
                    self.info.cut_at = base
                    msg = (
                        f"file ends in the middle of a record at byte {base}; "
                        "decoded the complete prefix"
                    )
                    self.warn(msg)
                return


def _fill(stream: Any, view: memoryview) -> int:
    """Read until ``view`` is full or the input ends: a pipe hands over what it has, so one
    short read does not mean the end of the file."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _read_some(stream: Any, view: memoryview) -> int:
    """Read what is there, up to ``len(view)``; 0 only at the end of the input. A live pipe
    (``dumpcap -w - | usbtrace inspect -``) is then decoded as its data arrives, rather than
    once 4 MiB have."""
    read1 = getattr(stream, "readinto1", None)
    if read1 is None or _is_regular(stream):
        return _fill(stream, view)  # a file: full reads (one read may still come back short)
    got = 0
    while got < len(view):
        n = read1(view[got:])
        if n is None:  # a non-blocking stream with nothing yet
            time.sleep(0.01)
            continue
        got += n
        # go on while more is waiting (a pipe hands over 64 KiB at a time), not for more
        if not n or not select.select([stream], [], [], 0)[0]:
            break
    return got


def _is_regular(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return True  # an in-memory stream: read like a file


def _wait_for_writer(path: Path, fd: int, wait_s: float, notify: Callable[[str], None]) -> None:
    """A FIFO opened without blocking: wait (bounded) until a writer has sent data or gone."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    if poller.poll(200):
        return
    notify(f"usbtrace: {path}: waiting up to {wait_s:g} s for a writer on this FIFO")
    if not poller.poll(max(0, int((wait_s - 0.2) * 1000))):
        raise InputError(path, f"no writer opened this FIFO within {wait_s:g} s")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_source(
    path: str | Path,
    *,
    fifo_wait_s: float | None = None,
    notify: Callable[[str], None] = _stderr,
) -> tuple[BinaryIO, int, str]:
    """Open a capture for reading: (stream, size in bytes or 0 when unknown, name to report).

    The only place a capture is opened. ``-`` is standard input; a FIFO is opened without
    blocking and waited for (``FIFO_WAIT_S``), since a FIFO nobody writes to would otherwise
    block forever. Pipes and FIFOs are read as streams: nothing is ever seeked.
    """
    if str(path) == STDIN:
        if sys.stdin is None:  # fd 0 closed (`<&-`): Python gives no stream at all
            raise InputError("-", "standard input is closed, not a capture (pipe one in)")
        if sys.stdin.isatty():
            raise InputError("-", "standard input is a terminal, not a capture (pipe one in)")
        return sys.stdin.buffer, 0, "-"
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a directory, not a capture file")
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                _wait_for_writer(
                    path, fd, FIFO_WAIT_S if fifo_wait_s is None else fifo_wait_s, notify
                )
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            return open(fd, "rb"), 0, str(path)
        stream: BinaryIO = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    return stream, os.fstat(stream.fileno()).st_size, str(path)


def detect_format(head: bytes) -> str | None:
    """The capture format, by content (magic bytes): "pcapng", "pcap" or None. New readers add
    their magic here."""
    magic = struct.unpack("<I", head[:4].ljust(4, b"\0"))[0]
    if magic == bt.BT_SHB:
        return "pcapng"
    if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or magic in (
        int.from_bytes(PCAP_MAGIC_US.to_bytes(4, "little"), "big"),
        int.from_bytes(PCAP_MAGIC_NS.to_bytes(4, "little"), "big"),
    ):
        return "pcap"
    return None


class _Prefixed(io.RawIOBase):
    """A stream that cannot be rewound, with the bytes format detection read put back."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self.prefix, self.stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        return self.stream.readinto(b)


class Capture:
    """An open capture (a file, a FIFO or a pipe). Iterate ``batches()`` once; ``info`` fills
    in as blocks are read, and ``info.bytes_read`` counts what was read (for progress bars).

    ``keep_data`` keeps every record's captured data in ``RecordBatch.data`` (memory grows with
    the bytes captured: for replaying a recording, not for analysis).
    """

    def __init__(
        self,
        source: str | Path | BinaryIO,
        name: str | None = None,
        *,
        keep_data: bool = False,
    ) -> None:
        if isinstance(source, (str, Path)):
            self.stream, size, shown = open_source(source)
        else:
            self.stream, size, shown = source, 0, name or "-"
        self.path = Path(name or shown)
        first = bytearray(24)
        head = bytes(first[: _fill(self.stream, memoryview(first))])
        self.info = CaptureInfo(path=str(self.path), size=size)
        self.info.bytes_read = len(head)
        self._reader = _Reader(self.path, self.stream, size, self.info, keep_data)
        self._head = head
        if not head:
            self.close()
            raise InputError(self.path, "is empty", 0)
        fmt = detect_format(head)
        if fmt == "pcap" and len(head) < 24:
            self.close()
            raise InputError(self.path, "pcap file header is cut short", len(head))
        if fmt is None:
            more = bytearray(200)
            head += bytes(more[: _fill(self.stream, memoryview(more))])
            self.info.bytes_read = len(head)
            if looks_like(head):
                fmt = USBMON_TEXT
                self.info.sections = 1
                self.info.interfaces.append(Interface(1, LINKTYPE_TEXT, 0, name="usbmon text"))
                # the text reader starts from the first byte: put back what was read
                self._text_stream = io.BufferedReader(_Prefixed(head, self.stream))
        if fmt is None and head.startswith(GZIP_MAGIC):
            # Wireshark reads compressed captures, so such files are about: say what they are
            self.close()
            raise InputError(
                self.path, "is gzip-compressed, which usbtrace does not read: gunzip it first", 0
            )
        if fmt is None:
            self.close()
            raise InputError(
                self.path,
                "is not a pcap or pcapng capture (unknown magic) nor usbmon text",
                0,
            )
        self.info.format = fmt

    def batches(self) -> Iterator[RecordBatch]:
        try:
            if self.info.format == "pcapng":
                yield from self._reader.pcapng(self._head)
            elif self.info.format == USBMON_TEXT:
                text = UsbmonTextReader(self.path, self._text_stream, self._reader.keep_data)
                for batch in text.batches():
                    self.info.packets = text.events
                    yield batch
                self.info.packets = text.events
            else:
                yield from self._reader.pcap(self._head)
        finally:
            self.close()
        if not self.info.interfaces:
            raise InputError(self.path, "holds no interface description: not a usable capture")
        if not any(i.is_usb for i in self.info.interfaces):
            linktypes = sorted({i.linktype for i in self.info.interfaces})
            raise InputError(
                self.path,
                f"link type {', '.join(map(str, linktypes))} is not usbmon (189 or 220) "
                f"nor USBPcap ({LINKTYPE_USBPCAP}) nor macOS USB ({LINKTYPE_USB_DARWIN})",
            )

    def close(self) -> None:
        if self.stream is not getattr(sys.stdin, "buffer", None):
            self.stream.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# How far ``trailing_custom_blocks`` walks back from the end of a file: the runner appends one
# metadata block (at most ``metadata.MAX_METADATA_BYTES``) after dumpcap's last block.
TRAILING_BLOCKS_MAX = 16
TRAILING_BYTES_MAX = 20 << 20


def trailing_custom_blocks(cap: Capture) -> tuple[list[tuple[int, bytes]], bool] | None:
    """The custom blocks (PEN, payload) at the end of a pcapng file, read before it streams.

    pcapng blocks carry their total length at both ends, so the last blocks are walked back
    from the end of the file (``os.pread``: the stream's position is not moved), at most
    ``TRAILING_BLOCKS_MAX`` blocks or ``TRAILING_BYTES_MAX`` bytes. The bool says whether the
    walk reached the block before them (the run of custom blocks is complete). None when it
    cannot be known: not a pcapng regular file, or a length that does not check out (untrusted
    input: every length is validated, and nothing raises).
    """
    head = cap._head
    if cap.info.format != "pcapng" or len(head) < 12:
        return None
    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(head[8:12])
    try:
        fd = cap.stream.fileno()
        size = os.fstat(fd).st_size
        if order is None or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        blocks: list[tuple[int, bytes]] = []
        end, walked = size, 0
        while len(blocks) < TRAILING_BLOCKS_MAX:
            if end < 12:
                break
            (length,) = struct.unpack(order + "I", os.pread(fd, 4, end - 4).rjust(4, b"\0"))
            if length < 12 or length % 4 or length > end or walked + length > TRAILING_BYTES_MAX:
                break
            start = end - length
            lead = os.pread(fd, 8, start)
            if len(lead) < 8:
                break
            btype, again = struct.unpack(order + "II", lead)
            if again != length:
                break
            if btype not in (bt.BT_CUSTOM_COPY, bt.BT_CUSTOM_NOCOPY):
                blocks.reverse()
                return blocks, True
            body = os.pread(fd, length - 12, start + 8)
            if len(body) < length - 12:
                break
            if len(body) >= 4:  # as the reader takes it: the PEN, then the payload
                blocks.append((struct.unpack_from(order + "I", body)[0], body[4:]))
            end, walked = start, walked + length
    except (OSError, ValueError, AttributeError):
        return None
    if end == size:
        return None  # not even the last block checked out
    blocks.reverse()
    return blocks, False


def read_all(path: str | Path) -> tuple[RecordBatch, CaptureInfo]:
    """Every usbmon record of a (small) capture in one batch. Tests and small files only."""
    cap = Capture(path)
    batch = concat(list(cap.batches()))
    return batch, cap.info
