"""Events whose bytes were not captured (issue 16 item 1).

A successful 16-byte completion on 0x82 is an event even when its payload is missing (snaplen
below 80, or usbmon without IN data): requests are still delimited, kinds found and latencies
measured, with one integrity note for the capture. Checked on synthetic sessions and on the real
captures in ../shared rewritten (into a temporary folder) with their 0x82 payloads dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference
from conftest import shared_path
from synthetic_pcapng_walker import walk

from lab.synthetic.presets import preset
from lab.synthetic.session import generate, write_session
from lab.usb.record import UsbRecord
from lab.usb.writer import Layout, write_capture
from usbtrace.edgetpu import constants as C
from usbtrace.formats.usbmon import URB_COMPLETE
from usbtrace.pipeline import decode_capture, summarize_file

NOTE = "event payloads not captured: tags assumed"
NOT_CAPTURED = "event shorter than 16 bytes or not captured"


def _is_event(r: UsbRecord) -> bool:
    return r.epnum == C.EP_EVENT_IN and r.urb_type == URB_COMPLETE and r.urb_len == C.EVENT_LEN


Cut = Callable[[UsbRecord], UsbRecord]


def _write(path: Path, records: list[UsbRecord], cut: Cut | None = None) -> Path:
    """The records through the lab's writer, each first changed by ``cut``."""
    write_capture(path, [cut(r) if cut else r for r in records], Layout(interface="usbmon2"))
    return path


def _drop_event_bytes(r: UsbRecord) -> UsbRecord:
    # usbmon attached the 16 bytes, the capture kept none (as a snaplen of 64 would)
    return replace(r, data=b"") if _is_event(r) else r


def _no_event_data(r: UsbRecord) -> UsbRecord:
    return replace(r, data_len=0, data=b"") if _is_event(r) else r  # usbmon attached none


def _summary(path: Path) -> tuple[list[dict], list[str]]:
    (s,) = summarize_file(path)
    return [r.to_json() for r in s.requests], s.integrity.problems


def _timing_free(requests: list[dict]) -> list[tuple]:
    return [(r["kind"], r["bytes"]) for r in requests]


@pytest.mark.parametrize("name", ["conv_50", "dense_300", "dense_300_usb2"])
@pytest.mark.parametrize("cut", [_drop_event_bytes, _no_event_data])
def test_synthetic_events_without_payload_still_close_requests(tmp_path, name, cut):
    profile = preset(name, snaplen=128, metadata=False)  # _write writes no metadata block
    session = generate(profile)
    whole = tmp_path / "whole.pcapng"
    write_session(profile, whole)
    want, problems = _summary(whole)
    assert problems == [] and len(want) == len(session.truth.devices[0].requests)
    got, problems = _summary(_write(tmp_path / "cut.pcapng", session.records, cut))
    assert got == want  # kinds, bytes, t_start, t_end, latencies, overlap, verdicts
    assert problems == [f"{NOTE} ({len(want)} event(s))"]


def test_a_snaplen_below_80_keeps_headers_and_loses_event_tags(tmp_path):
    whole = tmp_path / "whole.pcapng"
    write_session(preset("dense_300", snaplen=128), whole)
    cut = tmp_path / "snap72.pcapng"
    write_session(preset("dense_300", snaplen=72), cut)  # 8 data bytes: a header, half an event
    want, _ = _summary(whole)
    got, problems = _summary(cut)
    assert [r["latency_s"] for r in got] == [r["latency_s"] for r in want]
    assert _timing_free(got) == _timing_free(want)
    assert [r["kind"] for r in got] == ["parameter-caching"] + ["inference"] * 5
    assert problems == [f"{NOTE} (6 event(s))"]


def test_multi_endpoint_mode_leaves_uncaptured_tags_unknown(tmp_path):
    # in multi-EP mode the device may send DMA-descriptor events too: no tag is assumed
    session = generate(preset("multi_ep", snaplen=128))
    _, problems = _summary(_write(tmp_path / "m.pcapng", session.records, _drop_event_bytes))
    assert NOTE not in " ".join(problems)
    assert any(p.startswith(NOT_CAPTURED) for p in problems)


def _descr_ep_capture(path: Path, value: int) -> Path:
    b = CaptureBuilder()
    b.device_descriptor(0)
    b.csr(C.CSR_DESCR_EP, 200, value=value)
    inference(b, 1000)
    inference(b, 5000)
    b.records = [_drop_event_bytes(r) for r in b.records]
    return b.write(path)


