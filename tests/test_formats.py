"""Every capture format gives the same analysis: usbmon, USBPcap, macOS (pcap/pcapng), usbmon text.

A session is written in each format by the lab's writers (``lab/usb``) and summarized; the
``summarize --json`` output must equal the usbmon original's byte for byte once the fields a format
cannot carry are taken out. Those fields, per format (also in the README's format table):

* USBPcap and macOS pcapng: none (usbtrace's metadata block travels in the pcapng).
* USBPcap and macOS pcap: what comes from usbtrace's metadata block (model name, host timings,
  reconciliation with the model): classic pcap has nowhere to put it.
* usbmon text: the metadata too, and absolute time: the text timestamp is the kernel's monotonic
  clock modulo 4096 s, so ``t_start``/``t_end`` are shifted by one constant (checked exactly).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from lab.synthetic import generate, preset
from lab.synthetic.session import write_pcapng
from lab.usb.convert import convert
from lab.usb.darwin import write_darwin
from lab.usb.source import read_usbmon
from lab.usb.usbmon_text import write_usbmon_text
from lab.usb.usbpcap import packets as usbpcap_packets
from lab.usb.usbpcap import write_usbpcap
from usbtrace.cli.main import main
from usbtrace.errors import CaptureWarning, InputError, UsageError
from usbtrace.formats.capture import Capture, read_all
from usbtrace.formats.metadata import METADATA_PEN, encode_metadata
from usbtrace.formats.usbpcap import (
    LINKTYPE_USBPCAP,
    MAX_IN_DATA_PENDING,
    errno_to_usbd,
    usbd_to_errno,
)
from usbtrace.pipeline import decode_capture

METADATA_FIELDS = {
    "model",
    "model_source",  # how the model is known: from the metadata, or a guess without it
    "host_latency_s",
    "host_overhead_s",
    "host_latency_median_s",
    "host_overhead_median_s",
    "reconciliation",
}
ABSOLUTE_TIME = {"t_start", "t_end"}
NOT_CARRIED = {
    "usbpcap-pcapng": set(),
    "usbpcap-pcap": METADATA_FIELDS,
    "darwin-pcapng": set(),
    "darwin-pcap": METADATA_FIELDS,
    "usbmon-text": METADATA_FIELDS | ABSOLUTE_TIME,
}
FORMATS = sorted(NOT_CARRIED)
REAL = ("conv_50", "dense_300")  # the two complete runs (the inout files hold no request)
PRESETS = ("conv_50", "dense_300", "dense_300_usb2", "multi_ep", "firmware", "two_tpus")


def summarize_json(path: Path) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["summarize", "--json", str(path)]) == 0
    doc = json.loads(out.getvalue())
    for cap in doc["captures"]:
        cap.pop("file")
    return doc


def without(doc: object, keys: set[str]) -> object:
    if isinstance(doc, dict):
        return {k: without(v, keys) for k, v in doc.items() if k not in keys}
    if isinstance(doc, list):
        return [without(v, keys) for v in doc]
    return doc


def assert_same_analysis(original: dict, other: dict, fmt: str) -> None:
    dropped = NOT_CARRIED[fmt]
    a = json.dumps(without(original, dropped), sort_keys=True)
    b = json.dumps(without(other, dropped), sort_keys=True)
    assert a == b
    if dropped >= ABSOLUTE_TIME:
        # times lost their origin, not their differences: one constant shift, to the µs
        shifts = {
            round((r[k] - s[k]) * 1e6)
            for c, d in zip(original["captures"], other["captures"])
            for r, s in zip(c["requests"], d["requests"])
            for k in ABSOLUTE_TIME
        }
        assert len(shifts) == 1, shifts


def write_as(fmt: str, records: list, path: Path, custom_blocks: list | None = None) -> Path:
    if fmt == "usbmon-text":
        with open(path, "x", encoding="ascii") as text:
            write_usbmon_text(records, text)
    else:
        kind, container = fmt.split("-")
        writer = write_usbpcap if kind == "usbpcap" else write_darwin
        with open(path, "xb") as stream:
            writer(
                records,
                stream,
                container=container,
                custom_blocks=custom_blocks or [],
            )
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for name in PRESETS:
        profile = preset(name)
        session = generate(profile)
        base = root / f"{name}.pcapng"
        with open(base, "xb") as stream:
            write_pcapng(session, profile, stream)
        blocks = [(METADATA_PEN, encode_metadata(session.metadata), 0xBAD)]
        files = {
            fmt: write_as(fmt, session.records, root / f"{name}.{fmt}", blocks) for fmt in FORMATS
        }
        out[name] = (summarize_json(base), files, session)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", PRESETS)
def test_synthetic_session_summarizes_the_same_in_every_format(name, fmt, synthetic) -> None:
    original, files, _ = synthetic[name]
    other = summarize_json(files[fmt])
    assert other["captures"], "no Edge TPU found"
    assert_same_analysis(original, other, fmt)


def test_the_dropped_fields_are_really_lost_without_metadata(synthetic) -> None:
    """The exclusions are not blanket: pcapng keeps host timings, pcap and text lose them."""
    original, files, _ = synthetic["dense_300"]
    assert "host_latency_s" in json.dumps(original)
    assert "host_latency_s" in json.dumps(summarize_json(files["usbpcap-pcapng"]))
    for fmt in ("usbpcap-pcap", "darwin-pcap", "usbmon-text"):
        assert "host_latency_s" not in json.dumps(summarize_json(files[fmt]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", REAL)
def test_real_capture_converted_gives_the_same_requests_and_bytes(name, fmt, tmp_path) -> None:
    source = shared_path(f"captures/real/{name}.pcapng")
    out = tmp_path / f"{name}.{fmt}"
    assert convert(source, out, fmt) == read_all(source)[1].packets
    original, other = summarize_json(source), summarize_json(out)
    assert_same_analysis(original, other, fmt)
    if name == "dense_300":  # the README's facts, in the converted file
        (cap,) = other["captures"]
        inference = cap["requests"][1]["bytes"]
        assert inference == {
            "instructions": 543840,
            "input": 16,
            "parameters": 2943616,
            "output": 8,
        }


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_from_standard_input(fmt, synthetic) -> None:
    """``-`` is told by content too (README "Capture formats"): a pipe gives the file's
    analysis, the metadata a pcapng carries at its end included."""
    _, files, _ = synthetic["dense_300"]
    with open(files[fmt], "rb") as stdin:
        run = subprocess.run(
            [sys.executable, "-m", "usbtrace", "summarize", "--json", "-"],
            stdin=stdin,
            capture_output=True,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    piped = json.loads(run.stdout)
    from_file = summarize_json(files[fmt])
    for cap, other in zip(piped["captures"], from_file["captures"]):
        assert cap.pop("file") == "-"
        if other["model_source"] == "file name (guess)":  # a pipe has no name to guess from
            assert (cap["model"], cap["model_source"]) == (None, None)
            cap["model"], cap["model_source"] = other["model"], other["model_source"]
    assert piped == from_file


def test_format_is_found_by_content_not_by_name(synthetic, tmp_path) -> None:
    _, files, _ = synthetic["conv_50"]
    disguised = tmp_path / "capture.pcapng"
    shutil.copy(files["usbmon-text"], disguised)
    assert Capture(disguised).info.format == "usbmon-text"
    assert Capture(files["usbpcap-pcap"]).info.format == "pcap"
    _, info = read_all(files["usbpcap-pcapng"])
    assert [i.linktype for i in info.interfaces] == [LINKTYPE_USBPCAP]


def test_usbmon_text_fields_follow_the_kernel_format(tmp_path) -> None:
    # two events as mon_text.c prints them: a vendor read of a 32-bit CSR and its completion,
    # and a bulk write whose timestamp has wrapped past 4096 s
    text = (
        "ffff8f0c8e2f4c00 4095999990 S Ci:2:004:0 s c0 01 a30c 0001 0004 4 <\n"
        "ffff8f0c8e2f4c00 4095999995 C Ci:2:004:0 0 4 = 9a081902\n"
        "ffff8f0c4b1e9000 0000000007 S Bo:2:004:1 -115 8 = 0c6d0100 00000000\n"
    )
    path = tmp_path / "t.txt"
    path.write_text(text)
    batch, info = read_all(path)
    h = batch.records["hdr"]
    assert info.format == "usbmon-text" and info.packets == 3
    assert h["urb_id"].tolist() == [0xFFFF8F0C8E2F4C00, 0xFFFF8F0C8E2F4C00, 0xFFFF8F0C4B1E9000]
    assert bytes(h["type"].tolist()) == b"SCS"
    assert h["epnum"].tolist() == [0x80, 0x80, 0x01]
    assert (h["busnum"].tolist(), h["devnum"].tolist()) == ([2, 2, 2], [4, 4, 4])
    assert bytes(h["setup"][0].tolist()) == bytes.fromhex("c0010ca301000400")
    assert h["status"].tolist() == [-115, 0, -115]
    assert h["urb_len"].tolist() == [4, 4, 8]
    assert batch.control_payloads == {2: bytes.fromhex("9a081902")}
    assert bytes(batch.records["head"][2][:8].tolist()) == bytes.fromhex("0c6d010000000000")
    # 4095.999995 s -> 4096.000007 s: 12 µs later, not 4096 s earlier
    assert np.diff(batch.records["ts_ns"]).tolist() == [5_000, 12_000]


def test_usbmon_text_bad_line_keeps_the_prefix_and_names_the_byte(tmp_path) -> None:
    good = "ffff8f0c8e2f4c00 1000 S Bo:2:004:1 -115 8 = 0c6d0100 00000000\n"
    path = tmp_path / "t.txt"
    path.write_text(good + "this is not an event\n" + good)
    cap = Capture(path)
    got = []
    with pytest.raises(InputError) as err:
        for batch in cap.batches():
            got.append(len(batch))
    assert got == [1]
    assert err.value.offset == len(good)
    r = subprocess.run(
        [sys.executable, "-m", "usbtrace", "summarize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the readable prefix is analysed; the damage is an integrity problem naming the byte
    assert "Traceback" not in r.stderr
    assert f"unreadable after byte {len(good)}: not a usbmon text event line" in r.stderr


def test_usbpcap_status_maps_to_what_usbmon_shows() -> None:
    statuses = np.array([0, 0xC0010000, 0xC0000004, 0xC0007000, 0xC0001234], dtype=np.uint32)
    assert usbd_to_errno(statuses).tolist() == [0, -2, -32, -19, 0xC0001234 - (1 << 32)]
    for errno in (0, -2, -32, -19, -71, -110):
        assert usbd_to_errno(np.array([errno_to_usbd(errno)], np.uint32)).tolist() == [errno]


_USBPCAP_BASE = struct.Struct("<HQIHBHHBBI")


def _stage(
    base: tuple, stage: int, body: bytes, n: int, info: int, ts: int
) -> tuple[int, bytes, int]:
    """One USBPcap control packet: ``base``'s header with another stage, info and length."""
    _, irp, status, fn, _, bus, dev, ep, xfer, _ = base
    head = _USBPCAP_BASE.pack(28, irp, status, fn, info, bus, dev, ep, xfer, n)
    return ts, head + bytes([stage]) + body, 28 + n


