"""The runner's check of dumpcap's file (by the capture reader) before it appends metadata."""

from __future__ import annotations

import io

from usbtrace.capture.pcapng_check import (
    check_file,
    cut_incomplete_tail,
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


def test_damage_inside_the_file_is_reported_and_nothing_is_cut(tmp_path):
    """A block whose two lengths disagree in the middle is a problem, but not a half-written
    tail: the bytes after it are the user's and stay."""
    path = tmp_path / "a.pcapng"
    _write(path, packets=4)
    data = bytearray(path.read_bytes())
    pos = 0
    for _ in range(3):  # section, interface, first packet: damage the second packet block
        pos += int.from_bytes(data[pos + 4 : pos + 8], "little")
    total = int.from_bytes(data[pos + 4 : pos + 8], "little")
    data[pos + 4 : pos + 8] = (total + 4).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    check = check_file(path)
    assert not check.complete and check.problem
    assert check.complete_size == len(data)
    assert cut_incomplete_tail(path, check) == 0
    assert path.read_bytes() == bytes(data)


def test_a_non_usbmon_capture_is_checked_too(tmp_path):
    """The runner's own tests record the loopback interface (link type 1)."""
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.interface(1, name="lo")
    w.packet(bytes(60), 1_700_000_000_000_000_000)
    path = tmp_path / "lo.pcapng"
    path.write_bytes(buf.getvalue())
    check = check_file(path)
    assert check.complete and (check.interfaces, check.packets) == (1, 1)