def test_descriptor_events_enabled_leave_uncaptured_tags_unknown(tmp_path):
    got, problems = _summary(_descr_ep_capture(tmp_path / "f0.pcapng", C.DESCR_EP_INTERRUPTS_ONLY))
    assert [r["kind"] for r in got] == ["inference", "inference"]
    assert problems == [f"{NOTE} (2 event(s))"]
    got, problems = _summary(_descr_ep_capture(tmp_path / "ff.pcapng", C.DESCR_EP_ALL))
    assert len(got) == 1 and "event" in " ".join(got[0].get("problems", []))
    assert f"{NOT_CAPTURED} (2x)" in problems and NOTE not in " ".join(problems)


def test_a_captured_tag_byte_is_used_even_when_the_rest_is_cut(tmp_path):
    b = CaptureBuilder(snaplen=64 + 13)  # the event's bytes 0-12: tag included
    b.device_descriptor(0)
    inference(b, 1000)
    b.event(3000, 3100, tag=C.Tag.INTERRUPT1)  # not a completion: closes no request
    path = b.write(tmp_path / "t.pcapng")
    (trace,) = decode_capture(path).devices
    assert trace.event_table["tag"].tolist() == [C.Tag.INTERRUPT0, C.Tag.INTERRUPT1]
    got, problems = _summary(path)
    assert [r["kind"] for r in got] == ["inference"] and problems == []


# -- the real captures, rewritten without their event payloads --------------------------------


def _real_records(path: Path) -> list[UsbRecord]:
    """Every record of a capture, read by the tests' own pcapng walker."""
    out = []
    for p in walk(path).packets:
        setup = p.setup if p.flag_setup == 0 else None
        rec = UsbRecord(
            ts_ns=p.ts_us * 1000, urb_id=p.urb_id, urb_type=ord(p.kind), xfer=p.xfer,
            epnum=p.endpoint, devnum=p.device, busnum=p.bus, status=p.status,
            urb_len=p.urb_len, data_len=p.data_len, data=p.data, setup=setup,
            interval=p.interval, xfer_flags=p.xfer_flags,
        )  # fmt: skip
        out.append(rec)
    return out


@pytest.mark.parametrize("name", ["conv_50", "dense_300"])
def test_real_captures_without_event_payloads_give_the_same_requests(tmp_path, name):
    real = shared_path(f"captures/real/{name}.pcapng")
    records = _real_records(real)
    want, problems = _summary(real)
    assert len(want) == 6 and problems == []
    # the rewrite itself changes nothing
    same, _ = _summary(_write(tmp_path / "same.pcapng", records))
    assert same == want
    for cut in (_drop_event_bytes, _no_event_data):
        got, problems = _summary(_write(tmp_path / f"{cut.__name__}.pcapng", records, cut))
        assert got == want, cut.__name__
        assert problems == [f"{NOTE} (6 event(s))"]


def test_event_columns_read_the_wire_layout():
    import numpy as np

    from usbtrace.edgetpu.wire import decode_event, encode_event, event_columns

    events = [encode_event(t, a, n) for t, a, n in ((4, 0, 0), (1, 0x1234_5678_9ABC, 4096))]
    events.append(bytes(12) + bytes([0xF6, 0, 0, 0]))  # the high nibble is not the tag's
    head = np.frombuffer(b"".join(events), np.uint8).reshape(len(events), C.EVENT_LEN)
    tag, address, length = event_columns(head)
    assert list(zip(tag.tolist(), address.tolist(), length.tolist())) == [
        decode_event(e) for e in events
    ]
    assert tag.tolist() == [4, 1, 6]


def test_interrupt_words_read_the_wire_layout():
    """The 4-byte little-endian word on 0x83; bytes past what was captured read as zero, even
    when the head row holds something there."""
    import numpy as np

    from usbtrace.edgetpu.wire import interrupt_words

    head = np.zeros((5, 16), dtype=np.uint8)
    head[:, :4] = [[0x10, 0, 0, 0], [1, 0, 0, 0x80], [0xAA, 0xBB, 0xCC, 0xDD]] + [[0xFF] * 4] * 2
    head[:, 4:] = 0x5A  # beyond the word: never part of it
    captured = np.array([4, 16, 2, 0, 3])
    words = interrupt_words(head, captured)
    assert words.tolist() == [0x10, 0x8000_0001, 0xBBAA, 0, 0xFF_FFFF]
    assert words.dtype == np.dtype("<u4") and words.shape == (5,)
    assert interrupt_words(np.zeros((0, 16), np.uint8), np.zeros(0, int)).tolist() == []
    # the same as reading each row on its own, over every captured length
    rng = np.random.default_rng(7)
    head = rng.integers(0, 256, (64, 16), dtype=np.uint8)
    captured = rng.integers(0, 17, 64)
    assert interrupt_words(head, captured).tolist() == [
        int.from_bytes(bytes(row[: min(4, n)].tolist()), "little")
        for row, n in zip(head, captured.tolist())
    ]
