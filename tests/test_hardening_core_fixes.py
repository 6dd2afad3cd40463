"""Unit-level regressions for the core bugs the fuzzer found (see tests/corpus for whole files)."""

from __future__ import annotations

import random
import struct
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lab.fuzzing.session import edgetpu_session
from lab.usb.writer import Layout, encode, idb
from usbtrace.edgetpu.wire import encode_header
from usbtrace.errors import InputError
from usbtrace.formats import capture
from usbtrace.formats.capture import Capture, Interface, _ts_to_ns
from usbtrace.formats.metadata import CaptureMetadata
from usbtrace.pipeline import decode_capture


def _write(tmp_path: Path, data: bytes, name: str = "c.pcapng") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _packets_before_error(path: Path) -> tuple[int, InputError | None]:
    cap = Capture(path)
    n = 0
    try:
        for b in cap.batches():
            n += len(b)
    except InputError as exc:
        return n, exc
    return n, None


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_damage_in_the_first_chunk_keeps_the_records_before_it(tmp_path: Path, fmt: str) -> None:
    s = edgetpu_session(random.Random(5), inferences=2)
    enc = encode(s.records, Layout(format=fmt))
    k = 30  # damage the 31st record
    data = bytearray(enc.data)
    at = enc.record_starts[k]
    # a block length that disagrees with its trailer / an implausible pcap record length
    off = at + 4 if fmt == "pcapng" else at + 8
    struct.pack_into("<I", data, off, 0xFFFFFF00 if fmt == "pcap" else 0x100)
    n, err = _packets_before_error(_write(tmp_path, bytes(data)))
    assert err is not None and err.offset == at
    assert n == k


def test_a_bad_captured_length_mid_run_keeps_the_packets_before_it(tmp_path: Path) -> None:
    s = edgetpu_session(random.Random(6), inferences=1)
    enc = encode(s.records)
    data = bytearray(enc.data)
    struct.pack_into("<I", data, enc.record_starts[12] + 20, 0x7FFFFFF0)
    n, err = _packets_before_error(_write(tmp_path, bytes(data)))
    assert err is not None and "captured length" in err.message
    assert n == 12


def test_decode_with_partial_ok_reports_the_prefix_and_the_error(tmp_path: Path) -> None:
    s = edgetpu_session(random.Random(7), inferences=3)
    enc = encode(s.records)
    data = bytearray(enc.data)
    at = enc.record_starts[s.first_inference_done + 4]
    struct.pack_into("<I", data, at + 4, 0x104)
    decoded = decode_capture(_write(tmp_path, bytes(data)), partial_ok=True)
    assert decoded.error is not None and decoded.error.offset == at
    (trace,) = decoded.devices
    assert len([e for e in trace.events if e.tag == 4]) >= 2  # caching + first inference


def test_a_garbage_timestamp_resolution_does_not_overflow() -> None:
    iface = Interface(section=1, linktype=220, snaplen=0, tsresol=(10, 63))
    ns = _ts_to_ns(np.array([1, 2**40], dtype=np.uint64), iface)
    assert ns.tolist() == [0, 0]
    iface.tsresol = (10, 27)  # still representable: 2**40 units of 1e-27 s are < 1 ns
    assert _ts_to_ns(np.array([2**40], dtype=np.uint64), iface).tolist() == [0]


def test_a_huge_timestamp_offset_is_ignored_with_a_warning(tmp_path: Path) -> None:
    s = edgetpu_session(random.Random(8), inferences=1)
    enc = encode(s.records)
    data = bytearray(enc.data)
    data[enc.block_starts[1] : enc.block_starts[2]] = idb(
        Layout(), [(14, struct.pack("<q", -(2**62)))]
    )
    cap = Capture(_write(tmp_path, bytes(data)))
    first = next(iter(cap.batches()))
    assert first.records["ts_ns"][0] == s.records[0].ts_ns // 1000 * 1000
    assert any("offset" in w for w in cap.info.warnings)


def test_metadata_with_wrong_types_is_dropped_key_by_key() -> None:
    meta = CaptureMetadata.from_json(
        {
            "model": 1.5,
            "label": "bench",
            "bus": True,
            "device": 4,
            "invokes": [
                None,
                {"index": "0", "start_ns": 1, "end_ns": 2},
                {"index": 1, "start_ns": 5, "end_ns": 9},
            ],
        }
    )
    assert meta.model is None and meta.label == "bench"
    assert meta.bus is None and meta.device == 4
    assert [(i.index, i.start_ns, i.end_ns) for i in meta.invokes] == [(1, 5, 9)]
    assert CaptureMetadata.from_json({"invokes": None}).invokes == []


@pytest.mark.parametrize("chunk", [100, 700, 5000])
def test_giving_up_on_headerless_bulk_traffic_does_not_depend_on_batching(
    tmp_path: Path, chunk: int, monkeypatch
) -> None:
    from lab.fuzzing.mutate import m_midstream

    # a descriptor-less device: 100 headerless URBs, then the protocol; one big read used to
    # see the later headers before deciding, small reads gave up after the 64th URB
    s = edgetpu_session(random.Random(9), inferences=1, enumerate_device=False)
    recs = list(s.records)
    rng = random.Random(1)
    while "100 headerless" not in m_midstream(rng, recs := list(s.records)):
        pass
    path = _write(tmp_path, encode(recs).data)
    whole = decode_capture(path)
    monkeypatch.setattr(capture, "CHUNK_BYTES", chunk)
    pieces = decode_capture(path)
    assert [t.name for t in whole.devices] == [t.name for t in pieces.devices]
    assert whole.other_devices == pieces.other_devices