def _old_style(packets: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes, int]]:
    """USBPcap before 1.5: control SETUP carries only the setup packet, then DATA (OUT data as a
    submission, before 1.3 wrongly marked PDO -> FDO; IN data as a completion) and STATUS."""
    out = []
    for ts, data, orig in packets:
        base = _USBPCAP_BASE.unpack_from(data)
        info, xfer, dlen = base[4], base[8], base[9]
        if xfer != 2:
            out.append((ts, data, orig))
            continue
        body = data[28:]  # what was kept of ``dlen`` bytes
        if info == 0:
            out.append(_stage(base, 0, body[:8], 8, 0, ts))
            if dlen > 8:  # with the pre-1.3 direction bit
                out.append(_stage(base, 1, body[8:], dlen - 8, 1, ts + 1))
        else:
            if dlen:
                out.append(_stage(base, 1, body, dlen, 1, ts))
            out.append(_stage(base, 2, b"", 0, 1, ts + 1))
    return out


def test_usbpcap_old_control_stages_give_the_same_urbs(tmp_path) -> None:
    session = generate(preset("conv_50"))
    files = {}
    for style, pkts in (
        ("new", list(usbpcap_packets(session.records))),
        ("old", _old_style(list(usbpcap_packets(session.records)))),
    ):
        path = tmp_path / f"{style}.pcap"
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_USBPCAP))
            for ts, data, orig in pkts:
                sec, nsec = divmod(ts, 1_000_000_000)
                f.write(struct.pack("<IIII", sec, nsec // 1000, len(data), orig) + data)
        files[style] = path
    new, old = read_all(files["new"])[0], read_all(files["old"])[0]
    fields = ["urb_id", "type", "xfer", "epnum", "devnum", "status", "urb_len", "setup"]
    for f in fields:
        assert np.array_equal(new.records["hdr"][f], old.records["hdr"][f]), f
    assert np.array_equal(new.records["head"], old.records["head"])
    assert sorted(new.control_payloads.values()) == sorted(old.control_payloads.values())
    assert summarize_json(files["new"]) == summarize_json(files["old"])


def test_usbpcap_header_length_that_lies_is_skipped(tmp_path) -> None:
    session = generate(preset("conv_50"))
    pkts = list(usbpcap_packets(session.records))
    ts, data, orig = pkts[0]
    liar = struct.pack("<H", 60000) + data[2:]
    path = tmp_path / "liar.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_USBPCAP))
        for t, d, o in [(ts, liar, orig), *pkts[1:]]:
            f.write(struct.pack("<IIII", t // 10**9, t % 10**9 // 1000, len(d), o) + d)
    batch, info = read_all(path)
    assert len(batch) == len(pkts) - 1 and info.short_records == 1


def _write_usbpcap_pcap(path: Path, pkts: list[tuple[int, bytes, int]]) -> Path:
    with open(path, "xb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_USBPCAP))
        for ts, data, orig in pkts:
            sec, nsec = divmod(ts, 1_000_000_000)
            f.write(struct.pack("<IIII", sec, nsec // 1000, len(data), orig) + data)
    return path


def _kept(path: Path) -> tuple[dict[int, bytes], list[int]]:
    """``Capture(keep_data=True)``'s data, and the frames of the records that captured some."""
    data: dict[int, bytes] = {}
    frames: list[int] = []
    for batch in Capture(path, keep_data=True).batches():
        data.update(batch.data)
        frames += batch.records["frame"][batch.records["caplen"] > 0].tolist()
    return data, frames


@pytest.mark.parametrize("fmt", [*FORMATS, "usbpcap-old"])
def test_keep_data_is_honoured_in_every_format(fmt, synthetic, tmp_path) -> None:
    """The replay re-sends what ``Capture(keep_data=True)`` kept: every format keeps each
    record's data, under its frame, the same bytes as the usbmon original (usbmon text shows
    only the first 32). Old-style USBPcap's OUT DATA stage goes with its SETUP packet."""
    _, files, session = synthetic["firmware"]
    original = tmp_path / "usbmon.pcapng"
    with open(original, "xb") as stream:
        write_pcapng(session, preset("firmware"), stream)
    if fmt == "usbpcap-old":
        path = _write_usbpcap_pcap(
            tmp_path / "old.pcap", _old_style(list(usbpcap_packets(session.records)))
        )
    else:
        path = files[fmt]
    want, _ = _kept(original)
    got, frames = _kept(path)
    assert len(want) > 100
    assert sorted(got) == sorted(frames)
    cut = 32 if fmt == "usbmon-text" else None
    assert sorted(v[:cut] for v in got.values()) == sorted(v[:cut] for v in want.values())


def test_usbpcap_in_data_without_status_is_bounded(tmp_path, capsys) -> None:
    """Old-style control IRPs whose IN DATA came and STATUS never does (a crafted file): the
    reader remembers a bounded number, the oldest first to go, and says so in the warnings."""
    many = MAX_IN_DATA_PENDING + 500

    # header fields as _USBPCAP_BASE packs them: control IN on bus 1, device 3, IRP id irp
    def base(irp: int) -> tuple:
        return (28, irp, 0, 0x0008, 1, 1, 3, 0x80, 2, 0)

    pkts = [_stage(base(irp), 1, b"\x12\x01", 2, 1, 1000 * irp) for irp in range(1, many + 1)]
    # the STATUS of the first IRP (let go of: it stays, a second completion) and of the last
    pkts += [_stage(base(irp), 2, b"", 0, 1, 10**9 + irp) for irp in (1, many)]
    path = _write_usbpcap_pcap(tmp_path / "crafted.pcap", pkts)
    cap = Capture(path)
    with pytest.warns(CaptureWarning, match="no STATUS stage"):
        records = [b.records for b in cap.batches()]
    urbs = np.concatenate(records)["hdr"]["urb_id"].tolist()
    assert len(urbs) == many + 1 and urbs.count(1) == 2 and urbs.count(many) == 1
    assert len(cap._reader.usbpcap.in_data_seen) <= MAX_IN_DATA_PENDING
    assert any("no STATUS stage" in w for w in cap.info.warnings)
    # and the user is told, as of a cut file: the later STATUS stage reads as a completion
    assert main(["inspect", str(path)]) == 1  # no Edge TPU in it
    err = capsys.readouterr().err
    assert f"usbtrace: warning: {path}: more than {MAX_IN_DATA_PENDING} control" in err, err
    assert err.count("no STATUS stage") == 1


def test_usbpcap_an_irp_id_seen_again_is_the_newest_waiting(tmp_path) -> None:
    """IRP ids are reused: one whose IN DATA comes again is the newest of those waiting for
    their STATUS, not the oldest, and is not the first let go of."""

    def base(irp: int) -> tuple:
        return (28, irp, 0, 0x0008, 1, 1, 3, 0x80, 2, 0)

    def data(irp: int, t: int) -> bytes:
        return _stage(base(irp), 1, b"\x12\x01", 2, 1, t)

    irps = [1, *range(2, MAX_IN_DATA_PENDING + 1), 1, MAX_IN_DATA_PENDING + 1]
    pkts = [data(irp, 1000 * k) for k, irp in enumerate(irps)]
    pkts.append(_stage(base(1), 2, b"", 0, 1, 10**9))  # the STATUS of IRP 1's second transfer
    path = _write_usbpcap_pcap(tmp_path / "reused.pcap", pkts)
    with pytest.warns(CaptureWarning, match="no STATUS stage"):  # IRP 2 was let go of
        records = np.concatenate([b.records for b in Capture(path).batches()])
    urbs = records["hdr"]["urb_id"].tolist()
    assert urbs.count(1) == 2  # its two DATA packets; its STATUS was known for what it is


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("fmt", ["usbpcap-pcap", "usbpcap-pcapng", "darwin-pcap", "darwin-pcapng"])
def test_verify_agrees_with_tshark(fmt, synthetic) -> None:
    """tshark's own dissection of the written files (USBPcap, macOS) against usbtrace's reader:
    per device, endpoint and direction, packets and data bytes."""
    _, files, _ = synthetic["dense_300"]
    r = subprocess.run(
        [sys.executable, "-m", "usbtrace", "verify", str(files[fmt])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agrees with tshark" in r.stdout


def test_verify_says_tshark_cannot_read_usbmon_text(synthetic) -> None:
    _, files, _ = synthetic["conv_50"]
    r = subprocess.run(
        [sys.executable, "-m", "usbtrace", "verify", str(files["usbmon-text"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not read usbmon text" in r.stderr


def test_source_reader_reads_back_what_the_generator_wrote(synthetic, tmp_path) -> None:
    """The converter's input side: a usbmon pcapng read back whole, record for record."""
    _, _, session = synthetic["conv_50"]
    profile = preset("conv_50")
    path = tmp_path / "s.pcapng"
    with open(path, "xb") as stream:
        write_pcapng(session, profile, stream)
    back = read_usbmon(path)
    assert len(back.records) == len(session.records)
    keep = profile.snaplen - 64
    for a, b in zip(back.records, session.records):
        assert (a.urb_id, a.ts_ns, a.urb_type, a.epnum, a.urb_len, a.setup) == (
            b.urb_id,
            b.ts_ns,
            b.urb_type,
            b.epnum,
            b.urb_len,
            b.setup,
        )
        assert a.data == b.data[: min(keep, b.data_len)]
    assert [pen for pen, _, _ in back.custom_blocks] == [METADATA_PEN]


def test_darwin_header_fields_as_wireshark_reads_them(tmp_path) -> None:
    """A hand-made macOS packet pair (not from the lab writer): a vendor read of a CSR."""
    setup = bytes.fromhex("c0010ca301000400")
    hdr = struct.Struct("<HBBIIIQIBBBB")
    sub = hdr.pack(0x0100, 32, 0, 4, 0, 0, 0xABC, 0x14100000, 3, 7, 0x80, 0) + setup
    done = hdr.pack(0x0100, 32, 1, 4, 0, 0, 0xABC, 0x14100000, 3, 7, 0x80, 0) + b"\x9a\x08\x19\x02"
    path = tmp_path / "mac.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 266))
        for i, pkt in enumerate((sub, done)):
            f.write(struct.pack("<IIII", 1_700_000_000, i * 10, len(pkt), len(pkt)) + pkt)
    batch, _ = read_all(path)
    h = batch.records["hdr"]
    assert h["urb_id"].tolist() == [0xABC, 0xABC] and bytes(h["type"].tolist()) == b"SC"
    assert (h["busnum"].tolist(), h["devnum"].tolist()) == ([0x14, 0x14], [7, 7])
    assert h["xfer"].tolist() == [2, 2] and h["epnum"].tolist() == [0x80, 0x80]
    assert bytes(h["setup"][0].tolist()) == setup and h["urb_len"].tolist() == [4, 4]
    assert h["status"].tolist() == [-115, 0]
    assert batch.control_payloads == {2: bytes.fromhex("9a081902")}


@pytest.mark.filterwarnings("ignore::usbtrace.errors.CaptureWarning")
@pytest.mark.parametrize("fmt", ["usbmon-text", "usbpcap-pcapng", "darwin-pcap"])
def test_damaged_files_give_results_or_one_input_error(fmt, synthetic, tmp_path) -> None:
    """Metadata inside a file is untrusted: random byte damage never raises anything else."""
    _, files, _ = synthetic["conv_50"]
    clean = files[fmt].read_bytes()
    rng = np.random.default_rng(16)
    for case in range(150):
        raw = bytearray(clean)
        for pos in rng.integers(0, len(raw), size=int(rng.integers(1, 12))).tolist():
            raw[pos] = int(rng.integers(0, 256))
        path = tmp_path / f"{case}.bin"
        path.write_bytes(bytes(raw))
        with contextlib.suppress(InputError, UsageError):
            decode_capture(path, partial_ok=True)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("fmt", ["usbpcap-pcapng", "darwin-pcap"])
def test_verify_agrees_with_tshark_on_a_converted_real_capture(fmt, tmp_path) -> None:
    source = shared_path("captures/real/dense_300.pcapng")
    out = tmp_path / f"dense_300.{fmt}"
    convert(source, out, fmt)
    r = subprocess.run(
        [sys.executable, "-m", "usbtrace", "verify", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agrees with tshark: 528 frames" in r.stdout
