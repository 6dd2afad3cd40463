"""The emulator's kernel-free pieces: descriptors, registers, framing, matching, profiles."""

from __future__ import annotations

import json
import struct

import pytest

from lab.testbed import EMULATOR_SERIAL
from lab.testbed.descriptors import (
    config_descriptor,
    device_descriptor,
    string_descriptor,
)
from lab.testbed.emulator import completion_event
from lab.testbed.framing import (
    BadHeader,
    Pacer,
    ReceivedTransfer,
    parse_header,
    read_transfers,
)
from lab.testbed.gadgetfs import EVENT_CONNECT, EVENT_SETUP, parse_events
from lab.testbed.host_session import instruction_payload, payload
from lab.testbed.matcher import KIND_UNKNOWN, RequestMatcher
from lab.testbed.profile import (
    BUILTIN_PROFILES,
    KIND_CACHING,
    KIND_INFERENCE,
    EmulatorProfile,
    load_profile,
    profile_from_model_summary,
    profile_from_requests,
)
from lab.testbed.registers import RegisterFile, csr_address
from usbtrace.edgetpu.constants import (
    CSR_OUTFEED_CHUNK_LENGTH,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    OUTFEED_CHUNK_HIGHSPEED,
    PID_EDGETPU_APP,
    REGISTERS_BY_NAME,
    VID_GOOGLE,
    Tag,
)
from usbtrace.edgetpu.wire import encode_header
from usbtrace.errors import InputError


def endpoints_of(config: bytes) -> list[tuple[int, int, int]]:
    """(address, attributes, max packet) of each endpoint descriptor in a configuration."""
    out, off = [], 0
    while off < len(config):
        length, kind = config[off], config[off + 1]
        if kind == 5:
            addr, attrs, size, _interval = struct.unpack_from("<BBHB", config, off + 2)
            out.append((addr, attrs, size))
        off += length
    return out


def test_device_descriptor_is_the_app_mode_edgetpu_at_usb2() -> None:
    desc = device_descriptor()
    assert len(desc) == desc[0] == 18
    bcd_usb, vid, pid, bcd_device = struct.unpack_from("<H", desc, 2) + struct.unpack_from(
        "<HHH", desc, 8
    )
    assert (bcd_usb, vid, pid, bcd_device) == (0x0200, VID_GOOGLE, PID_EDGETPU_APP, 0x0100)


@pytest.mark.parametrize(("high_speed", "bulk"), [(True, 512), (False, 64)])
def test_config_has_the_four_coral_endpoints(high_speed: bool, bulk: int) -> None:
    config = config_descriptor(high_speed)
    assert struct.unpack_from("<H", config, 2)[0] == len(config)
    assert endpoints_of(config) == [
        (EP_BULK_OUT, 2, bulk),
        (EP_OUTPUT_IN, 2, bulk),
        (EP_EVENT_IN, 2, bulk),
        (EP_INTERRUPT_IN, 3, 64),
    ]
    interface = config[9:18]
    assert interface[4] == 4 and interface[5:8] == b"\xff\xff\xff"


def test_serial_string_names_the_emulator() -> None:
    desc = string_descriptor(3)
    assert desc is not None and desc[0] == len(desc)
    assert desc[2:].decode("utf-16-le") == EMULATOR_SERIAL
    assert string_descriptor(0) == b"\x04\x03\x09\x04"
    assert string_descriptor(42) is None


def test_registers_remember_writes_and_flag_unknown_addresses() -> None:
    regs = RegisterFile()
    omc = REGISTERS_BY_NAME["omc0_00"].address
    assert regs.read(omc, 32) == 0x0219089A
    regs.write(REGISTERS_BY_NAME["descr_ep"].address, 64, 0xF0)
    assert regs.read(REGISTERS_BY_NAME["descr_ep"].address, 64) == 0xF0
    assert regs.unknown == set()
    regs.write(0x12344, 32, 7)
    assert regs.read(0x12344, 32) == 7 and regs.unknown == {0x12344}
    assert [a.write for a in regs.log] == [False, True, False, True, False]


