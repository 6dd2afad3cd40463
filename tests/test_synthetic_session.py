"""The synthetic session generator: its files say what its ground truth says.

Every check reads the written file back with the tests' own block walker
(``synthetic_pcapng_walker``) and rebuilds requests by the protocol reference's rules, so a
generator bug shows up as a disagreement between file and truth. USB 2, DFU and multi-EP sessions
follow the driver source only (never captured for real); these tests check the synthetic files
against that description, not against real traffic.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import pytest
from synthetic_pcapng_walker import Capture, Packet, Urb, out_transfers, pair_urbs, walk

from lab.synthetic import PRESETS, generate, preset, write_session
from lab.synthetic.profile import DeviceProfile, SessionProfile
from lab.synthetic.session import Session
from lab.synthetic.truth import DeviceTruth, union_length
from lab.usb.record import usbmon_headers
from usbtrace.edgetpu.constants import (
    EVENT_REQUEST_DONE,
    FIRMWARE_SINGLE_EP_BYTES,
    MAX_ASYNC_BULK_OUT,
    MAX_BULK_OUT_CHUNK,
    REGISTERS_BY_ADDRESS,
    DfuRequest,
)

ALL = sorted(PRESETS)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Session, Capture]]:
    """Every preset, written once and read back."""
    out = {}
    root = tmp_path_factory.mktemp("presets")
    for name in ALL:
        path = root / f"{name}.pcapng"
        session = write_session(preset(name), path)
        out[name] = (session, walk(path))
    return out


def device_packets(cap: Capture, dev: DeviceTruth) -> list[Packet]:
    return [p for p in cap.packets if p.bus == dev.bus and p.device == dev.address]


def events(packets: list[Packet]) -> list[Packet]:
    return [
        p for p in packets if p.kind == "C" and p.endpoint == 0x82 and p.status == 0 and p.xfer == 3
    ]


def assign_requests(transfers, event_times: list[int]) -> list[list]:
    """Protocol reference §10.3: a transfer belongs to the first request whose event completes at
    or after its last payload URB completed."""
    out: list[list] = [[] for _ in event_times]
    for tr in transfers:
        done = max(u.complete.ts_us for u in tr.chunks)
        k = next(i for i, t in enumerate(event_times) if t >= done)
        out[k].append(tr)
    return out


@pytest.mark.parametrize("name", ALL)
def test_requests_in_the_file_match_the_truth(name: str, written) -> None:
    session, cap = written[name]
    profile = preset(name)
    for dev_profile, dev in zip(profile.devices, session.truth.devices, strict=True):
        packets = device_packets(cap, dev)
        urbs = pair_urbs(packets)
        transfers = out_transfers(urbs, multi_ep=dev.multi_ep)
        evs = events(packets)
        assert len(evs) == len(dev.requests) == len(dev_profile.requests())
        assert all(e.data == EVENT_REQUEST_DONE for e in evs)
        assert [e.ts_us for e in evs] == [r.event_us for r in dev.requests]
        grouped = assign_requests(transfers, [e.ts_us for e in evs])
        for req, got, (kind, spec) in zip(
            dev.requests, grouped, dev_profile.requests(), strict=True
        ):
            assert req.kind == kind
            assert [(t.tag, t.length) for t in got] == list(spec)
            assert [(t.tag, t.length) for t in req.transfers] == list(spec)
            for t in got:
                assert sum(u.submit.urb_len for u in t.chunks) == t.length
                assert all(u.submit.urb_len <= MAX_BULK_OUT_CHUNK for u in t.chunks)
            first = got[0].header or got[0].chunks[0]
            assert first.submit.ts_us == req.t_start_us
            assert (
                first.submit.frame
                == (req.transfers[0].header or req.transfers[0].chunks[0]).frame_submit
            )


@pytest.mark.parametrize("name", ALL)
def test_bytes_and_outputs_per_request(name: str, written) -> None:
    session, cap = written[name]
    for dev_profile, dev in zip(preset(name).devices, session.truth.devices, strict=True):
        packets = device_packets(cap, dev)
        outputs = [p for p in packets if p.kind == "C" and p.endpoint == 0x81 and p.status == 0]
        read_len = dev_profile.output_read_len
        assert all(p.urb_len <= read_len for p in outputs)
        # each output completes between its request's first submit and its end
        for req in dev.requests:
            mine = [p for p in outputs if req.t_start_us <= p.ts_us <= req.t_end_us]
            expected = 0 if req.kind == "parameter-caching" else dev_profile.output_bytes
            assert sum(p.urb_len for p in mine) == expected == req.bytes_by_tag[3]
            assert len(mine) == math.ceil(expected / read_len)
            assert req.t_end_us == max([req.event_us, *(t for t, _ in req.output_chunks)])
            spec = dev_profile.caching if req.kind == "parameter-caching" else dev_profile.inference
            for tag in (0, 1, 2):
                assert req.bytes_by_tag[tag] == sum(n for t, n in spec if t == tag)


@pytest.mark.parametrize("name", ALL)
def test_at_most_three_bulk_out_urbs_in_flight(name: str, written) -> None:
    session, cap = written[name]
    for dev in session.truth.devices:
        urbs = [
            u
            for u in pair_urbs(device_packets(cap, dev))
            if u.submit.xfer == 3 and not u.submit.is_in
        ]
        marks = sorted(
            [(u.submit.frame, +1) for u in urbs] + [(u.complete.frame, -1) for u in urbs]
        )
        in_flight = peak = 0
        for _, step in marks:
            in_flight += step
            peak = max(peak, in_flight)
        assert peak == MAX_ASYNC_BULK_OUT


def overlap_from_file(dev: DeviceTruth, urbs: list[Urb], transfers, evs) -> list[Fraction]:
    """Overlap per inference from the file alone, by the project's definitions."""
    out = []
    grouped = assign_requests(transfers, [e.ts_us for e in evs])
    outputs = [
        u.complete
        for u in urbs
        if u.submit.endpoint == 0x81 and u.complete and u.complete.status == 0
    ]
    for got, ev in zip(grouped, evs, strict=True):
        if not any(t.tag == 1 for t in got):
            out.append(Fraction(0))
            continue
        start = min((t.header or t.chunks[0]).submit.ts_us for t in got)
        outs = [p.ts_us for p in outputs if start <= p.ts_us]
        t_end = max(ev.ts_us, min(outs)) if outs else ev.ts_us
        lo = max(u.complete.ts_us for t in got if t.tag == 1 for u in t.chunks)
        params = [
            (max(u.submit.ts_us, lo), min(u.complete.ts_us, t_end))
            for t in got
            if t.tag == 2
            for u in t.chunks
        ]
        params = [(a, b) for a, b in params if b > a]
        out.append(Fraction(union_length(params), t_end - lo) if params else Fraction(0))
    return out