def test_mixed_endpoints_in_one_batch_frame_0x01_headers_as_single_ep() -> None:
    from usbtrace.edgetpu.framing import ROLE_HEADER, OutFramer

    # header(16) + 16 B payload on 0x01, then a stray URB on 0x02, then header + payload
    hdr = np.zeros((5, 16), dtype=np.uint8)
    hdr[0, :8] = list(encode_header(1, 16))
    hdr[3, :8] = list(encode_header(1, 16))
    ep = np.array([1, 1, 2, 1, 1], dtype=np.uint8)
    length = np.array([8, 16, 100, 8, 16])
    cap = np.array([8, 16, 16, 8, 16])
    whole = OutFramer()
    whole.feed(np.arange(1, 6), ep, length, cap, hdr)
    _, _, roles = whole.assignments()
    assert roles[[0, 3]].tolist() == [ROLE_HEADER, ROLE_HEADER]
    assert whole.valid_headers == 2


@pytest.mark.parametrize("chunk", [128, 1000, 32 << 20])
def test_results_do_not_depend_on_the_read_chunk_size(
    tmp_path: Path, chunk: int, monkeypatch
) -> None:
    from usbtrace.pipeline import summarize_file

    path = Path(__file__).parent / "corpus" / "multi-ep-switch-mid-capture.pcapng"
    want = [s.to_json() for s in summarize_file(path)]
    monkeypatch.setattr(capture, "CHUNK_BYTES", chunk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [s.to_json() for s in summarize_file(path)]
    assert got == want
    assert want[0]["requests"][0]["kind"] == "parameter-caching"


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
@pytest.mark.parametrize("command", ["summarize", "predict", "timeline", "diff", "export"])
def test_damage_before_any_edgetpu_traffic_is_what_the_error_says(
    tmp_path: Path, fmt: str, command: str
) -> None:
    """A file broken at its first record holds no Edge TPU because of the damage: the error
    names the damage and where, not "no Edge TPU traffic found (try --device BUS.ADDR)"."""
    from lab.fuzzing.oracle import run_cli

    s = edgetpu_session(random.Random(8), inferences=1)
    enc = encode(s.records, Layout(format=fmt))
    data = bytearray(enc.data)
    at = enc.record_starts[0]
    struct.pack_into("<I", data, at + 4 if fmt == "pcapng" else at + 8, 0xFFFFFF00)
    f = _write(tmp_path, bytes(data), f"c.{fmt}")
    good = _write(tmp_path, encode(s.records).data, "good.pcapng")
    argv = {
        "summarize": ["summarize", "--jobs", "1", str(f)],
        "predict": ["predict", str(f)],
        "timeline": ["timeline", "-o", str(tmp_path / "t.svg"), str(f)],
        "diff": ["diff", str(good), str(f)],
        "export": ["export", "--jobs", "1", "--csv", "--out-dir", str(tmp_path / "o"), str(f)],
    }[command]
    o = run_cli(argv)
    assert o.traceback is None and o.status == 2, (o.status, o.stderr)
    (line,) = o.stderr.splitlines()
    assert line.startswith(f"usbtrace: {f}: at byte {at}: "), line
    assert "no Edge TPU traffic before" in line and "--device" not in line, line


def test_a_file_cut_before_any_edgetpu_traffic_says_so(tmp_path: Path) -> None:
    from usbtrace.pipeline import summarize_file

    s = edgetpu_session(random.Random(9), inferences=1)
    enc = encode(s.records)
    f = _write(tmp_path, enc.data[: enc.record_starts[0] + 10])
    with pytest.raises(InputError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summarize_file(f)
    assert caught.value.offset == enc.record_starts[0]
    assert "middle of a block (no Edge TPU traffic before)" in caught.value.message


def test_a_gzip_compressed_capture_is_called_compressed(tmp_path: Path) -> None:
    """Wireshark writes and reads .pcapng.gz; usbtrace does not read them, and said "unknown
    magic", as of garbage. Whole or cut, the error says what the file is and what to do."""
    import gzip

    s = edgetpu_session(random.Random(10), inferences=1)
    packed = gzip.compress(encode(s.records).data)
    for data in (packed, packed[:100]):
        f = _write(tmp_path, data, "c.pcapng.gz")
        with pytest.raises(InputError) as caught:
            Capture(f)
        assert caught.value.offset == 0
        assert caught.value.message.startswith("is gzip-compressed")
        assert "gunzip" in caught.value.message


def test_csr_opening_duration_is_never_negative_when_time_goes_back(tmp_path: Path) -> None:
    """The opening CSR accesses' duration was last minus first in capture order: a capture whose
    clock stepped back between them (or a damaged timestamp) gave a negative duration."""
    from builders import CaptureBuilder, inference

    from usbtrace.pipeline import summarize_file

    b = CaptureBuilder()
    b.device_descriptor(0)
    b.csr(0x1A30C, 100, value=1)
    b.csr(0x1A314, 300, value=2)
    inference(b, 1000)
    records = b.capture_order()
    # the second CSR write (submit and completion) stamped 5 ms before the first, in place
    second = [r for r in records if r.setup is not None and r.setup[2:4] == b"\x14\xa3"]
    late = {r.urb_id for r in second}
    records = [replace(r, ts_ns=r.ts_ns - 5_000_000) if r.urb_id in late else r for r in records]
    f = _write(tmp_path, encode(records, b.layout()).data)
    (s,) = summarize_file(f)
    csr = s.to_json()["summary"]["csr_accesses"]
    assert csr["open"] == 2
    assert csr["open_duration_s"] == pytest.approx(0.0048)  # 300 µs - 100 µs + 5 ms, unsigned
