"""Large Edge TPU-shaped captures for benchmarks, written in bulk with numpy.

A short session is simulated once (open, caching, some inferences back to back, close). Its
inferences repeat exactly after a block of a few inferences (same URB ids, times shifted by one
period), so the block's Enhanced Packet Blocks are built once as bytes and tiled: only the
four timestamp fields of each copy are patched, with array operations. A capture of a million
frames costs a few seconds, most of it the disk.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lab.synthetic.presets import preset
from lab.synthetic.session import Session, generate
from lab.synthetic.truth import RequestTruth
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, encode
from usbtrace.formats.metadata import METADATA_PEN, CaptureMetadata, encode_metadata
from usbtrace.formats.pcapng_writer import PcapngWriter

MAX_BLOCK = 20  # inferences per tiled block, at most (8 output reads + 1 event read rotate in 9)
EPB_FIXED = 28  # block type, length, interface, ts high, ts low, captured, original
CHUNK_BYTES = 64 << 20  # bytes of tiled blocks built in memory at a time
BENCH_INTERVAL_US = 500  # host idle between inferences: keeps the capture dense


@dataclass
class BenchResult:
    path: Path
    frames: int
    bytes: int
    seconds: float
    inferences: int
    per_inference: RequestTruth  # every tiled inference has exactly these figures (times shifted)
    period_us: int

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else math.inf


def parse_size(text: str) -> int:
    """'1.5G', '200M', '4096' -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise ValueError(f"size {text!r}: use a number with an optional K, M, G or T suffix")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024**power)


def _epb_bytes(records: list[UsbRecord], snaplen: int) -> tuple[bytes, np.ndarray]:
    """Enhanced Packet Blocks of ``records`` (interface 0) and each block's offset."""
    enc = encode(records, Layout(snaplen=snaplen, statistics=False))
    offsets = np.array(enc.record_starts, np.int64) - enc.header_len
    return enc.data[enc.header_len :], offsets


def _patch_positions(offsets: np.ndarray) -> np.ndarray:
    """Byte positions of each EPB's timestamps: EPB high/low word, usbmon seconds/microseconds."""
    rel = np.concatenate(
        [
            np.arange(12, 20),  # EPB timestamp high and low words
            EPB_FIXED + 16 + np.arange(8),  # usbmon ts_sec (i8)
            EPB_FIXED + 24 + np.arange(4),  # usbmon ts_usec (i4)
        ]
    )
    return (offsets[:, None] + rel[None, :]).ravel()


