"""The capture reader: formats, byte orders, chunking, metadata, truncation and bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from builders import CaptureBuilder, inference

from lab.usb.writer import encode
from usbtrace.errors import CaptureWarning, InputError
from usbtrace.formats import capture as capture_mod
from usbtrace.formats.capture import Capture, read_all
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata
from usbtrace.formats.pcapng_writer import PcapngWriter
from usbtrace.formats.usbmon import URB_SUBMIT


def small_capture(tmp_path, name="cap.pcapng", **kw):
    b = CaptureBuilder(**kw)
    b.device_descriptor(0)
    t = 1000
    for _ in range(3):
        t = inference(b, t, params=[300_000]) + 1000
    return b, b.write(tmp_path / name)


# -- real captures (shared fixtures) ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, frames, dev4, hub, root, truncated",
    [("conv_50", 422, 306, 114, 2, 10), ("dense_300", 528, 412, 114, 2, 38)],
)
def test_real_capture_frame_counts(shared_file, name, frames, dev4, hub, root, truncated):
    batch, info = read_all(shared_file(f"captures/real/{name}.pcapng"))
    r = batch.records
    assert info.packets == len(r) == frames
    assert list(r["frame"]) == list(range(1, frames + 1))
    dev = r["hdr"]["devnum"]
    assert (np.count_nonzero(dev == 4), np.count_nonzero(dev == 2)) == (dev4, hub)
    assert np.count_nonzero(dev == 1) == root
    assert np.count_nonzero(r["caplen"] < r["hdr"]["data_len"]) == truncated
    assert info.interfaces[0].linktype == 220 and info.interfaces[0].name == "usbmon2"
    assert info.comments and "Rebuilt" in info.comments[0]


def test_real_capture_start_time(shared_file):
    batch, _ = read_all(shared_file("captures/real/conv_50.pcapng"))
    # README: capture start 2019-06-22 14:25:47.508541 UTC
    assert batch.records["ts_ns"][0] == 1561213547_508541_000


def test_three_lengths_kept_apart(shared_file):
    batch, _ = read_all(shared_file("captures/real/inout_stride_256x256x3.pcapng"))
    (rec,) = batch.records
    assert rec["hdr"]["urb_len"] == 196_608
    assert rec["hdr"]["data_len"] == 61_440
    assert rec["caplen"] == 24
    assert bytes(rec["head"][:6]) == bytes([0x7F, 0x80, 0x81] * 2)


# -- synthetic: formats ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_both_orders_and_resolutions(tmp_path, order, nano):
    b, ref_path = small_capture(tmp_path)
    ref, _ = read_all(ref_path)
    path = tmp_path / "x.pcap"
    path.write_bytes(b.pcapng_bytes(format="pcap", order=order, tsresol_exp=9 if nano else 6))
    got, info = read_all(path)
    assert info.format == "pcap"
    assert np.array_equal(got.records, ref.records)


def test_pcapng_big_endian_section(tmp_path):
    b, ref_path = small_capture(tmp_path)
    ref, _ = read_all(ref_path)
    path = tmp_path / "be.pcapng"
    path.write_bytes(b.pcapng_bytes(order=">"))
    got, info = read_all(path)
    assert info.sections == 1
    assert np.array_equal(got.records, ref.records)


def test_several_sections_and_nanosecond_interfaces(tmp_path):
    b, _ = small_capture(tmp_path)
    recs = b.capture_order()
    half = len(recs) // 2
    path = tmp_path / "multi.pcapng"
    first = encode(recs[:half], b.layout(tsresol_exp=9, comment="first"))
    second = encode(recs[half:], b.layout(tsresol_exp=6, comment="second", interface="usbmon9"))
    path.write_bytes(first.data + second.data)
    got, info = read_all(path)
    assert info.sections == 2 and len(info.interfaces) == 2
    assert info.comments == ["first", "second"]
    assert list(got.records["ts_ns"]) == [r.ts_ns for r in recs]
    assert list(got.records["frame"]) == list(range(1, len(recs) + 1))


def test_linktype_189_has_48_byte_header(tmp_path):
    b, ref_path = small_capture(tmp_path)
    ref, _ = read_all(ref_path)
    path = tmp_path / "lt189.pcapng"
    path.write_bytes(b.pcapng_bytes(linktype=189))
    got, _ = read_all(path)
    for name in ("urb_id", "type", "epnum", "urb_len", "data_len", "setup"):
        assert np.array_equal(got.records["hdr"][name], ref.records["hdr"][name])
    assert np.array_equal(got.records["head"], ref.records["head"])


def test_statistics_comments_and_metadata(tmp_path):
    b, _ = small_capture(tmp_path)
    path = b.write(tmp_path / "m.pcapng", drops=7)
    meta = CaptureMetadata(
        model="conv_50",
        link_speed="super",
        bus=2,
        device=4,
        invokes=[InvokeTiming(0, 10, 20, warmup=True)],
        extra={"k": [1]},
    )
    append_metadata(str(path), meta)
    cap = Capture(path)
    list(cap.batches())
    assert cap.info.dropped == 7
    assert cap.info.interfaces[0].received == len(b.records) + 7  # kept + dropped
    assert cap.info.metadata[0]["model"] == "conv_50"
    assert cap.info.metadata[0]["invokes"][0]["warmup"] is True


def test_chunk_boundaries_do_not_change_results(tmp_path, monkeypatch):
    _, path = small_capture(tmp_path)
    ref, _ = read_all(path)
    monkeypatch.setattr(capture_mod, "CHUNK_BYTES", 256)
    got, _ = read_all(path)
    assert np.array_equal(got.records, ref.records)


def test_payload_that_looks_like_a_packet_block_is_not_one(tmp_path):
    """A fake EPB (type, length, trailer) inside a payload must be jumped over."""
    fake = struct.pack("<II", 6, 32) + bytes(20) + struct.pack("<I", 32)
    b = CaptureBuilder()
    b.urb(0x01, 3, 0, 10, length=len(fake) * 2, out_data=fake * 2)
    b.urb(0x01, 3, 20, 30, length=8, out_data=bytes(8))
    got, info = read_all(b.write(tmp_path / "fake.pcapng"))
    assert info.packets == 4
    assert list(got.records["hdr"]["urb_len"]) == [64, 64, 8, 8]


def test_snaplen_truncation_keeps_urb_len(tmp_path):
    b = CaptureBuilder(snaplen=64 + 16)
    b.urb(0x01, 3, 0, 10, length=100_000)
    got, _ = read_all(b.write(tmp_path / "snap.pcapng"))
    sub = got.records[got.records["hdr"]["type"] == URB_SUBMIT][0]
    assert sub["hdr"]["urb_len"] == 100_000
    assert sub["hdr"]["data_len"] == 61_440
    assert sub["caplen"] == 16


# -- bad input ---------------------------------------------------------------------------------


def _error(path) -> InputError:
    with pytest.raises(InputError) as exc:
        list(Capture(path).batches())
    return exc.value


def test_empty_file(tmp_path):
    (tmp_path / "e.pcapng").write_bytes(b"")
    assert "empty" in str(_error(tmp_path / "e.pcapng"))


def test_directory(tmp_path):
    assert "directory" in str(_error(tmp_path))


def test_not_a_capture(tmp_path):
    (tmp_path / "t.pcapng").write_text("hello, this is text\n" * 10)
    err = _error(tmp_path / "t.pcapng")
    assert err.offset == 0 and "not a pcap" in err.message


def test_other_link_type(tmp_path):
    path = tmp_path / "eth.pcapng"
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        w.interface(linktype=1)
        w.packet(bytes(60), 1000)
    assert "not usbmon" in str(_error(path))


def test_cut_file_keeps_prefix_with_warning(tmp_path):
    _, path = small_capture(tmp_path)
    full, _ = read_all(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 50])
    with pytest.warns(CaptureWarning, match="middle of a block"):
        got, info = read_all(cut)
    assert info.cut_at is not None and len(got) == len(full) - 1


def test_lying_block_length(tmp_path):
    _, path = small_capture(tmp_path)
    data = bytearray(path.read_bytes())
    # corrupt the length field of the third block (second packet): point it inside the file
    pos = 0
    for _ in range(3):
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    struct.pack_into("<I", data, pos + 4, 44)
    bad = tmp_path / "lie.pcapng"
    bad.write_bytes(bytes(data))
    err = _error(bad)
    assert err.offset == pos and "disagrees" in err.message