def test_output_chunk_follows_outfeed_chunk_length() -> None:
    regs = RegisterFile()
    assert regs.output_chunk_bytes() == 1024
    regs.write(CSR_OUTFEED_CHUNK_LENGTH, 64, OUTFEED_CHUNK_HIGHSPEED)
    assert regs.output_chunk_bytes() == 256


def test_csr_address_joins_wvalue_and_windex() -> None:
    # setup c0 01 0c a3 01 00 04 00 reads 0x1a30c
    assert csr_address(0xA30C, 0x0001) == 0x1A30C


def test_header_round_trip_and_rejects() -> None:
    assert parse_header(encode_header(Tag.PARAMETERS, 3_923_712)) == (Tag.PARAMETERS, 3_923_712)
    assert parse_header(bytes.fromhex("80fa030000000000")) == (Tag.INSTRUCTIONS, 260_736)
    assert parse_header(bytes(7)) is None
    assert parse_header(bytes.fromhex("1000000011000000")) is None  # high nibble set
    assert parse_header(bytes.fromhex("1000000004000000")) is None  # not an OUT tag
    assert parse_header(bytes.fromhex("1000000001000100")) is None  # bytes 5-7 not zero


class FakeEndpoint:
    """Bulk OUT as the device sees it: the host's URBs, read at whatever sizes the device asks.

    A device-side read ends when it is full or at a short packet, i.e. the end of a URB whose
    length is not a multiple of the 512-byte max packet (the host sends no zero-length packets).
    """

    def __init__(self, urbs: list[bytes]) -> None:
        self.urbs = [u for u in urbs if u]
        self.asks: list[int] = []

    def read(self, n: int) -> bytes:
        if not self.urbs:
            raise OSError("host gone")
        self.asks.append(n)
        out = b""
        while self.urbs and len(out) < n:
            take = self.urbs[0][: n - len(out)]
            out += take
            self.urbs[0] = self.urbs[0][len(take) :]
            if not self.urbs[0]:
                ended_short = len(take) % 512 != 0
                self.urbs.pop(0)
                if ended_short:
                    break
        return out


def stream(*transfers: tuple[Tag, int]) -> list[bytes]:
    urbs: list[bytes] = []
    for t, n in transfers:
        urbs.append(encode_header(t, n))
        urbs += [bytes(min(1_048_576, n - off)) for off in range(0, n, 1_048_576)]
    return urbs


def collect(ep: FakeEndpoint, rate_for=lambda tag: 0.0, pacer: Pacer | None = None) -> list:
    out: list[object] = []
    with pytest.raises(OSError):
        for item in read_transfers(ep.read, rate_for, pacer):
            out.append(item)
    return out


def test_framing_never_reads_past_the_announced_length() -> None:
    ep = FakeEndpoint(stream((Tag.INSTRUCTIONS, 8), (Tag.PARAMETERS, 2_471_488), (Tag.INPUT, 16)))
    items = collect(ep)
    assert [(i.tag, i.length, i.received) for i in items if isinstance(i, ReceivedTransfer)] == [
        (Tag.INSTRUCTIONS, 8, 8),
        (Tag.PARAMETERS, 2_471_488, 2_471_488),
        (Tag.INPUT, 16, 16),
    ]
    # an 8-byte payload is payload, not a header; parameters are asked for in pieces that end
    # exactly at the announced length
    assert ep.asks[:2] == [8, 8]
    assert sum(ep.asks) == 3 * 8 + 8 + 2_471_488 + 16


