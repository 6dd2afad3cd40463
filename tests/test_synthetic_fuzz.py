"""Random sessions: the file always says what the truth says, and summarize agrees with both.

Profiles are drawn by hypothesis (derandomized, no deadline: nothing here is timed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from synthetic_pcapng_walker import out_transfers, pair_urbs, walk

from lab.synthetic import DeviceProfile, SessionProfile, Timing, write_session
from usbtrace import pipeline as summary

MiB = 1 << 20


@st.composite
def profiles(draw: st.DrawFn) -> SessionProfile:
    speed = draw(st.sampled_from(["super", "high"]))
    multi_ep = speed == "super" and draw(st.booleans())
    size = st.integers(1, 3 * MiB)
    caching = ()
    if draw(st.booleans()):
        caching = ((0, draw(st.integers(8, 65536))), (2, draw(size)))
    inference = [(0, draw(st.integers(8, 300_000))), (1, draw(st.integers(1, 200_000)))]
    for _ in range(draw(st.integers(0, 3))):
        inference.append((2, draw(size)))
        if draw(st.booleans()):
            inference.append((0, draw(st.integers(8, 100_000))))
    link = draw(st.integers(20_000_000, 500_000_000))
    timing = Timing(
        link_out_bytes_per_s=link,
        link_in_bytes_per_s=link,
        urb_overhead_us=draw(st.integers(1, 40)),
        host_gap_us=draw(st.integers(0, 40)),
        cached_compute_us=draw(st.integers(0, 20_000)),
        param_bytes_per_s=draw(st.none() | st.integers(10_000_000, 600_000_000)),
        compute_us=draw(st.integers(0, 30_000)),
        tail_us=draw(st.integers(0, 500)),
        event_after_output_us=draw(st.integers(0, 50)),
        read_timeout_us=draw(st.none() | st.integers(20_000, 6_000_000)),
    )
    dev = DeviceProfile(
        link_speed=speed,
        multi_ep=multi_ep,
        caching=caching,
        inference=tuple(inference),
        output_bytes=draw(st.integers(1, 20_000)),
        inferences=draw(st.integers(1, 3)),
        interval_us=draw(st.integers(1_000, 200_000)),
        timing=timing,
        enumeration=draw(st.booleans()),
    )
    # at least the 16 data bytes of an event (and the 8 of a header), or nobody can read them
    return SessionProfile(devices=(dev,), snaplen=draw(st.integers(80, 300)))


FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(profiles())
def test_random_sessions_are_consistent(profile: SessionProfile) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pcapng"
        session = write_session(profile, path)
        cap = walk(path)
    (dev,) = session.truth.devices
    assert len(cap.packets) == session.truth.frames
    assert [p.ts_us for p in cap.packets] == sorted(p.ts_us for p in cap.packets)
    packets = [p for p in cap.packets if p.device == dev.address]
    urbs = pair_urbs(packets)
    transfers = out_transfers(urbs, multi_ep=dev.multi_ep)
    wanted = [(t.tag, t.length) for r in dev.requests for t in r.transfers]
    if dev.multi_ep:
        # without headers only per-tag totals are certain
        for tag in (0, 1, 2):
            got = sum(t.length for t in transfers if t.tag == tag)
            assert got == sum(n for t, n in wanted if t == tag)
    else:
        assert sorted((t.tag, t.length) for t in transfers) == sorted(wanted)
    events = [p for p in packets if p.endpoint == 0x82 and p.kind == "C" and p.status == 0]
    assert [e.ts_us for e in events] == [r.event_us for r in dev.requests]
    outputs = [p for p in packets if p.endpoint == 0x81 and p.kind == "C" and p.status == 0]
    assert sum(p.urb_len for p in outputs) == sum(r.bytes_by_tag[3] for r in dev.requests)
    for req in dev.requests:
        assert req.t_start_us <= min(c.submit_us for t in req.transfers for c in t.chunks)
        assert req.t_end_us >= max(c.complete_us for t in req.transfers for c in t.chunks)
        assert 0 <= req.overlap <= 1


@FUZZ
@given(profiles())
def test_summarize_agrees_on_random_single_ep_sessions(profile: SessionProfile) -> None:
    assume(not profile.devices[0].multi_ep)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pcapng"
        session = write_session(profile, path)
        (summ,) = summary.summarize_file(path)
    (dev,) = session.truth.devices
    assert len(summ.requests) == len(dev.requests)
    for got, want in zip(summ.requests, dev.requests, strict=True):
        assert got.kind == want.kind
        assert (got.t_start_ns, got.t_end_ns) == (want.t_start_us * 1000, want.t_end_us * 1000)
        tags = want.bytes_by_tag
        assert (got.instructions, got.input, got.output) == (tags[0], tags[1], tags[3])
        if want.kind == "inference":
            assert got.overlap == pytest.approx(float(want.overlap), abs=1e-12)
            assert got.stream_busy_ns == want.stream_busy_us * 1000
