"""The synthetic sessions against the real captures in ../shared (skipped when absent).

The generator's register sequences, descriptors and request shapes were written from the protocol
reference; these tests hold them against the real conv_50 and dense_300 files, read in place.
"""

from __future__ import annotations

import struct

import pytest
from conftest import shared_path
from synthetic_pcapng_walker import out_transfers, pair_urbs, walk
from test_synthetic_session import csr_accesses

from lab.synthetic import payloads, preset
from lab.synthetic.presets import (
    CONV_50_CACHING,
    CONV_50_INFERENCE,
    DENSE_300_CACHING,
    DENSE_300_INFERENCE,
)
from lab.usb import descriptors
from usbtrace.edgetpu.constants import EVENT_REQUEST_DONE, csr_close_sequence, csr_open_sequence

REAL_DEVICE = 4


def real(name: str):
    return walk(shared_path(f"captures/real/{name}.pcapng"))


@pytest.mark.parametrize("name", ["conv_50", "dense_300"])
def test_open_and_close_sequences_equal_the_real_ones(name: str) -> None:
    cap = real(name)
    got = csr_accesses([p for p in cap.packets if p.device == REAL_DEVICE])
    expected = [(s.write, s.register, s.value) for s in csr_open_sequence() + csr_close_sequence()]
    assert got == expected


@pytest.mark.parametrize(
    ("name", "caching", "inference"),
    [
        ("conv_50", CONV_50_CACHING, CONV_50_INFERENCE),
        ("dense_300", DENSE_300_CACHING, DENSE_300_INFERENCE),
    ],
)
def test_preset_transfers_equal_the_real_ones(name: str, caching, inference) -> None:
    cap = real(name)
    urbs = pair_urbs([p for p in cap.packets if p.device == REAL_DEVICE])
    got = [(t.tag, t.length) for t in out_transfers(urbs)]
    assert got == list(caching) + list(inference) * 5
    synthetic = preset(name).devices[0]
    assert (synthetic.caching, synthetic.inference) == (caching, inference)


def test_descriptors_equal_the_real_ones() -> None:
    cap = real("conv_50")
    replies = {
        struct.unpack_from("<HH", s.submit.setup, 2)[0] >> 8 << 8
        | s.submit.urb_len: s.complete.data
        for s in pair_urbs([p for p in cap.packets if p.device == REAL_DEVICE])
        if s.submit.xfer == 2 and s.submit.setup[:2] == b"\x80\x06" and s.complete
    }
    assert replies[0x0100 | 18] == payloads.device_descriptor(0x18D1, 0x9302, "super")
    assert replies[0x0F00 | 22] == descriptors.bos_descriptor()
    config = payloads.config_descriptor("super")
    assert len(config) == 96
    # the real reply carries only its first 27 bytes (see the captures' README)
    assert replies[0x0200 | 96] == config[: len(replies[0x0200 | 96])]


def test_real_event_and_input_bytes_match() -> None:
    cap = real("conv_50")
    events = [p.data for p in cap.packets if p.endpoint == 0x82 and p.kind == "C" and p.status == 0]
    assert set(events) == {EVENT_REQUEST_DONE}
    inputs = [p.data for p in cap.packets if p.kind == "S" and p.urb_len == 16 and p.endpoint == 1]
    assert set(inputs) == {payloads.input_bytes(0, 16)}