def test_framing_reports_a_stray_urb_and_goes_on() -> None:
    items = collect(FakeEndpoint([b"\x01\x02\x03", *stream((Tag.INPUT, 16))]))
    assert isinstance(items[0], BadHeader)
    assert isinstance(items[-1], ReceivedTransfer) and items[-1].length == 16


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_transfers_are_consumed_at_the_rate_asked_for_their_tag() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    ep = FakeEndpoint(stream((Tag.INSTRUCTIONS, 500_000), (Tag.PARAMETERS, 2_000_000)))
    rates = {Tag.INSTRUCTIONS: 0.0, Tag.PARAMETERS: 1_000_000.0}
    items = collect(ep, rates.__getitem__, pacer)
    params = [i for i in items if isinstance(i, ReceivedTransfer) and i.tag == Tag.PARAMETERS]
    assert clock.now == pytest.approx(2.0)  # 2 MB at 1 MB/s; instructions cost no time
    assert params[0].received == 2_000_000
    assert params[0].t_done - params[0].t_header == pytest.approx(2.0)


def test_matcher_cuts_requests_by_profile_shapes() -> None:
    m = RequestMatcher(BUILTIN_PROFILES["dense_300"])
    caching = BUILTIN_PROFILES["dense_300"].requests[0]
    inference = BUILTIN_PROFILES["dense_300"].requests[1]
    done = [m.feed(t.tag, t.length) for t in caching.transfers + inference.transfers]
    completed = [d for d in done if d is not None]
    assert [(d.kind, d.output_bytes) for d in completed] == [
        (KIND_CACHING, 0),
        (KIND_INFERENCE, 8),
    ]
    assert done[len(caching.transfers) - 1] is not None  # the caching request ends on its last


def test_matcher_answers_an_unknown_request() -> None:
    m = RequestMatcher(BUILTIN_PROFILES["conv_50"])
    done = m.feed(Tag.INPUT, 999)
    assert done is not None and done.kind == KIND_UNKNOWN and done.output_bytes == 8


def test_event_is_the_16_byte_tag4_completion() -> None:
    assert completion_event() == bytes.fromhex("00000000000000000000000004000000")
    assert len(completion_event()) == EVENT_LEN


def test_gadgetfs_events_parse() -> None:
    setup = struct.pack("<BBHHH", 0xC0, 1, 0xA30C, 1, 4) + struct.pack("<I", EVENT_SETUP)
    connect = struct.pack("<I", 3) + bytes(4) + struct.pack("<I", EVENT_CONNECT)
    events = parse_events(setup + connect)
    assert events[0].setup is not None and events[0].setup.direction_in
    assert (events[0].setup.value, events[0].setup.length) == (0xA30C, 4)
    assert events[1].kind == EVENT_CONNECT and events[1].speed == 3


def test_profile_json_round_trip(tmp_path) -> None:
    prof = BUILTIN_PROFILES["dense_300"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prof.to_json()))
    assert load_profile(str(path)) == prof


def test_profile_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"requests": [{"kind": "caching", "transfers": [[0, -1]]}]}')
    with pytest.raises(InputError, match=r"bad\.json"):
        load_profile(str(bad))
    with pytest.raises(InputError, match="not a built-in profile"):
        load_profile(str(tmp_path / "missing.json"))


def test_session_runs_caching_once_then_inferences() -> None:
    session = BUILTIN_PROFILES["conv_50"].session(5)
    assert [r.kind for r in session] == [KIND_CACHING] + [KIND_INFERENCE] * 5
    per_tag = session[1].bytes_by_tag()
    assert per_tag == {Tag.INSTRUCTIONS: 93_360, Tag.INPUT: 16}


def test_profile_from_model_summary_orders_instructions_input_parameters() -> None:
    summary = {
        "name": "dense_100",
        "executables": [
            {"type": "parameter_caching", "instruction_bytes": [100], "parameter_bytes": 4000},
            {
                "type": "execution_only",
                "instruction_bytes": [200, 50],
                "parameter_bytes": 3000,
                "input_bytes": 16,
                "output_bytes": 8,
            },
        ],
    }
    prof = profile_from_model_summary(summary)
    assert [r.kind for r in prof.requests] == [KIND_CACHING, KIND_INFERENCE]
    assert prof.requests[1].key == ((0, 200), (1, 16), (0, 50), (2, 3000))


