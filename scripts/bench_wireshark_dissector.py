"""Measure what the generated Wireshark dissector costs tshark: prints frames/s with and without it.

Builds a synthetic single-EP capture (N requests: instructions header + 1 MiB-chunked parameters +
16-byte input, an 8-byte output and a tag-4 event each, with 24 captured bytes per big URB, as a
short snaplen keeps them), then runs `tshark -r FILE` plain and with `-X lua_script:` (one pass and
two passes), in a fresh HOME so no installed plug-in interferes.

    python3 scripts/bench_wireshark_dissector.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab lives in the checkout

from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, StreamWriter
from usbtrace.edgetpu import constants as c
from usbtrace.edgetpu.wire import encode_header
from usbtrace.formats.usbmon import (
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
)
from usbtrace.wireshark.generate import generate_lua

SNAP = 24


def build(path: Path, requests: int, param_bytes: int) -> int:
    frames = 0
    ts = 1_700_000_000_000_000_000
    urb = 0xFFFF_0000_0000_0000

    with path.open("wb") as f:
        w = StreamWriter(f, Layout(tsresol_exp=9, statistics=False, interface="usbmon2"))

        def rec(urb_id: int, kind: int, ep: int, urb_len: int, payload: bytes, data_len: int):
            nonlocal ts, frames
            ts += 20_000
            status = STATUS_IN_PROGRESS if kind == URB_SUBMIT else 0
            w.write(
                [
                    UsbRecord(
                        ts, urb_id, kind, XFER_BULK, ep, 4, 2, status, urb_len, data_len, payload
                    )
                ]
            )
            frames += 1

        def out(data_len: int, payload: bytes) -> None:
            nonlocal urb
            urb += 0x100
            rec(urb, URB_SUBMIT, c.EP_BULK_OUT, data_len, payload[:SNAP], data_len)
            rec(urb, URB_COMPLETE, c.EP_BULK_OUT, data_len, b"", 0)

        def transfer(tag: int, length: int) -> None:
            out(c.HEADER_LEN, encode_header(tag, length))
            left = length
            while left:
                n = min(left, c.MAX_BULK_OUT_CHUNK)
                out(n, bytes(min(n, SNAP)))
                left -= n

        def read(ep: int, request: int, reply: bytes) -> None:
            nonlocal urb
            urb += 0x100
            rec(urb, URB_SUBMIT, ep, request, b"", 0)
            rec(urb, URB_COMPLETE, ep, len(reply), reply, len(reply))

        event = bytes(c.EVENT_TAG_OFFSET) + bytes([c.COMPLETION_TAG]) + bytes(3)
        for _ in range(requests):
            transfer(c.Tag.INSTRUCTIONS, 93_360)
            transfer(c.Tag.INPUT, 16)
            transfer(c.Tag.PARAMETERS, param_bytes)
            read(c.EP_OUTPUT_IN, c.OUTPUT_READ_LEN_USB3, bytes(8))
            read(c.EP_EVENT_IN, c.EVENT_LEN, event)
    return frames


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--param-bytes", type=int, default=3_923_712)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "bench.pcapng"
        frames = build(capture, args.requests, args.param_bytes)
        lua = Path(tmp) / "edgetpu.lua"
        lua.write_text(generate_lua())
        env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=str(Path(tmp) / ".config"))
        size = capture.stat().st_size
        print(f"capture: {frames} frames, {size / 1e6:.1f} MB, {args.requests} requests")
        variants = {
            "tshark (no plug-in)": ["tshark", "-n", "-r", str(capture)],
            "tshark + dissector": ["tshark", "-n", "-X", f"lua_script:{lua}", "-r", str(capture)],
            "tshark -2 + dissector": [
                "tshark", "-n", "-2", "-X", f"lua_script:{lua}", "-r", str(capture),
            ],
            "tshark -V + dissector": [
                "tshark", "-n", "-V", "-X", f"lua_script:{lua}", "-r", str(capture),
            ],
        }  # fmt: skip
        base = None
        for name, cmd in variants.items():
            best = min(timed(cmd, env) for _ in range(args.repeat))
            base = base or best
            print(f"{name:<24} {best:7.2f} s  {frames / best:9.0f} frames/s  x{best / base:.2f}")


if __name__ == "__main__":
    main()
