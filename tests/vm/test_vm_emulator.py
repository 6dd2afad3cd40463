"""The emulated Edge TPU on a real kernel USB stack, checked on the usbmon capture with tshark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.testbed.emulator import completion_event
from lab.testbed.profile import BUILTIN_PROFILES, KIND_CACHING, RequestShape
from tests.vm.summaries import inference_verdicts, request_bytes, summarize
from tests.vm.usbmon_fields import Record, edgetpu_device, read_records
from usbtrace.edgetpu.constants import (
    COMPLETION_TAG,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    HEADER_LEN,
    MAX_BULK_OUT_CHUNK,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    VID_GOOGLE,
    Tag,
)

XFER_BULK = 3
XFER_CONTROL = 2


def expected_out_urbs(session: list[RequestShape]) -> tuple[int, int]:
    """(URB count, urb_len sum) on 0x01 for a session: a header + <= 1 MiB chunks per transfer."""
    count = total = 0
    for shape in session:
        for t in shape.transfers:
            count += 1 + -(-t.length // MAX_BULK_OUT_CHUNK)
            total += HEADER_LEN + t.length
    return count, total


def device_records(tshark: str, folder: Path) -> list[Record]:
    records = read_records(tshark, folder / "capture.pcapng")
    bus, address = edgetpu_device(records, VID_GOOGLE)
    return [r for r in records if (r.bus, r.device) == (bus, address)]


@pytest.mark.vm_scenario("play_conv_50")
def test_conv_50_session_on_the_wire(guest, tshark) -> None:
    folder = guest.scenario("play_conv_50")
    session = BUILTIN_PROFILES["conv_50"].session(5)
    recs = device_records(tshark, folder)

    out_submits = [r for r in recs if r.endpoint == EP_BULK_OUT and r.submit]
    assert all(r.transfer_type == XFER_BULK for r in out_submits)
    assert (len(out_submits), sum(r.urb_len for r in out_submits)) == expected_out_urbs(session)

    outputs = [r for r in recs if r.endpoint == EP_OUTPUT_IN and not r.submit and r.status == 0]
    assert sum(r.urb_len for r in outputs) == sum(s.output_bytes for s in session)

    events = [r for r in recs if r.endpoint == EP_EVENT_IN and not r.submit and r.status == 0]
    assert len(events) == len(session)  # one per request, the caching request included
    assert {r.data for r in events} == {completion_event()}
    assert all(r.data[12] == COMPLETION_TAG for r in events)

    vendor_types = (REQTYPE_VENDOR_IN, REQTYPE_VENDOR_OUT)
    vendor = [r for r in recs if r.submit and r.request_type in vendor_types]
    assert {r.request_type for r in vendor} == {REQTYPE_VENDOR_IN, REQTYPE_VENDOR_OUT}


@pytest.mark.vm_scenario("play_conv_50")
def test_emulator_served_what_the_host_sent(guest) -> None:
    folder = guest.scenario("play_conv_50")
    stats = json.loads((folder / "play_conv_50.stats.json").read_text())
    session = BUILTIN_PROFILES["conv_50"].session(5)
    assert [r["kind"] for r in stats["requests"]] == [s.kind for s in session]
    assert [[tuple(t) for t in r["transfers"]] for r in stats["requests"]] == [
        list(s.key) for s in session
    ]
    assert stats["bad_headers"] == 0
    assert stats["unknown_registers"] == []
    played = [json.loads(line) for line in (folder / "play.jsonl").read_text().splitlines()]
    assert [p["event"] for p in played] == [completion_event().hex()] * len(session)
    assert [p["output_bytes"] for p in played] == [s.output_bytes for s in session]


def expected_bytes(session: list[RequestShape]) -> list[tuple[str, dict[str, int]]]:
    """What summarize should report per request for a played session."""
    out = []
    for shape in session:
        per_tag = shape.bytes_by_tag()
        kind = "parameter-caching" if shape.kind == KIND_CACHING else shape.kind
        out.append(
            (
                kind,
                {
                    "instructions": per_tag.get(Tag.INSTRUCTIONS, 0),
                    "input": per_tag.get(Tag.INPUT, 0),
                    "parameters": per_tag.get(Tag.PARAMETERS, 0),
                    "output": shape.output_bytes,
                },
            )
        )
    return out


@pytest.mark.vm_scenario("play_conv_50")
def test_summarize_reads_the_played_session(guest) -> None:
    (entry,) = summarize(guest.scenario("play_conv_50") / "capture.pcapng")
    assert entry["link_speed"] == "high"
    assert entry["summary"]["integrity"] == {"ok": True, "problems": []}
    assert request_bytes(entry) == expected_bytes(BUILTIN_PROFILES["conv_50"].session(5))
    assert inference_verdicts(entry) == ["device-bound"] * 5
