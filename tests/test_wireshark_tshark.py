"""The generated dissector run by a real tshark, on synthetic and real captures.

The synthetic capture is built here, URB by URB, and every frame's expected decoding is written
down while building it, so the test compares tshark's output with the structure it was given.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.usb import descriptors
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, write_capture
from usbtrace.edgetpu import constants as c
from usbtrace.formats.usbmon import (
    STATUS_CANCELLED,
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
    XFER_INTERRUPT,
)
from usbtrace.wireshark.generate import generate_lua

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (Debian: tshark)")

CAPTURED_PAYLOAD = 24  # what a short snaplen keeps of a long payload, as in the real captures
TSHARK_FIELDS = (
    "frame.number",
    "edgetpu.kind",
    "edgetpu.device",
    "edgetpu.tag",
    "edgetpu.length",
    "edgetpu.transfer",
    "edgetpu.offset",
    "edgetpu.chunk_length",
    "edgetpu.remaining",
    "edgetpu.header_in",
    "edgetpu.request_in",
    "edgetpu.event.address",
    "edgetpu.interrupt",
    "edgetpu.output.chunk",
    "edgetpu.output.last",
    "edgetpu.csr.address",
    "edgetpu.csr.name",
    "edgetpu.csr.width",
    "edgetpu.csr.write",
    "edgetpu.csr.value",
    "edgetpu.dfu.request",
    "edgetpu.dfu.block",
    "edgetpu.dfu.length",
    "edgetpu.dfu.status",
    "edgetpu.dfu.state",
    "edgetpu.payload_in",
    "_ws.col.Info",
)


# --- a tiny usbmon capture builder ----------------------------------------------------------------


@dataclass
class UsbmonBuilder:
    """URB records in frame order; frame numbers are 1-based, as Wireshark counts them."""

    bus: int = 1
    records: list[UsbRecord] = field(default_factory=list)
    ts_ns: int = 1_700_000_000_000_000_000
    next_urb_id: int = 0xFFFF_8000_0000_0000

    def urb_id(self) -> int:
        self.next_urb_id += 0x100
        return self.next_urb_id

    def record(
        self,
        *,
        urb_id: int,
        urb_type: int,
        xfer: int,
        ep: int,
        dev: int,
        urb_len: int,
        payload: bytes = b"",
        data_len: int | None = None,
        status: int = 0,
        setup: bytes | None = None,
    ) -> int:
        """Add one record; ``payload`` is what was captured of ``data_len`` usbmon bytes."""
        data_len = len(payload) if data_len is None else data_len
        self.ts_ns += 10_000
        self.records.append(
            UsbRecord(
                ts_ns=self.ts_ns,
                urb_id=urb_id,
                urb_type=urb_type,
                xfer=xfer,
                epnum=ep,
                devnum=dev,
                busnum=self.bus,
                status=status,
                urb_len=urb_len,
                data_len=data_len,
                data=payload,
                setup=setup,
            )
        )
        return len(self.records)

    def control(
        self,
        dev: int,
        setup: bytes,
        *,
        out_data: bytes = b"",
        in_data: bytes = b"",
        status: int = 0,
    ) -> tuple[int, int]:
        urb = self.urb_id()
        w_length = struct.unpack_from("<H", setup, 6)[0]
        s = self.record(
            urb_id=urb,
            urb_type=URB_SUBMIT,
            xfer=XFER_CONTROL,
            ep=0x80 if setup[0] & 0x80 else 0,
            dev=dev,
            urb_len=w_length,
            payload=out_data,
            status=STATUS_IN_PROGRESS,
            setup=setup,
        )
        done = self.record(
            urb_id=urb,
            urb_type=URB_COMPLETE,
            xfer=XFER_CONTROL,
            ep=0x80 if setup[0] & 0x80 else 0,
            dev=dev,
            urb_len=len(in_data) if setup[0] & 0x80 else len(out_data),
            payload=in_data,
            status=status,
        )
        return s, done

    def bulk_out_submit(
        self, dev: int, ep: int, urb_len: int, captured: bytes, *, data_len: int | None = None
    ) -> tuple[int, int]:
        """Returns the frame and the URB id (the completion may come later)."""
        urb = self.urb_id()
        frame = self.record(
            urb_id=urb,
            urb_type=URB_SUBMIT,
            xfer=XFER_BULK,
            ep=ep,
            dev=dev,
            urb_len=urb_len,
            payload=captured,
            data_len=data_len,
            status=STATUS_IN_PROGRESS,
        )
        return frame, urb

    def bulk_out_complete(self, dev: int, ep: int, urb: int, urb_len: int) -> int:
        return self.record(
            urb_id=urb, urb_type=URB_COMPLETE, xfer=XFER_BULK, ep=ep, dev=dev, urb_len=urb_len
        )

    def read(
        self,
        dev: int,
        ep: int,
        request_len: int,
        reply: bytes,
        *,
        status: int = 0,
        xfer: int = XFER_BULK,
    ) -> tuple[int, int]:
        urb = self.urb_id()
        s = self.record(
            urb_id=urb,
            urb_type=URB_SUBMIT,
            xfer=xfer,
            ep=ep,
            dev=dev,
            urb_len=request_len,
            status=STATUS_IN_PROGRESS,
        )
        done = self.record(
            urb_id=urb,
            urb_type=URB_COMPLETE,
            xfer=xfer,
            ep=ep,
            dev=dev,
            urb_len=len(reply),
            payload=reply,
            status=status,
        )
        return s, done

    def device_descriptor(self, dev: int, vid: int, pid: int) -> None:
        setup = bytes([0x80, 6, 0, 1, 0, 0, 18, 0])
        descriptor = descriptors.device_descriptor(
            vid, pid, bcd_usb=0x0310, max_packet0=9, bcd_device=0x100
        )
        self.control(dev, setup, in_data=descriptor)

    def write(self, path: Path) -> Path:
        layout = Layout(
            tsresol_exp=9,
            statistics=False,
            comment="usbtrace synthetic capture for dissector tests",
            interface=f"usbmon{self.bus}",
        )
        write_capture(path, self.records, layout, overwrite=True)
        return path


def csr_setup(address: int, width: int, *, write: bool) -> bytes:
    request_type = c.REQTYPE_VENDOR_OUT if write else c.REQTYPE_VENDOR_IN
    request = c.CSR_REQUEST_64 if width == 64 else c.CSR_REQUEST_32
    return struct.pack("<BBHHH", request_type, request, address & 0xFFFF, address >> 16, width // 8)


def hex64(value: int) -> str:
    """A 64-bit hex field as tshark prints it."""
    return f"0x{value:016x}"


def header_bytes(tag: int, length: int) -> bytes:
    out = bytearray(c.HEADER_LEN)
    struct.pack_into("<I", out, c.HEADER_LENGTH_OFFSET, length)
    out[c.HEADER_TAG_OFFSET] = tag
    return bytes(out)


def event_bytes(tag: int, address: int = 0, length: int = 0) -> bytes:
    out = bytearray(c.EVENT_LEN)
    struct.pack_into("<Q", out, c.EVENT_ADDRESS_OFFSET, address)
    struct.pack_into("<I", out, c.EVENT_LENGTH_OFFSET, length)
    out[c.EVENT_TAG_OFFSET] = tag
    return bytes(out)


@dataclass
class Expected:
    """What tshark must say about each frame; only the keys given are checked."""

    frames: dict[int, dict[str, str]] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)  # frames with no edgetpu decoding at all

    def add(self, frame: int, **fields: object) -> None:
        self.frames[frame] = {k: _tshark_text(v) for k, v in fields.items()}


def _tshark_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def build_edgetpu_capture(
    path: Path, *, with_descriptors: bool = True
) -> tuple[Path, Expected, dict[int, tuple[int, int]]]:
    """One open, one request (instructions, parameters in chunks, an 8-byte input), its output and
    event, an interrupt, a second vendor device with look-alike traffic, and a DFU device.

    Returns the path, the expectations, and per header frame its (tag, length) for the summary.
    """
    b = UsbmonBuilder(bus=2)
    exp = Expected()
    tpu, other, dfu = 4, 5, 6
    dev = f"2.{tpu}"
    if with_descriptors:
        b.device_descriptor(tpu, *c.APP_IDS)
        b.device_descriptor(other, 0x1234, 0x5678)
        b.device_descriptor(dfu, *c.DFU_IDS)

    # register access: a 32-bit read, a 32-bit write, a 64-bit write and read, an unknown register
    scu0 = c.REGISTERS_BY_NAME["scu_ctrl_0"]
    s, done = b.control(
        tpu, csr_setup(scu0.address, 32, write=False), in_data=bytes.fromhex("59000f00")
    )
    exp.add(
        s, kind="csr", device=dev, **{"csr.name": "scu_ctrl_0", "csr.width": 32, "csr.write": False}
    )
    exp.add(
        done, kind="csr", request_in=s, **{"csr.name": "scu_ctrl_0", "csr.value": hex64(0x000F0059)}
    )
    scu3 = c.REGISTERS_BY_NAME["scu_ctrl_3"]
    s, done = b.control(
        tpu, csr_setup(scu3.address, 32, write=True), out_data=struct.pack("<I", 0x85025C)
    )
    exp.add(
        s,
        kind="csr",
        **{"csr.name": "scu_ctrl_3", "csr.write": True, "csr.value": hex64(0x85025C)},
    )
    exp.add(done, kind="csr", request_in=s, **{"csr.name": "scu_ctrl_3"})
    s, _ = b.control(
        tpu, csr_setup(c.CSR_MULTI_BO_EP, 64, write=True), out_data=struct.pack("<Q", 0)
    )
    exp.add(
        s, kind="csr", **{"csr.name": "multi_bo_ep", "csr.width": 64, "csr.address": "0x0004c160"}
    )
    run = c.REGISTERS_BY_NAME["scalarCoreRunControl"]
    s, done = b.control(
        tpu, csr_setup(run.address, 64, write=False), in_data=struct.pack("<Q", 0x1_0000_0002)
    )
    exp.add(s, kind="csr", **{"csr.name": "scalarCoreRunControl", "csr.write": False})
    exp.add(
        done,
        kind="csr",
        **{"csr.name": "scalarCoreRunControl", "csr.width": 64, "csr.value": hex64(0x1_0000_0002)},
    )
    unknown = 0x12340
    assert unknown not in c.REGISTERS_BY_ADDRESS
    s, _ = b.control(tpu, csr_setup(unknown, 32, write=False), in_data=bytes(4))
    exp.add(s, kind="csr", **{"csr.name": c.register_name(unknown)})

    # reads posted at open; the interrupt read completes with two bits set
    _, intr = b.read(
        tpu, c.EP_INTERRUPT_IN, c.INTERRUPT_LEN, struct.pack("<I", 0b10001), xfer=XFER_INTERRUPT
    )
    exp.add(intr, kind="interrupt", interrupt="0x00000011", request_in=intr - 1)

    headers: dict[int, tuple[int, int]] = {}
    # instructions: 100 bytes in one URB
    h, h_urb = b.bulk_out_submit(
        tpu, c.EP_BULK_OUT, c.HEADER_LEN, header_bytes(c.Tag.INSTRUCTIONS, 100)
    )
    exp.add(h, kind="header", tag=0, length=100, transfer=1, chunk_length=8)
    headers[h] = (c.Tag.INSTRUCTIONS, 100)
    p, p_urb = b.bulk_out_submit(
        tpu, c.EP_BULK_OUT, 100, bytes([0x80, 0x0F, 0]) + bytes(21), data_len=100
    )
    exp.add(p, kind="payload", tag=0, length=100, transfer=1, offset=0, remaining=0, header_in=h)
    done = b.bulk_out_complete(tpu, c.EP_BULK_OUT, h_urb, c.HEADER_LEN)
    exp.add(done, kind="accepted", tag=0, transfer=1, request_in=h)
    b.bulk_out_complete(tpu, c.EP_BULK_OUT, p_urb, 100)

    # parameters: 3000 bytes as 2048 (cut to 24 captured bytes) + 952 (nothing captured at all)
    h, _ = b.bulk_out_submit(tpu, c.EP_BULK_OUT, c.HEADER_LEN, header_bytes(c.Tag.PARAMETERS, 3000))
    exp.add(h, kind="header", tag=2, length=3000, transfer=2, payload_in=f"{h + 1},{h + 2}")
    headers[h] = (c.Tag.PARAMETERS, 3000)
    p1, _ = b.bulk_out_submit(tpu, c.EP_BULK_OUT, 2048, bytes(CAPTURED_PAYLOAD), data_len=2048)
    exp.add(p1, kind="payload", tag=2, length=3000, offset=0, chunk_length=2048, remaining=952)
    p2, _ = b.bulk_out_submit(tpu, c.EP_BULK_OUT, 952, b"", data_len=0)
    exp.add(
        p2,
        kind="payload",
        tag=2,
        length=3000,
        offset=2048,
        chunk_length=952,
        remaining=0,
        header_in=h,
    )

    # input of 8 bytes that look like a header: must still be payload
    h, _ = b.bulk_out_submit(tpu, c.EP_BULK_OUT, c.HEADER_LEN, header_bytes(c.Tag.INPUT, 8))
    exp.add(h, kind="header", tag=1, length=8, transfer=3)
    headers[h] = (c.Tag.INPUT, 8)
    p, _ = b.bulk_out_submit(tpu, c.EP_BULK_OUT, 8, header_bytes(c.Tag.PARAMETERS, 16))
    exp.add(p, kind="payload", tag=1, length=8, transfer=3, offset=0, header_in=h)

    # the output (8 bytes for a 1024-byte read), a cancelled read, and the completion event
    _, out = b.read(tpu, c.EP_OUTPUT_IN, c.OUTPUT_READ_LEN_USB3, bytes(8))
    exp.add(
        out,
        kind="output",
        tag=3,
        chunk_length=8,
        offset=0,
        **{"output.chunk": 1, "output.last": True},
    )
    _, cancelled = b.read(tpu, c.EP_OUTPUT_IN, c.OUTPUT_READ_LEN_USB3, b"", status=STATUS_CANCELLED)
    exp.silent.add(cancelled)
    _, ev = b.read(tpu, c.EP_EVENT_IN, c.EVENT_LEN, event_bytes(c.COMPLETION_TAG))
    exp.add(ev, kind="event", tag=4, length=0, **{"event.address": "0x0000000000000000"})
    _, ev = b.read(tpu, c.EP_EVENT_IN, c.EVENT_LEN, event_bytes(c.Tag.INPUT, 0x1234_5678_9A, 16))
    exp.add(ev, kind="event", tag=1, length=16, **{"event.address": "0x000000123456789a"})

    # a different vendor device doing look-alike things: never decoded when descriptors say so
    if with_descriptors:
        s, done = b.control(other, csr_setup(scu0.address, 32, write=False), in_data=bytes(4))
        h, _ = b.bulk_out_submit(other, c.EP_BULK_OUT, c.HEADER_LEN, header_bytes(0, 16))
        exp.silent.update({s, done, h})

        # the boot loader: a DFU download block and its status
        s, _ = b.control(
            dfu,
            struct.pack("<BBHHH", c.REQTYPE_DFU_OUT, c.DfuRequest.DNLOAD, 3, 0, 256),
            out_data=bytes(CAPTURED_PAYLOAD),
        )
        exp.add(s, kind="dfu", **{"dfu.request": 1, "dfu.block": 3, "dfu.length": 256})
        status = bytes([0, 1, 0, 0, 5, 0])
        s, done = b.control(
            dfu,
            struct.pack("<BBHHH", c.REQTYPE_DFU_IN, c.DfuRequest.GETSTATUS, 0, 0, 6),
            in_data=status,
        )
        exp.add(s, kind="dfu", **{"dfu.request": 3})
        exp.add(done, kind="dfu", request_in=s, **{"dfu.status": 0, "dfu.state": 5})
    return b.write(path), exp, headers


# --- running tshark -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lua_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lua") / "edgetpu.lua"
    path.write_text(generate_lua())
    return path


@pytest.fixture(scope="module")
def tshark_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A HOME of its own, so a plug-in the user installed is not loaded twice."""
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return env