@pytest.mark.parametrize("name", ["overlap_full", "overlap_half", "dense_300", "conv_300"])
def test_overlap_recomputed_from_the_file(name: str, written) -> None:
    session, cap = written[name]
    dev = session.truth.devices[0]
    packets = device_packets(cap, dev)
    urbs = pair_urbs(packets)
    got = overlap_from_file(dev, urbs, out_transfers(urbs), events(packets))
    assert got == [r.overlap for r in dev.requests]


def test_known_overlaps_and_verdicts(written) -> None:
    expected = {
        # streaming paced by the device at 100 MB/s on a 400 MB/s link
        "overlap_full": (Fraction(1), "device-bound"),
        # streaming at link speed, then as long of compute: the link also carries the rest
        "overlap_half": (Fraction(1, 2), "link-bound"),
        "overlap_none": (Fraction(0), "device-bound"),
        "conv_50": (Fraction(0), "device-bound"),
        "conv_300": (None, "device-bound"),
        "dense_300": (None, "link-bound"),
        "dense_300_usb2": (None, "link-bound"),
        "conv_300_usb2": (None, "link-bound"),  # 60 MB/s of demand, 36.5 MB/s of link
    }
    for name, (overlap, verdict) in expected.items():
        for req in written[name][0].truth.devices[0].inferences:
            assert req.verdict == verdict, name
            if overlap is not None:
                assert req.overlap == overlap, name
            if req.streamed_bytes:
                assert req.stream_busy_us == union_length(req.param_intervals)
                assert req.stream_rate == pytest.approx(
                    req.streamed_bytes * 1e6 / req.stream_busy_us
                )


