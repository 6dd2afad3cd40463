"""A tiny pcapng reader written for the synthetic-capture tests, independent of the project's own
reader and writer: it walks blocks with the tests' ``pcapng_blocks`` and decodes usbmon headers
field by field."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from pcapng_blocks import blocks, options

SHB, IDB, EPB, ISB = 0x0A0D0D0A, 0x1, 0x6, 0x5
CUSTOM = (0xBAD, 0x40000BAD)
USBMON = struct.Struct("<QBBBBHBBqiiII8siiII")


@dataclass
class Packet:
    frame: int
    ts_us: int  # from the Enhanced Packet Block
    caplen: int
    origlen: int
    urb_id: int
    kind: str  # "S" | "C"
    xfer: int
    endpoint: int
    device: int
    bus: int
    flag_setup: int
    flag_data: int
    hdr_ts_us: int  # from the usbmon header
    status: int
    urb_len: int
    data_len: int
    setup: bytes
    interval: int
    xfer_flags: int
    data: bytes

    @property
    def is_in(self) -> bool:
        return bool(self.endpoint & 0x80)


@dataclass
class Capture:
    linktype: int = -1
    snaplen: int = -1
    tsresol: int | None = None
    if_name: str = ""
    comment: str = ""
    packets: list[Packet] = field(default_factory=list)
    isb_drops: list[int] = field(default_factory=list)
    custom: list[tuple[int, bytes]] = field(default_factory=list)  # (PEN, payload)


def walk(path: Path | str) -> Capture:
    cap = Capture()
    frame = 0
    for btype, body in blocks(Path(path)):
        if btype == SHB:
            magic, major, _minor, _len = struct.unpack_from("<IHHq", body)
            assert (magic, major) == (0x1A2B3C4D, 1)
            cap.comment = options(body[16:]).get(1, b"").decode()
        elif btype == IDB:
            cap.linktype, _, cap.snaplen = struct.unpack_from("<HHI", body)
            opts = options(body[8:])
            cap.tsresol = opts[9][0] if 9 in opts else None
            cap.if_name = opts.get(2, b"").decode()
        elif btype == EPB:
            frame += 1
            _iface, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", body)
            pkt = body[20 : 20 + caplen]
            f = USBMON.unpack_from(pkt)
            cap.packets.append(
                Packet(
                    frame=frame,
                    ts_us=(hi << 32) | lo,
                    caplen=caplen,
                    origlen=origlen,
                    urb_id=f[0],
                    kind=chr(f[1]),
                    xfer=f[2],
                    endpoint=f[3],
                    device=f[4],
                    bus=f[5],
                    flag_setup=f[6],
                    flag_data=f[7],
                    hdr_ts_us=f[8] * 1_000_000 + f[9],
                    status=f[10],
                    urb_len=f[11],
                    data_len=f[12],
                    setup=f[13],
                    interval=f[14],
                    xfer_flags=f[16],
                    data=pkt[64:],
                )
            )
        elif btype == ISB:
            opts = options(body[12:])
            cap.isb_drops.append(struct.unpack("<Q", opts[5])[0])
        elif btype in CUSTOM:
            cap.custom.append((struct.unpack_from("<I", body)[0], body[4:]))
    return cap


@dataclass
class Urb:
    submit: Packet
    complete: Packet | None


def pair_urbs(packets: list[Packet]) -> list[Urb]:
    """Submit/completion pairs by URB id, in submit order; fails on an id reused in flight."""
    live: dict[int, Urb] = {}
    out: list[Urb] = []
    for p in packets:
        if p.kind == "S":
            assert p.urb_id not in live, f"frame {p.frame}: URB id reused while in flight"
            live[p.urb_id] = Urb(p, None)
            out.append(live[p.urb_id])
        else:
            urb = live.pop(p.urb_id, None)
            if urb is not None:
                urb.complete = p
    return out


@dataclass
class Transfer:
    tag: int
    length: int
    header: Urb | None
    chunks: list[Urb]


def out_transfers(urbs: list[Urb], multi_ep: bool = False) -> list[Transfer]:
    """The parsing rule of the protocol reference (§3.2): a header, then payload up to its length.
    Multi-EP: no headers; the endpoint (0x01/0x02/0x03) gives the tag, and a URB follows the
    previous one's transfer when that one was a full 1 MiB chunk on the same endpoint."""
    out: list[Transfer] = []
    current: Transfer | None = None
    got = 0
    for urb in urbs:
        s = urb.submit
        if s.xfer != 3 or s.is_in:
            continue
        if multi_ep:
            tag = {1: 0, 2: 1, 3: 2}[s.endpoint]
            last = out[-1] if out else None
            if last and last.tag == tag and last.chunks[-1].submit.urb_len == 1 << 20:
                last.chunks.append(urb)
                last.length += s.urb_len
            else:
                out.append(Transfer(tag, s.urb_len, None, [urb]))
            continue
        if current is None:
            assert s.urb_len == 8, f"frame {s.frame}: expected an 8-byte header"
            length, tag = struct.unpack_from("<IB", s.data)
            assert s.data[4] >> 4 == 0 and s.data[5:8] == b"\0\0\0"
            current, got = Transfer(tag, length, urb, []), 0
            out.append(current)
            continue
        current.chunks.append(urb)
        got += s.urb_len
        assert got <= current.length, f"frame {s.frame}: payload beyond the header length"
        if got == current.length:
            current = None
    assert current is None, "capture ends inside a transfer"
    return out
