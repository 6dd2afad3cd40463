"""The committed sample captures: valid pcapng (our own walker and, when installed, tshark), up to
date with the generator, small, and carrying the metadata the README relies on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_pcapng_walker import walk

from lab.synthetic import preset, session_bytes
from usbtrace.formats.metadata import METADATA_PEN, decode_metadata_payload

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "sample-synthetic-conv.pcapng": "conv_50",
    "sample-synthetic-dense.pcapng": "dense_300",
}


@pytest.mark.parametrize("filename", sorted(SAMPLES))
def test_sample_is_committed_small_and_up_to_date(filename: str) -> None:
    path = ROOT / "captures" / filename
    assert path.exists(), f"{path} missing: run scripts/make_sample.py"
    data, _ = session_bytes(preset(SAMPLES[filename]))
    assert path.read_bytes() == data, "out of date: run scripts/make_sample.py --force"
    assert len(data) < 200_000


@pytest.mark.parametrize("filename", sorted(SAMPLES))
def test_sample_structure(filename: str) -> None:
    cap = walk(ROOT / "captures" / filename)
    assert (cap.linktype, cap.tsresol, cap.snaplen) == (220, 6, 128)
    assert "synthetic" in cap.comment.lower()
    times = [p.ts_us for p in cap.packets]
    assert times == sorted(times)
    assert all(p.ts_us == p.hdr_ts_us for p in cap.packets)
    assert all(p.origlen == 64 + p.data_len and p.caplen <= 128 for p in cap.packets)
    assert {p.device for p in cap.packets} == {1, 2, 4}  # root hub, hub, accelerator


def test_conv_sample_metadata_names_the_model_and_the_invokes() -> None:
    path = ROOT / "captures" / "sample-synthetic-conv.pcapng"
    cap = walk(path)
    payloads = [decode_metadata_payload(body) for pen, body in cap.custom if pen == METADATA_PEN]
    assert len(payloads) == 1 and payloads[0] is not None
    meta = payloads[0]
    assert meta["model"] == "conv_50" and meta["synthetic"] is True
    assert meta["link_speed"] == "super" and (meta["bus"], meta["device"]) == (2, 4)
    _, session = session_bytes(preset("conv_50"))
    inferences = session.truth.devices[0].inferences
    assert len(meta["invokes"]) == len(inferences) == 5
    for invoke, req in zip(meta["invokes"], inferences, strict=True):
        # each host invoke() brackets its request's traffic
        assert invoke["start_ns"] <= req.t_start_us * 1000
        assert invoke["end_ns"] >= req.t_end_us * 1000
    json.dumps(meta)  # plain JSON


def test_make_sample_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample.py"), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("filename", sorted(SAMPLES))
def test_tshark_reads_the_sample_like_our_walker(filename: str) -> None:
    path = ROOT / "captures" / filename
    fields = ["frame.number", "usb.urb_len", "usb.data_len", "frame.cap_len", "frame.len"]
    fields += ["usb.device_address", "usb.endpoint_address", "usb.urb_id"]
    # -Y usb: tshark also lists the metadata custom block as a frame
    cmd = ["tshark", "-r", str(path), "-Y", "usb", "-T", "fields", "-E", "separator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n")
    rows = [line.split(",") for line in out if line]
    cap = walk(path)
    assert len(rows) == len(cap.packets)
    for row, p in zip(rows, cap.packets, strict=True):
        assert int(row[0]) == p.frame
        assert (int(row[1]), int(row[2]), int(row[3]), int(row[4])) == (
            p.urb_len,
            p.data_len,
            p.caplen,
            p.origlen,
        )
        assert int(row[5]) == p.device
        assert int(row[6], 16) == p.endpoint
        assert int(row[7], 16) == p.urb_id


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_finds_no_malformed_packets() -> None:
    for filename in SAMPLES:
        out = subprocess.run(
            ["tshark", "-r", str(ROOT / "captures" / filename), "-Y", "_ws.malformed"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == "", out[:500]