def _timestamp_bytes(ts_us: np.ndarray) -> np.ndarray:
    """(copies, records) µs -> (copies, records * 20) bytes matching ``_patch_positions``."""
    k, r = ts_us.shape
    hi = (ts_us >> 32).astype("<u4").view(np.uint8).reshape(k, r, 4)
    lo = (ts_us & 0xFFFFFFFF).astype("<u4").view(np.uint8).reshape(k, r, 4)
    sec = (ts_us // 1_000_000).astype("<i8").view(np.uint8).reshape(k, r, 8)
    usec = (ts_us % 1_000_000).astype("<i4").view(np.uint8).reshape(k, r, 4)
    return np.concatenate([hi, lo, sec, usec], axis=2).reshape(k, r * 20)


def _split(session: Session) -> tuple[list[UsbRecord], list[UsbRecord], list[UsbRecord], int]:
    """(head, one block, rest) of a simulated session, and the block's period.

    The first inferences still use the reads posted at open, and the freed URB ids of the output
    and event reads trade places each request, so the search finds the smallest block of
    inferences that the next block repeats exactly (URB ids, data; times shifted by a period).
    """
    inferences = [r for r in session.truth.devices[0].requests if r.kind == "inference"]
    starts = [r.t_start_us for r in inferences]
    recs = session.records
    times = np.fromiter((r.ts_ns // 1000 for r in recs), np.int64, len(recs))
    for block in range(1, MAX_BLOCK + 1):
        for first in range(1, len(starts) - 2 * block):
            a0, b0, c0 = starts[first], starts[first + block], starts[first + 2 * block]
            ia, ib, ic = np.searchsorted(times, [a0, b0, c0])
            block_a, block_b = recs[ia:ib], recs[ib:ic]
            period = b0 - a0
            shift = period * 1000
            if len(block_a) == len(block_b) and all(
                (x.ts_ns + shift, x.urb_id, x.urb_type, x.epnum, x.status, x.urb_len, x.data)
                == (y.ts_ns, y.urb_id, y.urb_type, y.epnum, y.status, y.urb_len, y.data)
                for x, y in zip(block_a, block_b, strict=True)
            ):
                return recs[:ia], block_a, recs[ib:], period
    raise AssertionError("the simulated inferences do not repeat: cannot tile them")


def make_bench_capture(
    path: str | os.PathLike[str],
    *,
    frames: int | None = None,
    size: int | None = None,
    snaplen: int = 128,
    preset_name: str = "dense_300",
    overwrite: bool = False,
) -> BenchResult:
    """Write an Edge TPU-shaped capture of about ``frames`` records or ``size`` bytes."""
    if (frames is None) == (size is None):
        raise ValueError("give exactly one of frames and size")
    t0 = time.perf_counter()
    base = preset(preset_name, snaplen=snaplen, metadata=False)
    dev = base.devices[0]
    dev = replace(
        dev,
        inferences=2 + 3 * MAX_BLOCK,
        interval_us=BENCH_INTERVAL_US,
        timing=replace(dev.timing, read_timeout_us=None),
    )
    profile = replace(base, devices=(dev,), tail_idle_us=BENCH_INTERVAL_US)
    session = generate(profile)
    head, block, rest, period = _split(session)
    block_inferences = sum(
        1
        for r in session.truth.devices[0].requests
        if r.kind == "inference"
        and block[0].ts_ns // 1000 <= r.t_start_us < block[0].ts_ns // 1000 + period
    )

    head_bytes, _ = _epb_bytes(head, snaplen)
    block_bytes, block_offsets = _epb_bytes(block, snaplen)
    rest_bytes, rest_offsets = _epb_bytes(rest, snaplen)
    # written: head, ``tiled`` copies of the block, then the rest (the block that repeated it and
    # the close), shifted to follow the copies
    fixed_frames = len(head) + len(rest)
    if frames is not None:
        tiled = max(0, math.ceil((frames - fixed_frames) / len(block)))
    else:
        fixed = len(head_bytes) + len(rest_bytes) + 1024
        tiled = max(0, math.ceil((size - fixed) / len(block_bytes)))

    target = Path(path)
    with open(target, "wb" if overwrite else "xb") as stream:
        writer = PcapngWriter(
            stream,
            comment=f"Synthetic Edge TPU benchmark capture ({preset_name}); not a real capture",
            application="usbtrace synthetic bench",
        )
        writer.interface(snaplen=snaplen, name=f"usbmon{dev.bus}")
        stream.write(head_bytes)
        _write_tiled(stream, block, block_bytes, block_offsets, tiled, period, 0)
        _write_tiled(stream, rest, rest_bytes, rest_offsets, 1, period, tiled - 1)
        meta = CaptureMetadata(
            model=profile.model,
            label=f"bench-{preset_name}",
            link_speed=dev.link_speed,
            bus=dev.bus,
            device=dev.address,
            extra={"synthetic": True, "generator": "usbtrace.synthetic.bench"},
        )
        writer.custom(METADATA_PEN, encode_metadata(meta))
    seconds = time.perf_counter() - t0
    inferences = [r for r in session.truth.devices[0].requests if r.kind == "inference"]
    return BenchResult(
        path=target,
        frames=fixed_frames + len(block) * tiled,
        bytes=target.stat().st_size,
        seconds=seconds,
        inferences=len(inferences) + block_inferences * (tiled - 1),
        per_inference=inferences[-2],
        period_us=period,
    )


def _write_tiled(
    stream: BinaryIO,
    records: list[UsbRecord],
    blob: bytes,
    offsets: np.ndarray,
    copies: int,
    period: int,
    first_shift: int,
) -> None:
    """Write ``copies`` of ``blob`` with times shifted by (first_shift + i) × period."""
    if copies <= 0 or not records:
        return
    base = np.fromiter((r.ts_ns // 1000 for r in records), np.int64, len(records))
    positions = _patch_positions(offsets)
    template = np.frombuffer(blob, np.uint8)
    per_chunk = max(1, CHUNK_BYTES // len(blob))
    done = 0
    while done < copies:
        k = min(per_chunk, copies - done)
        shifts = (first_shift + done + np.arange(k, dtype=np.int64)) * period
        arr = np.tile(template, (k, 1))
        arr[:, positions] = _timestamp_bytes(base[None, :] + shifts[:, None])
        stream.write(arr.tobytes())
        done += k
