"""The block walker the runner uses to check dumpcap's file and append metadata safely."""

from __future__ import annotations

import io

from usbtrace.capture.pcapng_check import (
    check_file,
    cut_incomplete_tail,
    iter_packets,
    read_metadata_payloads,
)
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata
from usbtrace.formats.pcapng_writer import PcapngWriter


def _write(path, packets=3, stats=True):
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.interface(220, name="usbmon1", tsresol_exp=9)
    for i in range(packets):
        w.packet(bytes(64 + i), 1_700_000_000_123_456_789 + i)
    if stats:
        w.statistics(1_700_000_001_000_000_000, received=packets, dropped=2)
    path.write_bytes(buf.getvalue())


def test_complete_file_counts_blocks(tmp_path):
    path = tmp_path / "a.pcapng"
    _write(path, packets=4)
    check = check_file(path)
    assert check.complete
    assert (check.sections, check.interfaces, check.packets, check.statistics) == (1, 1, 4, 1)
    assert check.dropped == 2


def test_packets_keep_frame_numbers_and_nanoseconds(tmp_path):
    path = tmp_path / "a.pcapng"
    _write(path, packets=3)
    packets = list(iter_packets(path))
    assert [p.frame for p in packets] == [1, 2, 3]
    assert packets[2].ts_ns == 1_700_000_000_123_456_791
    assert [len(p.data) for p in packets] == [64, 65, 66]


def test_half_written_block_is_found_and_cut(tmp_path):
    path = tmp_path / "a.pcapng"
    _write(path, packets=3, stats=False)
    whole = path.read_bytes()
    _write(path, packets=4, stats=False)
    path.write_bytes(path.read_bytes()[: len(whole) + 30])  # a killed writer's partial block
    check = check_file(path)
    assert not check.complete
    assert "cut short" in (check.problem or "")
    assert check.complete_size == len(whole)
    assert cut_incomplete_tail(path, check) == 30
    assert path.read_bytes() == whole
    assert check_file(path).complete


def test_metadata_appended_is_read_back(tmp_path):
    path = tmp_path / "a.pcapng"
    _write(path)
    meta = CaptureMetadata(model="m", bus=2, invokes=[InvokeTiming(0, 10, 20, warmup=True)])
    meta.extra["status"] = "complete"
    append_metadata(str(path), meta)
    check = check_file(path)
    assert check.complete and check.metadata_blocks == 1
    (payload,) = read_metadata_payloads(path)
    back = CaptureMetadata.from_json(payload)
    assert back.model == "m" and back.bus == 2 and back.invokes[0].warmup
    assert back.extra["status"] == "complete"


def test_not_pcapng_is_reported(tmp_path):
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(40))
    check = check_file(path)
    assert not check.complete and "not a pcapng" in (check.problem or "")
