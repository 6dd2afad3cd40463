"""Edge TPU decoding: framing, events, outputs, CSRs, device finding, on real and made captures."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from builders import CaptureBuilder, inference

from usbtrace.edgetpu import constants as C
from usbtrace.edgetpu.wire import encode_header
from usbtrace.errors import InputError
from usbtrace.pipeline import decode_capture
from usbtrace.report.inspect_view import inspect_rows

# -- real captures -----------------------------------------------------------------------------


def test_conv_50_transfers(shared_file):
    d = decode_capture(shared_file("captures/real/conv_50.pcapng"))
    (tpu,) = d.devices
    assert (tpu.bus, tpu.address, tpu.identified_by) == (2, 4, "descriptor")
    assert (tpu.vendor, tpu.product) == (0x18D1, 0x9302)
    assert tpu.link_speed == "super"
    seq = [(t.tag, t.length) for t in tpu.transfers]
    assert len(seq) == 12
    assert seq[:2] == [(0, 7_856), (2, 2_471_488)]
    assert seq[2:] == [(0, 93_360), (1, 16)] * 5
    assert all(t.complete and t.payload_bytes == t.length for t in tpu.transfers)
    assert tpu.transfers[1].header_frame == 250
    assert len(tpu.transfers[1].payload_frames) == 3
    assert [o.nbytes for o in tpu.outputs] == [8] * 5
    assert [e.tag for e in tpu.events] == [4] * 6
    assert tpu.problems == []
    # README: -2 completions 14 / 1 / 2 on 0x81 / 0x82 / 0x83
    assert tpu.cancelled == 17
    total_out = int(tpu.out_urbs["length"].sum())
    assert total_out == 2_946_320


def test_dense_300_streamed_parameters(shared_file):
    d = decode_capture(shared_file("captures/real/dense_300.pcapng"))
    (tpu,) = d.devices
    assert len(tpu.transfers) == 37
    per_inf = [
        (0, 262_128),
        (1, 16),
        (2, 1_038_336),
        (0, 261_952),
        (2, 1_783_808),
        (0, 19_760),
        (2, 121_472),
    ]
    assert [(t.tag, t.length) for t in tpu.transfers[2:]] == per_inf * 5
    params = sum(t.length for t in tpu.transfers if t.tag == C.Tag.PARAMETERS)
    assert params == 15_758_976
    instr = sum(t.length for t in tpu.transfers if t.tag == C.Tag.INSTRUCTIONS)
    assert instr == 2_740_368


def test_real_csr_sequence(shared_file):
    d = decode_capture(shared_file("captures/real/conv_50.pcapng"))
    csr = d.devices[0].csr
    assert len(csr) == 91
    assert (csr[0].address, csr[0].width, csr[0].write) == (0x1A30C, 32, False)
    names = {c.name for c in csr}
    assert len(names) == 39 and all(n in C.REGISTERS_BY_NAME for n in names)
    writes = {
        c.name: c.value
        for c in csr
        if c.write and c.name in ("descr_ep", "multi_bo_ep", "outfeed_chunk_length")
    }
    assert writes == {"descr_ep": 0xF0, "multi_bo_ep": 0, "outfeed_chunk_length": 0x80}
    assert next(c.value for c in csr if c.name == "omc0_00") == 0x0219089A
    assert d.other_devices and all(a != 4 for _, a, _ in d.other_devices)


# -- made captures -----------------------------------------------------------------------------


def test_payload_of_eight_bytes_is_not_a_header(tmp_path):
    b = CaptureBuilder()
    b.header(C.Tag.INPUT, 16, 0, 1)
    # two 8-byte payload URBs that happen to look like a header
    b.urb(0x01, 3, 2, 3, length=8, out_data=encode_header(2, 100))
    b.urb(0x01, 3, 4, 5, length=8, out_data=encode_header(2, 100))
    b.event(0, 10)
    (tpu,) = decode_capture(b.write(tmp_path / "a.pcapng")).devices
    assert [(t.tag, t.length, t.complete) for t in tpu.transfers] == [(1, 16, True)]


def test_overshoot_and_cut_transfer_are_flagged(tmp_path):
    b = CaptureBuilder()
    b.header(C.Tag.PARAMETERS, 1000, 0, 1)
    b.payload(600, 2, 3)
    b.payload(600, 4, 5)  # 1200 > 1000: frames were lost
    b.header(C.Tag.INSTRUCTIONS, 5000, 10, 11)
    b.payload(100, 12, 13)  # capture ends before the rest
    (tpu,) = decode_capture(b.write(tmp_path / "o.pcapng")).devices
    first, second = tpu.transfers
    assert not first.complete and "overshoots" in first.problem
    assert not second.complete and "only 100" in second.problem
    assert len(tpu.problems) >= 2


def test_transfer_problems_read_the_same_in_inspect_summarize_and_windows(tmp_path, monkeypatch):
    """One function words a transfer's problem (``EdgeTpuTrace.numbered_problems``): the whole
    capture's decode, summarize and inspect's windows (problems of released transfers) agree."""
    from usbtrace import pipeline

    b = CaptureBuilder()
    b.header(C.Tag.PARAMETERS, 1000, 0, 1)
    b.payload(600, 2, 3)
    b.payload(600, 4, 5)
    inference(b, 10)  # a whole request between the two broken transfers
    b.header(C.Tag.INSTRUCTIONS, 5000, 2000, 2001)
    b.payload(100, 2002, 2003)
    path = b.write(tmp_path / "o.pcapng")
    (tpu,) = decode_capture(path).devices
    want = [
        "transfer 0 (parameters, header frame 1): payload overshoots the header: 600 of 1000 "
        "bytes, then a 600-byte URB (frame 5)",
    ]
    numbered = tpu.numbered_problems()
    assert [text for _, text in numbered][:1] == want
    last = numbered[-1]
    assert last == (
        3,
        "transfer 3 (instructions, header frame 19): header announces 5000 bytes but only 100 "
        "followed",
    )
    texts = [text for _, text in numbered]
    assert [p for p in tpu.problems if p.startswith("transfer ")] == texts
    # in transfer order, whatever order they were found in (the live view prints the list)
    tpu.transfer_problems = dict(reversed(list(tpu.transfer_problems.items())))
    assert tpu.numbered_problems() == numbered
    (s,) = pipeline.summarize_file(path, window_frames=3)
    assert [p for p in s.integrity.problems if p.startswith("transfer ")] == texts
    monkeypatch.setattr(pipeline, "INSPECT_WINDOW_FRAMES", 3)
    (streamed,) = pipeline.inspect(path, None, lambda *_: None).devices
    assert streamed.released_problems  # the first problem was released with its window
    assert [p for p in streamed.problems if p.startswith("transfer ")] == texts
    only_last = np.arange(len(tpu.table)) == last[0]
    assert tpu.numbered_problems(only_last) == [last]


def test_found_by_signature_and_hub_ignored(tmp_path):
    b = CaptureBuilder()
    b.urb(0x81, 1, 0, 5, length=2, in_data=b"\x02\x00", dev=2)  # the hub's interrupt EP 0x81
    inference(b, 100)
    d = decode_capture(b.write(tmp_path / "s.pcapng"))
    (tpu,) = d.devices
    assert tpu.identified_by == "signature" and tpu.address == 4
    assert [o.nbytes for o in tpu.outputs] == [8]
    assert (2, 2, None) in d.other_devices


def test_two_edge_tpus_are_reported_separately(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0, dev=4)
    b.device_descriptor(0, dev=5)
    inference(b, 1000)
    b.dev = 5
    inference(b, 1000, instr=5000)
    d = decode_capture(b.write(tmp_path / "two.pcapng"))
    assert [(t.address, t.transfers[0].length) for t in d.devices] == [(4, 93_360), (5, 5000)]
    only = decode_capture(tmp_path / "two.pcapng", device="2.5")
    assert [t.address for t in only.devices] == [5]
    with pytest.raises(InputError, match=r"no traffic of device 2\.9"):
        decode_capture(tmp_path / "two.pcapng", device="2.9")


def test_multi_endpoint_mode(tmp_path):
    b = CaptureBuilder()
    b.csr(C.CSR_MULTI_BO_EP, 0, value=1)
    b.urb(0x01, 3, 200, 210, length=5000)
    b.urb(0x02, 3, 220, 230, length=16)
    b.urb(0x03, 3, 240, 250, length=C.MAX_BULK_OUT_CHUNK)
    b.urb(0x03, 3, 251, 300, length=1000)
    b.event(200, 400)
    (tpu,) = decode_capture(b.write(tmp_path / "m.pcapng"), device="2.4").devices
    assert tpu.multi_ep
    assert [(t.tag, t.length) for t in tpu.transfers] == [
        (0, 5000),
        (1, 16),
        (2, C.MAX_BULK_OUT_CHUNK + 1000),
    ]
    # no header: inspect shows each transfer at its first payload URB, on its own endpoint
    rows = [r for r in inspect_rows(tpu) if r.direction == "OUT" and r.endpoint]
    first = {t.index: t.payload_frames[0] for t in tpu.transfers}
    assert [(r.frame, r.endpoint, r.kind) for r in rows] == [
        (first[0], 0x01, "instructions"),
        (first[1], 0x02, "input"),
        (first[2], 0x03, "parameters"),
    ]


def test_output_grouping_short_chunk_and_event(tmp_path):
    b = CaptureBuilder()
    inference(b, 0, out=8)
    for i in range(3):  # a 3 KiB output of full chunks, ended by the event, not a short chunk
        b.output(1024, 3000, 3100 + i)
    b.transfer(C.Tag.INPUT, 16, 2900, 2950)
    b.event(3000, 3200)
    (tpu,) = decode_capture(b.write(tmp_path / "g.pcapng")).devices
    assert [(o.nbytes, o.chunks) for o in tpu.outputs] == [(8, 1), (3072, 3)]


def test_interrupt_and_event_fields(tmp_path):
    b = CaptureBuilder()
    inference(b, 0)
    b.interrupt(0x1, 0, 50)
    data = struct.pack("<QIB3x", 0x1234, 77, C.Tag.INPUT)
    b.urb(0x82, 3, 60, 70, length=16, in_data=data)
    (tpu,) = decode_capture(b.write(tmp_path / "i.pcapng")).devices
    assert [(i.value) for i in tpu.interrupts] == [1]
    dma = [e for e in tpu.events if e.tag == C.Tag.INPUT]
    assert [(e.address, e.length) for e in dma] == [(0x1234, 77)]


def test_firmware_download_then_app_device(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0, vid=C.VID_GLOBAL_UNICHIP, pid=C.PID_EDGETPU_DFU, dev=3)
    t = 1000
    for block, size in enumerate([256, 256, 100, 0]):
        setup = struct.pack("<BBHHH", C.REQTYPE_DFU_OUT, C.DfuRequest.DNLOAD, block, 0, size)
        b.urb(0x00, 2, t, t + 50, length=size, setup=setup, dev=3, out_data=bytes(min(size, 64)))
        gs = struct.pack("<BBHHH", C.REQTYPE_DFU_IN, C.DfuRequest.GETSTATUS, 0, 0, 6)
        b.urb(0x80, 2, t + 60, t + 70, length=6, setup=gs, dev=3, in_data=bytes([0, 0, 0, 0, 5, 0]))
        t += 100
    b.device_descriptor(t + 1000, dev=4)
    inference(b, t + 2000)
    d = decode_capture(b.write(tmp_path / "dfu.pcapng"))
    (tpu,) = d.devices
    assert tpu.address == 4 and tpu.firmware is not None
    assert (tpu.firmware.blocks, tpu.firmware.nbytes, tpu.firmware.address) == (3, 612, 3)


def test_address_zero_during_enumeration_is_not_a_device(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0, dev=0)  # GET_DESCRIPTOR before SET_ADDRESS
    b.device_descriptor(200, dev=4)
    inference(b, 1000)
    d = decode_capture(b.write(tmp_path / "enum.pcapng"))
    assert [t.address for t in d.devices] == [4]
    assert all(a != 0 for _, a, _ in d.other_devices)
