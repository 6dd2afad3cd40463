"""Break valid captures the ways real ones break, and say what the analyzer must still deliver.

A case is one valid base (an Edge TPU session, maybe with a hub, a second Edge TPU or a device that
re-enumerates, in one of the valid layouts) plus one to three mutations: record-level ones applied
before encoding (reordered or negative timestamps, reused URB ids, lost submits or completions,
headers whose lengths lie, garbage events and outputs, random header fields, floods of unanswered
bulk-IN submits) and byte-level ones applied after (truncation near block boundaries, lying block
and captured lengths, a flipped byte-order magic, unknown block and link types, zero and huge
lengths, bit flips, spliced and deleted ranges).

Each case also carries what must hold beyond "no traceback, documented exit status": whether a
result is still owed (the damage lies after the first complete inference) and whether the
integrity verdict must list a problem (a cut or a lying length).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lab.fuzzing.session import edgetpu_session, hub_traffic, merge
from lab.usb.record import UsbRecord
from lab.usb.writer import Encoded, Layout, encode, idb
from usbtrace.edgetpu.constants import (
    CSR_MULTI_BO_EP,
    CSR_REQUEST_64,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INPUT_OUT,
    EP_OUTPUT_IN,
    EP_PARAM_OUT,
    HEADER_LEN,
    REQTYPE_VENDOR_OUT,
)
from usbtrace.edgetpu.wire import encode_header
from usbtrace.formats import pcapng_writer as bt
from usbtrace.formats.metadata import METADATA_MAGIC, METADATA_PEN
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
)

U32_LIES = (0, 4, 8, 12, 16, 0x7FFFFFFC, 0xFFFFFFFC, 0xFFFFFFFF, 0x10000000, 1 << 28)


@dataclass
class Case:
    seed: int
    base: str
    layout: Layout
    data: bytes
    mutations: list[str] = field(default_factory=list)
    expect_result: bool = True  # an inference before any damage must be reported
    expect_problem: bool = False  # if reported, the integrity verdict must not be "ok"


# -- the valid bases -------------------------------------------------------------------------------


def _layout(rng: random.Random) -> Layout:
    if rng.random() < 0.2:
        return Layout(
            format="pcap",
            order=rng.choice("<>"),
            linktype=rng.choice((189, 220)),
            tsresol_exp=rng.choice((6, 9)),
        )
    return Layout(
        order=rng.choice("<<<>"),
        linktype=rng.choice((220, 220, 220, 189)),
        tsresol_exp=rng.choice((6, 6, 9, 3)),
        statistics=rng.random() < 0.7,
        sections=rng.choice((1, 1, 1, 2, 3)),
    )


def base_records(rng: random.Random) -> tuple[str, list[UsbRecord], int]:
    """(name, records, index of the record completing the first inference or -1)."""
    kind = rng.choice(
        ("plain", "plain", "streamed", "hub", "two-tpus", "re-enumerated", "empty", "no-descriptor")
    )
    s = edgetpu_session(
        rng,
        enumerate_device=kind != "no-descriptor",
        inferences=rng.randint(1, 4),
        streamed=1_100_000 if kind == "streamed" else 0,
        cached=rng.choice((4096, 200_000, 1_048_576 + 512)),
    )
    recs = s.records
    done_rec = recs[s.first_inference_done]
    if kind == "empty":
        return kind, [], -1
    if kind == "hub":
        recs = merge(recs, hub_traffic(rng, recs[0].ts_ns, recs[-1].ts_ns))
    elif kind == "two-tpus":
        other = edgetpu_session(rng, dev=7, t0_ns=recs[0].ts_ns + 3_000_000, inferences=2)
        recs = merge(recs, other.records)
    elif kind == "re-enumerated":
        # the device drops off and comes back at a new address, then runs one more inference
        again = edgetpu_session(rng, dev=5, t0_ns=recs[-1].ts_ns + 50_000_000, inferences=1)
        recs = recs + again.records
    return kind, recs, recs.index(done_rec)


# -- record-level mutations ------------------------------------------------------------------------


def _pick(rng: random.Random, recs: list[UsbRecord], pred: Callable[[UsbRecord], bool]) -> int:
    idx = [i for i, r in enumerate(recs) if pred(r)]
    return rng.choice(idx) if idx else -1


def m_timestamps(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = rng.randrange(len(recs))
    how = rng.choice(("back", "negative", "zero", "far"))
    dt = {"back": -rng.randint(1, 10**9), "far": 10**18}.get(how, 0)
    recs[i] = replace(
        recs[i], ts_ns={"negative": -rng.randint(1, 10**12), "zero": 0}.get(how, recs[i].ts_ns + dt)
    )
    return f"timestamp {how} at record {i}"


def m_swap(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = rng.randrange(len(recs))
    j = min(len(recs) - 1, i + rng.randint(1, 6))
    recs[i], recs[j] = recs[j], recs[i]
    return f"records {i} and {j} swapped"


def m_urb_ids(rng: random.Random, recs: list[UsbRecord]) -> str:
    uid = rng.choice((0, recs[rng.randrange(len(recs))].urb_id, rng.getrandbits(64)))
    idx = rng.sample(range(len(recs)), min(len(recs), rng.randint(2, 12)))
    for i in idx:
        recs[i] = replace(recs[i], urb_id=uid)
    return f"URB id {uid:#x} reused by {len(idx)} records"


def m_drop(rng: random.Random, recs: list[UsbRecord]) -> str:
    want = rng.choice((URB_SUBMIT, URB_COMPLETE))
    i = _pick(rng, recs, lambda r: r.urb_type == want)
    if i < 0:
        return "nothing to drop"
    del recs[i]
    return f"{chr(want)} record {i} dropped"


def m_duplicate(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = rng.randrange(len(recs))
    recs.insert(i, recs[i])
    return f"record {i} duplicated"


def m_header_lies(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = _pick(rng, recs, lambda r: r.epnum == EP_BULK_OUT and r.urb_len == HEADER_LEN and r.data)
    if i < 0:
        return "no header to change"
    length = rng.choice((0, 1, 7, 0xFFFFFFFF, rng.getrandbits(32), 16))
    tag = rng.choice((0, 1, 2, 3, 7, 8, 0xFF))
    recs[i] = replace(recs[i], data=encode_header(tag, length))
    return f"header record {i} says length {length} tag {tag}"


def m_lengths(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = rng.randrange(len(recs))
    r = recs[i]
    how = rng.choice(("urb_len", "data_len", "data"))
    if how == "urb_len":
        recs[i] = replace(r, urb_len=rng.choice((0, 1, 8, 16, 0xFFFFFFFF, rng.getrandbits(32))))
    elif how == "data_len":
        recs[i] = replace(r, data_len=rng.choice((0, 0xFFFFFFFF, len(r.data) + 100)))
    else:
        recs[i] = replace(r, data=rng.randbytes(rng.choice((0, 1, 7, 15, 17, 64))))
    return f"record {i}: {how} disagrees"


def m_garbage_in(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = _pick(
        rng, recs, lambda r: r.epnum in (EP_EVENT_IN, EP_OUTPUT_IN) and r.urb_type == URB_COMPLETE
    )
    if i < 0:
        return "no event/output"
    n = rng.choice((0, 1, 3, 15, 16, 17, 24))
    recs[i] = replace(
        recs[i], data=rng.randbytes(n), urb_len=rng.choice((n, 0, 16, 1024, 0xFFFFFFFF))
    )
    return f"event/output record {i} holds {n} garbage bytes"


def m_field(rng: random.Random, recs: list[UsbRecord]) -> str:
    i = rng.randrange(len(recs))
    name = rng.choice(("urb_type", "xfer", "epnum", "devnum", "busnum", "status", "setup"))
    value = {
        "urb_type": rng.choice((ord("E"), ord("X"), 0, 255)),
        "xfer": rng.randrange(256),
        "epnum": rng.randrange(256),
        "devnum": rng.randrange(256),
        "busnum": rng.randrange(65536),
        "status": rng.choice((-2, -104, -32, -71, 1, -(2**31))),
        "setup": rng.randbytes(8),
    }[name]
    recs[i] = replace(recs[i], **{name: value})
    return f"record {i}: {name} = {value!r}"


def m_multi_ep(rng: random.Random, recs: list[UsbRecord]) -> str:
    """Switch to multi-endpoint mode mid-stream and scatter bulk-OUT URBs over 0x02/0x03."""
    i = rng.randrange(len(recs))
    r = recs[i]
    setup = struct.pack(
        "<BBHHH",
        REQTYPE_VENDOR_OUT,
        CSR_REQUEST_64,
        CSR_MULTI_BO_EP & 0xFFFF,
        CSR_MULTI_BO_EP >> 16,
        8,
    )
    write = UsbRecord(
        r.ts_ns, 0xFFFF_FF80_2000_0000, URB_SUBMIT, XFER_CONTROL, 0x00, r.devnum, r.busnum,
        STATUS_IN_PROGRESS, 8, 8, struct.pack("<Q", 1), setup,
    )  # fmt: skip
    done = replace(write, urb_type=URB_COMPLETE, status=0, data_len=0, data=b"")
    recs[i:i] = [write, done]
    moved = 0
    for k, x in enumerate(recs):
        if x.epnum == EP_BULK_OUT and rng.random() < 0.5:
            recs[k] = replace(x, epnum=rng.choice((EP_INPUT_OUT, EP_PARAM_OUT)))
            moved += 1
    return f"multi-EP mode switched on at record {i}, {moved} bulk-OUT records moved"


def m_midstream(rng: random.Random, recs: list[UsbRecord]) -> str:
    """Many bulk-OUT URBs before any header, as when a capture starts mid-stream."""
    # after the first control transfer (the descriptor read when there is one): bulk traffic
    # *before* a device's descriptor is a known gap (the give-up decision then depends on the
    # read chunking; see docs/hardening.md)
    ctrl = next(
        (i for i, x in enumerate(recs) if x.xfer == XFER_CONTROL and x.urb_type == URB_COMPLETE),
        None,
    )
    r = recs[ctrl] if ctrl is not None else recs[0]
    at = ctrl + 1 if ctrl is not None else 0
    n = rng.choice((10, 63, 64, 65, 100))
    t = r.ts_ns + 1 if ctrl is not None else r.ts_ns - n * 20_000
    lead: list[UsbRecord] = []
    for k in range(n):
        uid = 0xFFFF_FF80_3000_0000 + 0x200 * (k % 3)
        s = UsbRecord(
            t + 20_000 * k, uid, URB_SUBMIT, XFER_BULK, EP_BULK_OUT, r.devnum, r.busnum,
            STATUS_IN_PROGRESS, 1 << 20, 1 << 20, bytes(16),
        )  # fmt: skip
        lead += [s, replace(s, ts_ns=s.ts_ns + 10_000, urb_type=URB_COMPLETE, status=0, data=b"")]
    recs[at:at] = lead
    return f"{n} headerless bulk-OUT URBs after record {at}"


def m_unanswered(rng: random.Random, recs: list[UsbRecord]) -> str:
    """Bulk-IN submits that never complete, each with its own URB id (a device that stopped
    answering while the driver kept posting reads): pairing must carry them without slowing down
    and report them, whatever the read chunking."""
    bulk = [r for r in recs if r.xfer == XFER_BULK] or recs
    dev = rng.choice(bulk)
    at = rng.randint(0, len(recs))
    t = recs[at - 1].ts_ns + 1 if at else recs[0].ts_ns - 1_000_000
    n = rng.choice((1, 10, 65, 300, 2000))
    ep = rng.choice((EP_OUTPUT_IN, EP_EVENT_IN))
    uid = 0xFFFF_FF80_4000_0000
    flood = [
        UsbRecord(
            t + 500 * k,
            uid + 0xC0 * k,
            URB_SUBMIT,
            XFER_BULK,
            ep,
            dev.devnum,
            dev.busnum,
            STATUS_IN_PROGRESS,
            1024,
            0,
        )
        for k in range(n)
    ]
    recs[at:at] = flood
    return f"{n} unanswered bulk-IN submits on {ep:#04x} at record {at}"


RECORD_MUTATIONS = (
    m_midstream,
    m_multi_ep,
    m_timestamps,
    m_swap,
    m_urb_ids,
    m_drop,
    m_duplicate,
    m_header_lies,
    m_lengths,
    m_garbage_in,
    m_field,
    m_unanswered,
)


# -- byte-level mutations --------------------------------------------------------------------------


def _near_boundary(rng: random.Random, enc: Encoded) -> int:
    starts = [*enc.block_starts, len(enc.data)]
    return max(0, min(len(enc.data), rng.choice(starts) + rng.randint(-13, 13)))


def b_truncate(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    at = _near_boundary(rng, enc) if rng.random() < 0.8 else rng.randrange(len(data) + 1)
    del data[at:]
    # a cut exactly at a block boundary leaves a complete (shorter) file: nothing to flag
    return f"truncated at byte {at}", at, at not in (*enc.block_starts, len(enc.data))


def b_block_length(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    i = rng.randrange(len(enc.block_starts))
    start = enc.block_starts[i]
    if enc.layout.format == "pcap":
        at = start + 8  # incl_len
    else:
        at = start + 4 if rng.random() < 0.7 else _block_end(enc, i) - 4
    o = enc.layout.order
    old = struct.unpack_from(o + "I", data, at)[0]
    new = rng.choice((*U32_LIES, old + 4, old - 4 if old >= 4 else 1, old + 1, rng.getrandbits(32)))
    if new == old:
        new ^= 0x100
    struct.pack_into(o + "I", data, at, new & 0xFFFFFFFF)
    return f"length at byte {at} {old} -> {new}", start, True


def _block_end(enc: Encoded, i: int) -> int:
    return enc.block_starts[i + 1] if i + 1 < len(enc.block_starts) else len(enc.data)


def b_caplen(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    if not enc.record_starts:
        return "no packet", len(data), False
    start = rng.choice(enc.record_starts)
    at = start + (20 if enc.layout.format == "pcapng" else 8)
    new = rng.choice((*U32_LIES, 47, 63, 65, rng.getrandbits(32)))
    struct.pack_into(enc.layout.order + "I", data, at, new)
    # a smaller captured length is valid (a shorter snaplen), so a problem is not owed
    return f"captured length at byte {at} := {new}", start, False


def b_magic(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    if enc.layout.format == "pcap":
        data[0:4] = data[0:4][::-1]
        return "pcap magic byte-swapped", 0, False
    shbs = [s for s in enc.block_starts if data[s : s + 4] == b"\x0a\x0d\x0d\x0a"]
    at = rng.choice(shbs) + 8
    data[at : at + 4] = rng.choice((data[at : at + 4][::-1], b"\0\0\0\0", rng.randbytes(4)))
    return f"byte-order magic at {at} changed", at - 8, True


def b_unknown_block(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    if enc.layout.format == "pcap":
        return b_splice(rng, data, enc)
    btype = rng.choice((0x7, 0x8, 0x0BAD, 0x40000BAD, 0x80000001, rng.getrandbits(32), 2, 3, 4))
    body = rng.randbytes(rng.choice((0, 4, 7, 32, 100)))
    if btype in (2, 3) and rng.random() < 0.5:
        body = struct.pack(enc.layout.order + "I", 0) + body  # obsolete/simple packet, odd body
    at = rng.choice(enc.block_starts[1:] or [len(data)])
    data[at:at] = bt.encode_block(btype & 0xFFFFFFFF, body, enc.layout.order)
    return f"block type {btype:#x} ({len(body)} B) inserted at {at}", at, False


def b_linktype(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    o = enc.layout.order
    lt = rng.choice((1, 0, 147, 190, 249, 0xFFFF))
    if enc.layout.format == "pcap":
        struct.pack_into(o + "I", data, 20, lt)
        return f"pcap link type := {lt}", 0, False
    idbs = [s for s in enc.block_starts if struct.unpack_from(o + "I", data, s)[0] == bt.BT_IDB]
    at = rng.choice(idbs)
    struct.pack_into(o + "H", data, at + 8, lt)
    return f"link type at {at + 8} := {lt}", at, False


def b_tsresol(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    """Garbage in the interface's timestamp resolution (a one-byte option value)."""
    o = enc.layout.order
    if enc.layout.format == "pcap":
        return b_bitflip(rng, data, enc)
    idbs = [s for s in enc.block_starts if struct.unpack_from(o + "I", data, s)[0] == bt.BT_IDB]
    at = rng.choice(idbs)
    pos = data.find(struct.pack(o + "HH", bt.OPT_IF_TSRESOL, 1), at)
    if pos < 0:
        return "no tsresol", len(data), False
    v = rng.choice((0, 10, 19, 20, 63, 127, 0x80, 0x81, 0xBF, 0xFF))
    data[pos + 4] = v
    return f"tsresol at {pos + 4} := {v:#x}", at, False