def test_caching_request_streams_nothing(written) -> None:
    session, _ = written["dense_300"]
    caching = session.truth.devices[0].requests[0]
    assert caching.kind == "parameter-caching"
    assert caching.streamed_bytes == 0 and caching.cached_bytes == 1_040_896
    # its megabyte of parameters moves at link speed
    assert caching.verdict == "link-bound" and caching.exec_start_us is None


def test_conv_50_and_dense_300_timing_resembles_the_real_runs(written) -> None:
    for name, latency_ms in (("conv_50", 40.6), ("dense_300", 9.3)):
        infs = written[name][0].truth.devices[0].inferences
        assert len(infs) == 5
        for req in infs[1:]:
            assert req.latency_us / 1000 == pytest.approx(latency_ms, rel=0.02)
        # the first inference sits behind the caching request: slower
        assert infs[0].latency_us > infs[1].latency_us


def test_first_inference_is_queued_before_the_caching_event(written) -> None:
    session, _ = written["conv_50"]
    caching, first = session.truth.devices[0].requests[:2]
    assert first.t_start_us < caching.event_us
    assert first.transfers[1].chunks[0].submit_us < caching.event_us  # the input, too


def csr_accesses(packets: list[Packet]) -> list[tuple[bool, str, int]]:
    """(write, register, value) of every vendor control transfer, in order."""
    out = []
    pending: dict[int, Packet] = {}
    for p in packets:
        if p.xfer != 2:
            continue
        if p.kind == "S":
            pending[p.urb_id] = p
            continue
        s = pending.pop(p.urb_id)
        req_type, request, lo, hi, length = struct.unpack("<BBHHH", s.setup)
        if req_type not in (0x40, 0xC0):
            continue
        reg = REGISTERS_BY_ADDRESS[(hi << 16) | lo]
        assert length * 8 == reg.width and request == (1 if reg.width == 32 else 0)
        data = s.data if req_type == 0x40 else p.data
        out.append((req_type == 0x40, reg.name, int.from_bytes(data[:length], "little")))
    return out


def test_open_and_close_register_sequences(written) -> None:
    session, cap = written["conv_50"]
    dev = session.truth.devices[0]
    packets = device_packets(cap, dev)
    csr = csr_accesses(packets)
    assert len(csr) == dev.open_csr + dev.close_csr == 52 + 39
    assert sum(w for w, _, _ in csr) == 70  # as in the real conv_50: 70 writes, 21 reads
    assert csr[0] == (False, "scu_ctrl_0", 0x000F0059)
    opened = dict((name, value) for write, name, value in csr[:52] if write)
    assert opened["outfeed_chunk_length"] == 0x80 and opened["multi_bo_ep"] == 0
    assert opened["descr_ep"] == 0xF0
    closed = [(name, value) for write, name, value in csr[52:] if write and "RunControl" in name]
    assert len(closed) == 15 and {v for _, v in closed} == {2}
    # every read still pending at close completes with -2, then the 39 close transfers follow
    first_close = [p for p in packets if p.xfer == 2][-2 * 39].ts_us
    close_starts = dev.requests[-1].t_end_us + preset("conv_50").tail_idle_us
    cancelled = [p for p in packets if p.kind == "C" and p.status == -2 and p.ts_us >= close_starts]
    assert sorted(p.endpoint for p in cancelled) == [0x81] * 8 + [0x82, 0x83]
    assert all(p.ts_us < first_close for p in cancelled)


def test_usb2_session_uses_usb2_values(written) -> None:
    session, cap = written["dense_300_usb2"]
    dev = session.truth.devices[0]
    packets = device_packets(cap, dev)
    opened = {name: value for write, name, value in csr_accesses(packets)[:52] if write}
    assert opened["outfeed_chunk_length"] == 0x20
    reads = [p for p in packets if p.kind == "S" and p.endpoint == 0x81]
    assert reads and {p.urb_len for p in reads} == {256}
    desc = next(p for p in packets if p.kind == "C" and p.xfer == 2 and p.urb_len == 18)
    assert struct.unpack_from("<H", desc.data, 2)[0] == 0x0200
    assert struct.unpack_from("<HH", desc.data, 8) == (0x18D1, 0x9302)
    outs = [len_ for r in dev.inferences for _, len_ in r.output_chunks]
    assert outs[:4] == [256, 256, 256, 232]