def test_profile_from_requests_keeps_distinct_shapes() -> None:
    reqs = [("caching", [(0, 10), (2, 20)], 0)] + [("inference", [(0, 5), (1, 16)], 8)] * 5
    prof = profile_from_requests("x", reqs)
    assert isinstance(prof, EmulatorProfile) and len(prof.requests) == 2


def test_host_payloads_have_the_announced_sizes() -> None:
    data = instruction_payload(93_360)
    assert len(data) == 93_360 and data[:3] == b"\x80\x0f\x00"
    assert 4 * int.from_bytes(data[3:6], "little") + 32 == 93_360
    assert payload(Tag.INPUT, 16) == b"\x80" * 12 + bytes(4)


def test_emulator_rates_pace_streamed_parameters_and_cap_everything() -> None:
    from pathlib import Path

    from lab.testbed.emulator import EdgeTpuEmulator

    emu = EdgeTpuEmulator(
        Path("/nonexistent"), BUILTIN_PROFILES["dense_300"], pace=2e6, link_rate=8e6
    )
    assert emu._rate_for(Tag.INSTRUCTIONS) == 8e6
    emu.matcher.feed(Tag.INSTRUCTIONS, 21_168)
    assert emu._rate_for(Tag.PARAMETERS) == 8e6  # cached parameters: link rate only
    emu.matcher.feed(Tag.PARAMETERS, 1_040_896)
    emu.matcher.feed(Tag.INSTRUCTIONS, 262_128)
    emu.matcher.feed(Tag.INPUT, 16)
    assert emu._rate_for(Tag.PARAMETERS) == 2e6  # streamed: the device's pace
    unpaced = EdgeTpuEmulator(Path("/nonexistent"), BUILTIN_PROFILES["dense_300"])
    assert unpaced._rate_for(Tag.PARAMETERS) == 0.0


def test_matcher_knows_streamed_parameters_from_cached_ones() -> None:
    m = RequestMatcher(BUILTIN_PROFILES["dense_300"])
    m.feed(Tag.INSTRUCTIONS, 21_168)
    assert not m.streaming()  # the caching request: its parameters are cached
    m.feed(Tag.PARAMETERS, 1_040_896)
    m.feed(Tag.INSTRUCTIONS, 262_128)
    m.feed(Tag.INPUT, 16)
    assert m.streaming()


@pytest.mark.parametrize(
    ("sample", "builtin"),
    [("sample-synthetic-conv.pcapng", "conv_50"), ("sample-synthetic-dense.pcapng", "dense_300")],
)
def test_profile_from_a_recorded_capture(sample: str, builtin: str) -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "captures" / sample
    if not path.exists():
        pytest.skip(f"{path} missing")
    assert load_profile(str(path)).requests == BUILTIN_PROFILES[builtin].requests


@pytest.mark.parametrize("name", ["conv_50", "dense_300"])
def test_profile_from_the_real_captures_matches_the_builtin(shared_file, name: str) -> None:
    path = shared_file(f"captures/real/{name}.pcapng")
    assert load_profile(str(path)).requests == BUILTIN_PROFILES[name].requests


def test_gadget_endpoints_have_the_coral_addresses_and_files() -> None:
    """What GadgetFS enables (the emulator keys its endpoint files by address)."""
    from lab.testbed.descriptors import ENDPOINTS

    assert [ep.address for ep in ENDPOINTS] == [0x01, 0x81, 0x82, 0x83]
    assert [ep.gadgetfs_name for ep in ENDPOINTS] == [
        "ep1out-bulk",
        "ep1in-bulk",
        "ep2in-bulk",
        "ep5in-int",
    ]
    for ep in ENDPOINTS:
        assert ep.descriptor(high_speed=True)[2] == ep.address
        assert ep.descriptor(high_speed=False)[2] == ep.address
