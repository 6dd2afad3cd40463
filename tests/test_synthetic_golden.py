"""Golden tests: ``summarize`` on synthetic captures reproduces the generator's exact truth.

Every preset is written, summarized by the project's analyzer (reader, pairing, decoder,
segmentation, metrics), and compared with what the simulator did: request kinds, start and end
times to the microsecond, bytes per phase, overlap, stream busy time and verdict.
"""

from __future__ import annotations

import pytest

from lab.synthetic import PRESETS, preset, write_session
from usbtrace import pipeline as summary


@pytest.fixture(scope="module")
def summarized(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("golden")
    out = {}
    for name in sorted(PRESETS):
        path = root / f"{name}.pcapng"
        session = write_session(preset(name), path)
        out[name] = (session, summary.summarize_file(path), path)
    return out


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_summarize_matches_the_truth(name: str, summarized) -> None:
    session, summaries, _ = summarized[name]
    devices = session.truth.devices
    assert [s.device for s in summaries] == [f"{d.bus}.{d.address}" for d in devices]
    for summ, dev in zip(summaries, devices, strict=True):
        assert summ.integrity.ok, summ.integrity.problems
        assert summ.link_speed == dev.link_speed
        assert (summ.csr.at_open, summ.csr.at_close) == (dev.open_csr, dev.close_csr)
        assert len(summ.requests) == len(dev.requests)
        for got, want in zip(summ.requests, dev.requests, strict=True):
            assert got.kind == want.kind
            assert (got.t_start_ns, got.t_end_ns) == (want.t_start_us * 1000, want.t_end_us * 1000)
            tags = want.bytes_by_tag
            assert (got.instructions, got.input, got.output) == (tags[0], tags[1], tags[3])
            if want.kind != "inference":
                continue
            assert got.parameters == want.streamed_bytes
            assert got.overlap == pytest.approx(float(want.overlap), abs=1e-12)
            assert got.stream_busy_ns == want.stream_busy_us * 1000
            assert got.verdict == want.verdict


def test_known_overlaps_come_out_exactly(summarized) -> None:
    for name, overlap in (("overlap_full", 1.0), ("overlap_half", 0.5), ("overlap_none", 0.0)):
        _, (summ,), _ = summarized[name]
        assert {m.overlap for m in summ.inferences} == {overlap}


def test_firmware_download_is_reported(summarized) -> None:
    session, (summ,), _ = summarized["firmware"]
    dev = session.truth.devices[0]
    assert summ.firmware is not None
    assert summ.firmware["blocks"] == dev.dfu_blocks
    assert summ.firmware["device"] == f"{dev.bus}.{dev.dfu_address}"
    assert summ.firmware["ok"]


def test_metadata_model_and_host_times_are_used(summarized) -> None:
    session, (summ,), _ = summarized["conv_50"]
    assert summ.model == "conv_50"
    invokes = session.truth.invokes
    assert [(m.host_start_ns, m.host_end_ns) for m in summ.inferences] == [
        (i.start_us * 1000, i.end_us * 1000) for i in invokes
    ]