def test_multi_ep_session_has_no_headers(written) -> None:
    session, cap = written["multi_ep"]
    dev = session.truth.devices[0]
    packets = device_packets(cap, dev)
    out_submits = [p for p in packets if p.kind == "S" and p.xfer == 3 and not p.is_in]
    assert {p.endpoint for p in out_submits} == {0x01, 0x02, 0x03}
    assert not any(p.urb_len == 8 for p in out_submits)
    opened = {name: value for write, name, value in csr_accesses(packets)[:52] if write}
    assert opened["multi_bo_ep"] == 1
    assert all(tr.header is None for r in dev.requests for tr in r.transfers)


def test_firmware_download_then_application(written) -> None:
    session, cap = written["firmware"]
    dev = session.truth.devices[0]
    boot = [p for p in cap.packets if p.device == dev.dfu_address]
    dnload = [p for p in boot if p.kind == "S" and p.setup[:2] == bytes([0x21, DfuRequest.DNLOAD])]
    blocks = math.ceil(FIRMWARE_SINGLE_EP_BYTES / 256)
    assert dev.dfu_blocks == blocks
    assert [p.urb_len for p in dnload] == [256] * (blocks - 1) + [FIRMWARE_SINGLE_EP_BYTES % 256, 0]
    assert [struct.unpack_from("<H", p.setup, 2)[0] for p in dnload] == list(range(blocks + 1))
    status = [
        p for p in boot if p.kind == "S" and p.setup[:2] == bytes([0xA1, DfuRequest.GETSTATUS])
    ]
    assert len(status) == blocks + 1
    uploads = [
        p
        for p in boot
        if p.kind == "C"
        and p.xfer == 2
        and p.urb_len
        and p.ts_us > dnload[-1].ts_us
        and p.urb_len != 6
    ]
    assert [p.urb_len for p in uploads][-1] < 256
    ids = [
        struct.unpack_from("<HH", p.data, 8)
        for p in cap.packets
        if p.kind == "C"
        and p.xfer == 2
        and p.urb_len == 18
        and p.data[:2] == b"\x12\x01"
        and p.device in (dev.dfu_address, dev.address)
    ]
    assert ids[0] == (0x1A6E, 0x089A) and ids[-1] == (0x18D1, 0x9302)
    assert len(dev.requests) == 3


def test_section_comment_marks_inferred_parts(written) -> None:
    assert "not a real capture" in written["conv_50"][1].comment
    assert "Inferred" not in written["conv_50"][1].comment
    assert "DFU firmware download" in written["firmware"][1].comment
    assert "multi-endpoint" in written["multi_ep"][1].comment
    assert "USB 2" in written["dense_300_usb2"][1].comment


def test_two_tpus_and_the_hub_are_told_apart_by_address(written) -> None:
    session, cap = written["two_tpus"]
    first, second = session.truth.devices
    assert (first.address, second.address) == (4, 5)
    for dev in (first, second):
        assert len(events(device_packets(cap, dev))) == len(dev.requests)
    hub = [p for p in cap.packets if p.device == 2 and p.endpoint == 0x81 and p.kind == "C"]
    assert hub and all(p.xfer == 1 for p in hub)


def test_urb_ids_look_like_kernel_addresses_and_pair_up(written) -> None:
    _, cap = written["dense_300"]
    urbs = pair_urbs(cap.packets)
    assert all(u.submit.urb_id >> 48 == 0xFFFF for u in urbs)
    assert len({u.submit.urb_id for u in urbs}) < len(urbs) / 4  # a small pool, reused


