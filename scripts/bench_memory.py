#!/usr/bin/env python3
"""Memory and throughput benchmark: ``usbtrace summarize`` on a big synthetic capture.

Writes a synthetic Edge TPU capture of ``--size-gb`` GB (default 5) whose payload URBs are 1 MiB
and fully captured (a large snaplen: the worst case for a reader, every byte is in the file),
then runs ``usbtrace summarize --json`` on it in a child process and prints the child's peak RSS
(``wait4`` rusage), the wall time and the throughput, next to the speed of simply reading the
file: from the disk (the file's pages evicted with posix_fadvise) and from the page cache. The
file is deleted afterwards unless ``--keep``; the free space is checked first. Bounds (issue 8):
peak RSS under 200 MB, throughput near the plain read speed; and (issue 14) ``usbtrace inspect
--json``'s first line within a second.

    python3 scripts/bench_memory.py --size-gb 5 --dir /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.usb.record import UsbRecord  # noqa: E402
from lab.usb.writer import Layout, StreamWriter  # noqa: E402
from usbtrace.edgetpu.constants import (  # noqa: E402
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    MAX_BULK_OUT_CHUNK,
    Tag,
)
from usbtrace.edgetpu.wire import encode_event, encode_header  # noqa: E402
from usbtrace.formats.usbmon import (  # noqa: E402
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
)

MB = 1_000_000
BUS, DEV = 2, 4


class _Writer:
    """Single-EP traffic of one device with every payload byte captured."""

    def __init__(self, stream, t0_ns: int) -> None:
        self.w = StreamWriter(stream, Layout(tsresol_exp=9, statistics=False))
        self.t = t0_ns
        self.urb_id = 0xFFFF_FF80_1000_0000
        self.payload = bytes(range(256)) * (MAX_BULK_OUT_CHUNK // 256)
        self.payload = b"\x80\x0f\x00" + self.payload[3:]

    def _rec(self, kind: int, ep: int, length: int, status: int, data: bytes, t: int) -> None:
        self.w.write([UsbRecord(
            t, self.urb_id, kind, XFER_BULK, ep, DEV, BUS, status, length, len(data), data
        )])  # fmt: skip

    def out(self, data: bytes, length: int, us: int) -> None:
        self._rec(URB_SUBMIT, EP_BULK_OUT, length, STATUS_IN_PROGRESS, data, self.t)
        self.t += us * 1000
        self._rec(URB_COMPLETE, EP_BULK_OUT, length, 0, b"", self.t)
        self.t += 2000

    def transfer(self, tag: int, length: int) -> None:
        self.out(encode_header(tag, length), 8, 20)
        left = length
        while left:
            n = min(left, MAX_BULK_OUT_CHUNK)
            self.out(self.payload[:n], n, n // 350)  # ~350 MB/s on the wire
            left -= n

    def read(self, ep: int, asked: int, data: bytes) -> None:
        self._rec(
            URB_SUBMIT, ep | 0x80 if ep < 0x80 else ep, asked, STATUS_IN_PROGRESS, b"", self.t
        )
        self.t += 300_000
        self._rec(URB_COMPLETE, ep, len(data), 0, data, self.t)
        self.t += 2000


def make_capture(path: Path, size: int) -> tuple[int, int]:
    """Inferences of 8 MiB streamed parameters each until the file reaches ``size`` bytes."""
    inferences = 0
    with open(path, "wb", buffering=16 << 20) as stream:
        w = _Writer(stream, 1_700_000_000_000_000_000)
        while stream.tell() < size:
            w.transfer(Tag.INSTRUCTIONS, 200_000)
            w.transfer(Tag.INPUT, 150_528)
            w.transfer(Tag.PARAMETERS, 8 * MAX_BULK_OUT_CHUNK)
            w.read(EP_OUTPUT_IN, 1024, bytes(1001))
            w.read(EP_EVENT_IN, 16, encode_event(Tag.INTERRUPT0))
            inferences += 1
    return path.stat().st_size, inferences


def drop_cache(path: Path) -> None:
    """Evict this file's pages from the page cache, so the next read comes from the disk."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def plain_read(path: Path) -> float:
    """Seconds to read the file in 8 MiB chunks into one buffer: the disk's speed, no parsing."""
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
    return time.perf_counter() - t0


def run_summarize(path: Path) -> tuple[float, int, int, dict]:
    """(seconds, peak RSS in bytes, exit status, JSON) of a child ``usbtrace summarize``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out_path = path.with_suffix(".json")
    with open(out_path, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "usbtrace", "summarize", "--json", "--jobs", "1", str(path)],
            stdout=out,
            env=env,
        )
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - t0
    doc = json.loads(out_path.read_text())
    out_path.unlink()
    return elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), doc


def inspect_first_line(path: Path) -> tuple[float, float]:
    """(seconds to the first line, seconds in all) of a child ``usbtrace inspect --json``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "usbtrace", "inspect", "--json", str(path)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    child.stdout.readline()
    first = time.perf_counter() - t0
    while child.stdout.read(1 << 20):
        pass
    child.wait()
    return first, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size-gb", type=float, default=5.0, help="capture size in GB (default 5)")
    p.add_argument("--dir", default="/tmp", help="where to write the capture (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the capture afterwards")
    args = p.parse_args()
    size = int(args.size_gb * 1e9)
    folder = Path(args.dir)
    free = shutil.disk_usage(folder).free
    if free < size * 1.2:
        print(f"bench_memory: {folder} has {free / 1e9:.1f} GB free, need {size * 1.2 / 1e9:.1f}")
        return 2
    path = folder / f"usbtrace-bench-{os.getpid()}.pcapng"
    try:
        t0 = time.perf_counter()
        nbytes, inferences = make_capture(path, size)
        t_make = time.perf_counter() - t0
        print(f"capture: {path} {nbytes / 1e9:.2f} GB, {inferences} inferences, "
              f"written in {t_make:.1f} s ({nbytes / MB / t_make:.0f} MB/s)")  # fmt: skip
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        # every run is judged: the cold one is no less part of the bounds than the warm one
        status, peak, late = 0, 0, 0.0
        for cache in ("cold", "warm"):
            if cache == "cold":
                drop_cache(path)
            t_read = plain_read(path)
            print(f"plain read, {cache} cache: {t_read:.1f} s, {nbytes / MB / t_read:.0f} MB/s")
            if cache == "cold":
                drop_cache(path)
            t_sum, rss, code, doc = run_summarize(path)
            status, peak = status or code, max(peak, rss)
            rate = nbytes / MB / t_sum
            print(f"usbtrace summarize, {cache} cache: {t_sum:.1f} s, {rate:.0f} MB/s "
                  f"({t_read / t_sum:.0%} of plain read), peak RSS {rss / MB:.0f} MB")  # fmt: skip
            if cache == "cold":
                drop_cache(path)
            first, whole = inspect_first_line(path)
            print(f"usbtrace inspect --json, {cache} cache: first line after {first:.2f} s "
                  f"(target < 1 s), {whole:.1f} s in all")  # fmt: skip
            late = max(late, first)
        caps = doc["captures"]
        found = caps[0]["summary"]["inferences"] if caps else 0
        ok = status == 0 and found == inferences and peak < 200 * MB and late < 1
        print(f"exit {status}, {found} of {inferences} inferences found; within bounds "
              f"(exit 0, every inference found, peak RSS < 200 MB, inspect's first line "
              f"< 1 s): {ok}")  # fmt: skip
        return 0 if ok else 1
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