def b_bitflip(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    if not data:
        return "empty", 0, False
    n = rng.randint(1, 8)
    spots = sorted(rng.randrange(len(data)) for _ in range(n))
    for at in spots:
        data[at] ^= 1 << rng.randrange(8)
    return f"{n} bit(s) flipped from byte {spots[0]}", spots[0], False


def b_splice(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    if not data:
        return "empty", 0, False
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 200))
    how = rng.choice(("delete", "duplicate", "garbage", "zeros", "ff"))
    if how == "delete":
        del data[a:b]
    elif how == "duplicate":
        data[b:b] = data[a:b]
    elif how == "garbage":
        data[a:b] = rng.randbytes(b - a)
    elif how == "zeros":
        data[a:b] = bytes(b - a)
    else:
        data[a:b] = b"\xff" * (b - a)
    return f"bytes {a}..{b} {how}", a, False


def b_append(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    tail = rng.choice((rng.randbytes(rng.randint(1, 64)), bytes(rng.randint(1, 64)), data[:28]))
    data += tail
    return f"{len(tail)} trailing bytes appended", len(data) - len(tail), True


OPT_IF_TSOFFSET = 14  # pcapng option; the reader names it only by number too


def b_interface_options(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    """Rewrite an interface block with odd but well-formed options (offset, resolution, snaplen)."""
    lay = enc.layout
    if lay.format == "pcap":
        struct.pack_into(lay.order + "I", data, 16, rng.choice((0, 1, 48, 0xFFFFFFFF)))
        return "pcap snaplen changed", 0, False
    o = lay.order
    idbs = [
        i
        for i, s in enumerate(enc.block_starts)
        if struct.unpack_from(o + "I", data, s)[0] == bt.BT_IDB
    ]
    i = rng.choice(idbs)
    start, end = enc.block_starts[i], _block_end(enc, i)
    offset = rng.choice((-(2**63), 2**63 - 1, -(10**12), 10**10, rng.getrandbits(63)))
    extra = [(OPT_IF_TSOFFSET, struct.pack(o + "q", offset))]
    if rng.random() < 0.3:
        extra.append((bt.OPT_IF_TSRESOL, bytes([rng.randrange(256)])))
    if rng.random() < 0.3:
        extra.append((rng.randrange(3, 0xFFFF), rng.randbytes(rng.randint(0, 9))))
    snaplen = rng.choice((0, 1, 48, 64, 65535, 0xFFFFFFFF))
    data[start:end] = idb(replace(lay, snaplen=snaplen), extra)
    return (
        f"interface at {start}: tsoffset {offset}, snaplen {snaplen}, {len(extra)} option(s)",
        start,
        False,
    )


def _junk_json(rng: random.Random) -> object:
    return rng.choice(
        (None, 1, -1, 2**70, 1.5, float("inf"), "x", "", [], [1, "a"], {}, {"a": [None]}, True)
    )


def b_metadata(rng: random.Random, data: bytearray, enc: Encoded) -> tuple[str, int, bool]:
    """A usbtrace metadata block whose JSON has the right keys with wrong or odd values."""
    if enc.layout.format == "pcap":
        return b_bitflip(rng, data, enc)
    import json

    meta: dict[str, object] = {"usbtrace_metadata": 1}
    for key in ("model", "model_path", "label", "link_speed", "bus", "device", "model_sha256"):
        if rng.random() < 0.4:
            meta[key] = (
                _junk_json(rng)
                if rng.random() < 0.7
                else {"bus": 2, "device": 4}.get(key, "conv_50")
            )
    if rng.random() < 0.6:
        meta["invokes"] = rng.choice(
            (
                _junk_json(rng),
                [_junk_json(rng)],
                [
                    {
                        "index": _junk_json(rng),
                        "start_ns": _junk_json(rng),
                        "end_ns": _junk_json(rng),
                    }
                ],
                [{"index": 0, "start_ns": 0, "end_ns": 2**64}],
            )
        )
    text = json.dumps(meta, allow_nan=True).encode()
    if rng.random() < 0.2:
        text = rng.choice((b"[1,2]", b"{", text[: len(text) // 2], b"\xff\xfe", b"1e999"))
    body = struct.pack(enc.layout.order + "I", METADATA_PEN) + METADATA_MAGIC + text
    at = rng.choice(enc.block_starts[1:] or [len(data)])
    at = len(data) if rng.random() < 0.5 else at  # the capture runner appends it at the end
    data[at:at] = bt.encode_block(bt.BT_CUSTOM_COPY, body, enc.layout.order)
    return f"metadata block {text[:80]!r} at {at}", at, False


def _structure_attack(rng: random.Random) -> tuple[str, bytes]:
    """One way a metadata block's JSON can be hostile as a whole, not just in a value's type."""
    depth = rng.choice((33, 200, 2_000, 100_000))
    digits = rng.choice((21, 4_301, 50_000))
    length = rng.choice((256, 300, 5_000))
    key = rng.choice(("model", "model_path", "label", "link_speed", "model_sha256"))
    long_text = rng.choice(("m", "/", "../", "\x1b[2J", "é")) * length
    attacks = {
        "deep nesting": f'{{"{key}": {"[" * depth}{"]" * depth}}}'.encode(),
        "deep objects": ('{"a": ' * depth + "1" + "}" * depth).encode(),
        "huge integer": f'{{"bus": {"9" * digits}, "invokes": [{{"index": 0, '
        f'"start_ns": {"1" * digits}, "end_ns": 2}}]}}'.encode(),
        "long string": f'{{"{key}": "{long_text}"}}'.encode(),
        "wrong type": f'{{"{key}": {{"{key}": [1, {{}}]}}, "invokes": "x"}}'.encode(),
        "duplicate keys": f'{{"{key}": "conv_50", "{key}": "dense_900", "bus": 2, '
        '"bus": 3}'.encode(),
        "not UTF-8": b'{"model": "conv_\xff\xfe", "label": "\xc3"}',
        "NaN": f'{{"cpu_baseline_s": {rng.choice(("NaN", "Infinity", "-Infinity"))}, '
        f'"bus": {rng.choice(("1e999", "-0", "2.5"))}}}'.encode(),
        "control characters": f'{{"{key}": "a\u0000b\u001b[31m"}}'.encode(),
        "out of range": f'{{"bus": {rng.choice((0, 256, -1))}, "device": 128, '
        f'"invokes": [{{"index": 0, "start_ns": 9, "end_ns": 1}}]}}'.encode(),
    }
    name = rng.choice(sorted(attacks))
    return name, attacks[name]


def b_metadata_structure(
    rng: random.Random, data: bytearray, enc: Encoded
) -> tuple[str, int, bool]:
    """A usbtrace metadata block hostile in its structure (README: "metadata structure").

    Each attack leaves something to drop, so the integrity verdict must name it (flag True).
    """
    if enc.layout.format == "pcap":
        return b_bitflip(rng, data, enc)
    name, text = _structure_attack(rng)
    body = struct.pack(enc.layout.order + "I", METADATA_PEN) + METADATA_MAGIC + text
    at = rng.choice(enc.block_starts[1:] or [len(data)])
    at = len(data) if rng.random() < 0.5 else at
    data[at:at] = bt.encode_block(bt.BT_CUSTOM_COPY, body, enc.layout.order)
    return f"metadata structure: {name} ({len(text)} bytes) at {at}", at, True


BYTE_MUTATIONS = (
    b_interface_options,
    b_metadata,
    b_metadata_structure,
    b_truncate,
    b_truncate,
    b_block_length,
    b_caplen,
    b_magic,
    b_unknown_block,
    b_linktype,
    b_tsresol,
    b_bitflip,
    b_splice,
    b_append,
)


def make_case(seed: int) -> Case:
    """Case number ``seed``: the same seed always gives the same bytes."""
    rng = random.Random(seed)
    kind, recs, first_done = base_records(rng)
    layout = _layout(rng)
    case = Case(seed, kind, layout, b"")
    n = rng.choice((0, 1, 1, 1, 2, 2, 3)) if seed else 0
    record_level = [m for m in (rng.random() < 0.35 for _ in range(n))]
    if kind == "empty":
        case.expect_result = False
    for is_rec in record_level:
        if is_rec and recs:
            case.mutations.append(rng.choice(RECORD_MUTATIONS)(rng, recs))
            case.expect_result = False  # the damage may sit anywhere in time
    enc = encode(recs, layout)
    data = bytearray(enc.data)
    byte_level = len(record_level) - sum(record_level)
    at, flag = len(data), False
    for _ in range(byte_level):
        try:
            desc, at, flag = rng.choice(BYTE_MUTATIONS)(rng, data, enc)
        except (struct.error, IndexError, ValueError):
            # positions come from the unmutated file; an earlier cut may have removed this one
            continue
        case.mutations.append(desc)
    if record_level and (sum(record_level) or byte_level > 1):
        # several mutations, or damage in the records themselves: where it lands in time is not
        # known, and a later cut can undo an earlier lie; only the basic contract is checked
        case.expect_result = False
    elif byte_level == 1:
        done_end = (
            _block_end(enc, enc.block_starts.index(enc.record_starts[first_done]))
            if first_done >= 0
            else None
        )
        case.expect_result = case.expect_result and done_end is not None and at >= done_end
        # pcap has no trailing length copy: a lie there may go unnoticed, so only pcapng owes one
        case.expect_problem = flag and layout.format == "pcapng"
    case.data = bytes(data)
    return case