def test_snaplen_and_usbmon_cap_truncation(tmp_path: Path) -> None:
    dev = DeviceProfile(inference=((0, 100), (1, 16), (2, 3 * 1_048_576 + 5)), inferences=1)
    for snaplen, event_cap in ((200, 61_440), (70_000, 61_440), (128, 245_760)):
        path = tmp_path / f"s{snaplen}-{event_cap}.pcapng"
        write_session(
            SessionProfile(devices=(dev,), snaplen=snaplen, usbmon_event_cap=event_cap), path
        )
        cap = walk(path)
        assert cap.snaplen == snaplen
        for p in cap.packets:
            assert p.origlen == 64 + p.data_len
            assert p.caplen == min(p.origlen, snaplen) == 64 + len(p.data)
            carries = (p.kind == "S") != p.is_in
            assert p.data_len == (
                min(p.urb_len, event_cap) if carries and p.status in (0, -115) else 0
            )
            assert p.ts_us == p.hdr_ts_us
        big = [p for p in cap.packets if p.kind == "S" and p.urb_len == 1_048_576]
        assert len(big) == 3 and big[0].data_len == min(1_048_576, event_cap)


def test_metadata_and_drop_count(tmp_path: Path) -> None:
    path = tmp_path / "meta.pcapng"
    profile = preset("conv_50", dropped=7)
    session = write_session(profile, path)
    cap = walk(path)
    assert cap.isb_drops == [7]
    assert session.truth.dropped == 7
    assert [pen for pen, _ in cap.custom] == [32473]
    assert session.metadata is not None and session.metadata.model == "conv_50"
    assert session.metadata.extra["synthetic"] is True


def test_compute_jitter_varies_latency_reproducibly() -> None:
    profile = preset("conv_50")
    dev = profile.devices[0].with_timing(compute_jitter_us=2_000)
    jittery = SessionProfile(devices=(dev,), metadata=False)
    first = [r.latency_us for r in generate(jittery).truth.devices[0].inferences[1:]]
    again = [r.latency_us for r in generate(jittery).truth.devices[0].inferences[1:]]
    steady = [r.latency_us for r in generate(preset("conv_50")).truth.devices[0].inferences[1:]]
    assert first == again
    assert len(set(first)) > 1 and len(set(steady)) == 1
    assert all(0 <= a - b <= 2_000 for a, b in zip(first, steady, strict=True))


def test_same_profile_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    write_session(preset("dense_300"), a)
    write_session(preset("dense_300"), b)
    assert a.read_bytes() == b.read_bytes()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "mine.pcapng"
    path.write_bytes(b"a user's capture")
    with pytest.raises(FileExistsError):
        write_session(preset("conv_50"), path)
    assert path.read_bytes() == b"a user's capture"


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="snaplen"):
        SessionProfile(snaplen=10)
    with pytest.raises(ValueError, match="distinct"):
        SessionProfile(devices=(DeviceProfile(), DeviceProfile()))
    with pytest.raises(ValueError, match="multi-EP"):
        SessionProfile(devices=(DeviceProfile(link_speed="high", multi_ep=True),))


def test_dense_caching_event_falls_between_input_and_parameters(written) -> None:
    """As on the real dense_300 capture (frames 256-257, 260, 261)."""
    session, _ = written["dense_300"]
    caching, first = session.truth.devices[0].requests[:2]
    input_submit = first.transfers[1].chunks[-1].frame_submit
    param_header = first.transfers[2].header
    assert param_header is not None
    assert input_submit < caching.event_frame < param_header.frame_submit


def test_headers_follow_the_real_flag_rules() -> None:
    """The data flag follows mon_bin.c as the real captures show it: '<' on IN submits, '>' on OUT
    completions, otherwise 0; the setup flag is '-' exactly when there is no setup packet."""
    session = generate(preset("conv_50"))
    raw = usbmon_headers(session.records).tobytes()
    for i, rec in enumerate(session.records):
        mine = raw[i * 64 : (i + 1) * 64]
        is_in = bool(rec.epnum & 0x80)
        expected = (
            ord("<")
            if rec.urb_type == ord("S") and is_in
            else ord(">")
            if rec.urb_type == ord("C") and not is_in
            else 0
        )
        assert mine[15] == expected
        assert mine[14] == (0 if rec.setup is not None else ord("-"))
        assert mine[:8] == rec.urb_id.to_bytes(8, "little")