def run_tshark(
    capture: Path,
    lua: Path | None,
    env: dict[str, str],
    *,
    two_pass: bool = True,
    extra: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", str(capture)]
    if lua is not None:
        cmd += ["-X", f"lua_script:{lua}"]
    if two_pass:
        cmd.append("-2")
    cmd += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    cmd += list(extra)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Lua" not in result.stderr, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        values = line.split("\t")
        row = {
            name.removeprefix("edgetpu."): v for name, v in zip(TSHARK_FIELDS, values, strict=True)
        }
        rows.append(row)
    return rows


def by_frame(rows: list[dict[str, str]]) -> dict[int, dict[str, str]]:
    return {int(r["frame.number"]): r for r in rows}


def check_expected(rows: dict[int, dict[str, str]], exp: Expected) -> Iterator[str]:
    for frame, fields in exp.frames.items():
        row = rows[frame]
        for key, want in fields.items():
            if row[key] != want:
                info = row["_ws.col.Info"]
                yield f"frame {frame}: {key} = {row[key]!r}, expected {want!r} ({info})"
    for frame in exp.silent:
        if rows[frame]["kind"]:
            yield f"frame {frame}: decoded as {rows[frame]['kind']}, expected nothing"


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("two_pass", [True, False], ids=["two-pass", "one-pass"])
def test_synthetic_capture_decodes_as_built(tmp_path, lua_script, tshark_env, two_pass):
    capture, exp, _ = build_edgetpu_capture(tmp_path / "synthetic.pcapng")
    rows = by_frame(run_tshark(capture, lua_script, tshark_env, two_pass=two_pass))
    if not two_pass:
        # payload_in lists and read-back values on submits are only known after the whole file
        for fields in exp.frames.values():
            fields.pop("payload_in", None)
    problems = list(check_expected(rows, exp))
    assert not problems, "\n".join(problems)


def test_only_expected_frames_are_decoded(tmp_path, lua_script, tshark_env):
    capture, exp, _ = build_edgetpu_capture(tmp_path / "synthetic.pcapng")
    rows = by_frame(run_tshark(capture, lua_script, tshark_env))
    decoded = {f for f, r in rows.items() if r["kind"] and r["kind"] != "accepted"}
    expected_submits_and_replies = {f for f, e in exp.frames.items() if e.get("kind") != "accepted"}
    # every decoded frame is either expected or a completion of something expected
    unexplained = {f for f in decoded - expected_submits_and_replies if not rows[f]["request_in"]}
    assert not unexplained, sorted(unexplained)


def test_devices_recognised_without_descriptors(tmp_path, lua_script, tshark_env):
    capture, exp, _ = build_edgetpu_capture(tmp_path / "nodesc.pcapng", with_descriptors=False)
    rows = by_frame(run_tshark(capture, lua_script, tshark_env))
    problems = list(check_expected(rows, exp))
    assert not problems, "\n".join(problems)


def test_info_column_says_what_happened(tmp_path, lua_script, tshark_env):
    capture, _, headers = build_edgetpu_capture(tmp_path / "synthetic.pcapng")
    rows = by_frame(run_tshark(capture, lua_script, tshark_env))
    infos = [r["_ws.col.Info"] for r in rows.values() if r["kind"]]
    assert any(i.startswith("CSR scu_ctrl_3 := 0x85025c") for i in infos), infos
    assert any(i.startswith("CSR scu_ctrl_0 -> 0xf0059") for i in infos), infos
    assert any("request finished" in i for i in infos), infos
    for frame, (tag, length) in headers.items():
        info = rows[frame]["_ws.col.Info"]
        assert c.TAG_NAMES[c.Tag(tag)] in info and str(length) in info, info


def test_display_filter_selects_by_field(tmp_path, lua_script, tshark_env):
    capture, _, headers = build_edgetpu_capture(tmp_path / "synthetic.pcapng")
    rows = run_tshark(
        capture,
        lua_script,
        tshark_env,
        extra=("-Y", 'edgetpu.kind == "header" && edgetpu.tag == 2'),
    )
    want = sorted(f for f, (tag, _) in headers.items() if tag == c.Tag.PARAMETERS)
    assert sorted(int(r["frame.number"]) for r in rows) == want


# --- real captures --------------------------------------------------------------------------------


def test_conv_50_headers_and_registers(lua_script, tshark_env, shared_file):
    """Facts from shared/captures/real/README.md: 12 headers on 0x01, the per-request (tag,
    length) sequence, 91 vendor register transfers, 39 registers all with names, 6 tag-4 events,
    5 outputs."""
    capture = shared_file("captures/real/conv_50.pcapng")
    rows = run_tshark(capture, lua_script, tshark_env)
    headers = [(int(r["tag"]), int(r["length"])) for r in rows if r["kind"] == "header"]
    caching = [(0, 7856), (2, 2_471_488)]
    inference = [(0, 93_360), (1, 16)]
    assert headers == caching + inference * 5
    assert {r["device"] for r in rows if r["kind"]} == {"2.4"}

    payload_sum: dict[int, int] = {}
    for r in rows:
        if r["kind"] == "payload":
            payload_sum[int(r["header_in"])] = payload_sum.get(int(r["header_in"]), 0) + int(
                r["chunk_length"]
            )
    header_frames = {
        int(r["frame.number"]): int(r["length"]) for r in rows if r["kind"] == "header"
    }
    assert payload_sum == header_frames  # every transfer's chunks add up to its header length

    csr_submits = [r for r in rows if r["kind"] == "csr" and not r["request_in"]]
    assert len(csr_submits) == 91
    assert sum(r["csr.write"] == "1" for r in csr_submits) == 70
    names = {r["csr.name"] for r in csr_submits}
    assert len(names) == 39 and names <= set(c.REGISTERS_BY_NAME)
    for r in csr_submits:
        assert int(r["csr.width"]) == c.REGISTERS_BY_NAME[r["csr.name"]].width
    first = min(csr_submits, key=lambda r: int(r["frame.number"]))
    assert first["frame.number"] == "133" and first["csr.name"] == "scu_ctrl_0"
    omc = [r for r in csr_submits if r["csr.name"] == "omc0_00"]
    assert omc and int(omc[0]["csr.value"], 16) == 0x0219089A

    events = [r for r in rows if r["kind"] == "event"]
    assert [int(r["tag"]) for r in events] == [c.COMPLETION_TAG] * 6
    outputs = [r for r in rows if r["kind"] == "output"]
    assert sum(int(r["chunk_length"]) for r in outputs) == 40


def test_dense_300_streamed_parameters(lua_script, tshark_env, shared_file):
    capture = shared_file("captures/real/dense_300.pcapng")
    rows = run_tshark(capture, lua_script, tshark_env)
    headers = [(int(r["tag"]), int(r["length"])) for r in rows if r["kind"] == "header"]
    assert len(headers) == 37
    caching = [(0, 21_168), (2, 1_040_896)]
    inference = [
        (0, 262_128),
        (1, 16),
        (2, 1_038_336),
        (0, 261_952),
        (2, 1_783_808),
        (0, 19_760),
        (2, 121_472),
    ]
    assert headers == caching + inference * 5
    bulk_bytes = sum(int(r["chunk_length"]) for r in rows if r["kind"] in ("header", "payload"))
    assert bulk_bytes == 18_499_720


def test_single_record_captures(lua_script, tshark_env, shared_file):
    """One frame each, without the open: nothing identifies the device, so nothing is claimed."""
    for name in ("inout_padding_256x256x3.pcapng", "inout_stride_256x256x3.pcapng"):
        capture = shared_file(f"captures/real/{name}")
        rows = run_tshark(capture, lua_script, tshark_env)
        assert len(rows) == 1 and rows[0]["kind"] == ""


# --- agreement with usbtrace's own decoder --------------------------------------------------------


def decoder_view(path: Path) -> tuple[dict[int, tuple], dict[str, tuple[int, int, int]]]:
    """Per frame, what usbtrace's decoder says about it, in the dissector's terms; and per
    boot-loader device the decoder folded into a firmware download: (blocks, bytes, uploaded)."""
    from usbtrace.pipeline import decode_capture

    view: dict[int, tuple] = {}
    firmware: dict[str, tuple[int, int, int]] = {}
    for device in decode_capture(path).devices:
        fw = device.firmware
        if fw is not None and (fw.bus, fw.address) != (device.bus, device.address):
            firmware[f"{fw.bus}.{fw.address}"] = (fw.blocks, fw.nbytes, fw.uploaded)
        for t in device.transfers:
            if t.header_frame:
                view[t.header_frame] = ("header", int(t.tag), t.length)
            for frame in t.payload_frames:
                # multi-EP runs have no header, so no announced length to compare
                view[frame] = ("payload", int(t.tag), t.length if t.header_frame else None)
        for e in device.events:
            view[e.frame] = ("event", int(e.tag), e.length)
        for i in device.interrupts:
            view[i.frame] = ("interrupt", i.value)
        for chunk in device.output_chunks:
            view[int(chunk["frame"])] = ("output", int(chunk["length"]))
        for a in device.csr:
            view[a.frame] = ("csr", a.name, a.width, a.write, a.value)
        for step in device.dfu:
            view[step.frame] = ("dfu", step.request)
    return view, firmware


def firmware_download(rows: list[dict[str, str]], device: str) -> tuple[int, int, int]:
    """(blocks with data, bytes downloaded, bytes uploaded) of one boot-loader device."""
    dnload, upload = int(c.DfuRequest.DNLOAD), int(c.DfuRequest.UPLOAD)
    mine = [r for r in rows if r["kind"] == "dfu" and r["device"] == device]
    down = [
        int(r["dfu.length"])
        for r in mine
        if not r["request_in"] and int(r["dfu.request"]) == dnload
    ]
    up = [int(r["dfu.length"]) for r in mine if r["request_in"] and int(r["dfu.request"]) == upload]
    return sum(1 for n in down if n > 0), sum(down), sum(up)


def dissector_view(rows: list[dict[str, str]], skip_devices: set[str]) -> dict[int, tuple]:
    view: dict[int, tuple] = {}
    for r in rows:
        frame, kind = int(r["frame.number"]), r["kind"]
        if r["device"] in skip_devices:
            continue
        if kind == "header":
            view[frame] = (kind, int(r["tag"]), int(r["length"]))
        elif kind == "payload":
            view[frame] = (kind, int(r["tag"]), int(r["length"]) if r["length"] else None)
        elif kind == "event":
            view[frame] = (kind, int(r["tag"]), int(r["length"]))
        elif kind == "interrupt":
            view[frame] = (kind, int(r["interrupt"], 16))
        elif kind == "output":
            view[frame] = (kind, int(r["chunk_length"]))
        elif kind == "csr" and not r["request_in"]:
            value = int(r["csr.value"], 16) if r["csr.value"] else None
            write = r["csr.write"] == "1"
            view[frame] = (kind, r["csr.name"], int(r["csr.width"]), write, value)
        elif kind == "dfu" and not r["request_in"]:
            name = DFU_NAMES[int(r["dfu.request"])]
            view[frame] = (kind, name)
    return view


DFU_NAMES = {int(r): r.name for r in c.DfuRequest}
SINGLE_RECORD = ["inout_padding_256x256x3", "inout_stride_256x256x3"]
REAL_CAPTURES = ["conv_50", "dense_300", *SINGLE_RECORD]


def _synthetic_presets() -> list[str]:
    try:
        from lab.synthetic import PRESETS
    except ImportError:
        return []
    return sorted(PRESETS)


def _capture_for(name: str, tmp_path: Path, shared_file) -> Path:
    if name == "built-here":
        return build_edgetpu_capture(tmp_path / "built.pcapng")[0]
    if name == "built-here-no-descriptors":
        return build_edgetpu_capture(tmp_path / "built.pcapng", with_descriptors=False)[0]
    if name.startswith("sample:"):
        path = PROJECT_ROOT / "captures" / f"{name[7:]}.pcapng"
        if not path.exists():
            pytest.skip(f"committed sample capture missing: {path}")
        return path
    if name.startswith("preset:"):
        from lab.synthetic import preset, write_session

        path = tmp_path / f"{name[7:]}.pcapng"
        write_session(preset(name[7:]), path)
        return path
    return shared_file(f"captures/real/{name}.pcapng")


@pytest.mark.parametrize(
    "name",
    [
        "built-here",
        "built-here-no-descriptors",
        *(f"preset:{p}" for p in _synthetic_presets()),
        "sample:sample-synthetic-conv",
        "sample:sample-synthetic-dense",
        *REAL_CAPTURES,
    ],
)
def test_agrees_with_usbtrace_decoder_on_every_frame(
    name, tmp_path, lua_script, tshark_env, shared_file
):
    capture = _capture_for(name, tmp_path, shared_file)
    want, firmware = decoder_view(capture)
    rows = run_tshark(capture, lua_script, tshark_env)
    got = dissector_view(rows, set(firmware))
    if name not in SINGLE_RECORD:
        assert want, "the decoder found nothing: the comparison would be empty"
    differ = {
        f: (want.get(f), got.get(f)) for f in want.keys() | got.keys() if want.get(f) != got.get(f)
    }
    shown = "\n".join(
        f"frame {f}: decoder {w}, dissector {g}" for f, (w, g) in sorted(differ.items())[:20]
    )
    assert not differ, f"{len(differ)} frame(s) differ:\n{shown}"
    for device, summary in firmware.items():
        assert firmware_download(rows, device) == summary


def test_installed_plugin_is_loaded_by_tshark(tmp_path, tshark_env, monkeypatch):
    """`usbtrace wireshark install` puts it where tshark looks: no -X needed afterwards."""
    from usbtrace.cli.main import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert main(["wireshark", "install"]) == 0
    env = dict(tshark_env, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    capture, exp, _ = build_edgetpu_capture(tmp_path / "synthetic.pcapng")
    rows = by_frame(run_tshark(capture, None, env))
    problems = list(check_expected(rows, exp))
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def long_firmware_download(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A firmware download of 256 DFU blocks (770 DFU requests), cut to a 128-byte snap length.

    The first capture after plugging a Coral in. Its DNLOAD blocks are longer than the snap
    length, and it was the several-hundredth cut record that broke the dissector.
    """
    synthetic = pytest.importorskip("lab.synthetic.session", reason="lab/ not beside the tests")
    from lab.synthetic.presets import preset

    blocks = 256
    path = tmp_path_factory.mktemp("dfu") / "firmware.pcapng"
    mp = pytest.MonkeyPatch()
    mp.setattr(synthetic, "FIRMWARE_SINGLE_EP_BYTES", blocks * c.DFU_TRANSFER_SIZE)
    try:
        synthetic.write_session(preset("firmware", snaplen=128), path)
    finally:
        mp.undo()
    return path, blocks


@pytest.mark.parametrize("opts", [("-2",), ("-V",)], ids=["two-pass", "tree"])
def test_long_firmware_download_keeps_usb_fields(
    long_firmware_download, lua_script, tshark_env, opts
):
    """Every DFU request decoded, no Lua error, usb.* fields as without the plug-in."""
    capture, blocks = long_firmware_download
    assert TSHARK is not None
    usb_fields = ("frame.number", "usb.urb_type", "usb.urb_len", "usb.data_len")

    def run(lua: Path | None, extra: tuple[str, ...]) -> list[list[str]]:
        cmd = [TSHARK, "-n", "-r", str(capture), *extra, "-T", "fields"]
        fields = usb_fields
        if lua is not None:
            cmd[1:1] = ["-X", f"lua_script:{lua}"]
            fields += ("edgetpu.dfu.block",)
        for f in fields:
            cmd += ["-e", f]
        res = subprocess.run(cmd, capture_output=True, text=True, env=tshark_env, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "Lua" not in res.stderr, res.stderr[-2000:]
        return [line.split("\t") for line in res.stdout.splitlines()]

    with_lua = run(lua_script, ("-2",))
    plain = run(None, ("-2",))
    assert [r[:4] for r in with_lua] == [r[:4] for r in plain]
    assert sum(bool(r[2]) for r in with_lua) > 4 * blocks  # the usb.* fields are there to compare
    dnload_blocks = [int(r[4]) for r in with_lua if r[4] and r[1] == "'S'"]
    # DNLOAD 0..N (N: the empty closing block) and UPLOAD 0..N-1, each numbered by its block
    assert sorted(dnload_blocks) == sorted([*range(blocks + 1), *range(blocks)])
    # the protocol tree itself (-V): the overflow showed there as a Lua error on every later frame
    cmd = [TSHARK, "-n", "-X", f"lua_script:{lua_script}", "-r", str(capture), *opts]
    res = subprocess.run(cmd, capture_output=True, text=True, env=tshark_env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Lua Error" not in res.stdout and "C stack overflow" not in res.stdout
    assert res.stdout.count("DFU_DNLOAD block") >= blocks
