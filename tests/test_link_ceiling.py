"""No rate above the link's physical ceiling is reported (README: a number only if it can be true).

A replay through a virtual host controller (dummy_hcd) moves 1 MiB in about 100 µs, 9.9 GB/s on
a High-Speed link that carries at most 53.2 MB/s; such a rate is null plus an integrity problem.
"""

from __future__ import annotations

import json

import pytest
from builders import CaptureBuilder

from usbtrace.cli.main import main
from usbtrace.edgetpu import constants as C
from usbtrace.pipeline import summarize_file
from usbtrace.usb.link import LINK_CEILING_BPS, link_ceiling_Bps

INSTR, IN, P = C.Tag.INSTRUCTIONS, C.Tag.INPUT, C.Tag.PARAMETERS
USB2 = {"bcd_usb": 0x0200, "mps0": 64}


def capture(tmp_path, *, stream_bytes: int, cache_bytes: int, usb2: bool = False):
    """A caching request and one inference; each moves its parameters in exactly 1 ms."""
    b = CaptureBuilder()
    b.device_descriptor(0, **(USB2 if usb2 else {}))
    b.transfer(INSTR, 1000, 1000, 1010)
    b.header(P, cache_bytes, 1011, 1012)
    b.payload(cache_bytes, 1012, 2012)
    b.event(1000, 2100)
    t = 10_000
    b.transfer(INSTR, 1000, t, t + 50)
    b.header(IN, 16, t + 51, t + 52)
    b.payload(16, t + 60, t + 120)
    b.header(P, stream_bytes, t + 121, t + 122)
    b.payload(stream_bytes, t + 122, t + 1122)
    b.output(8, t, t + 1190)
    b.event(t, t + 1200)
    (s,) = summarize_file(b.write(tmp_path / "c.pcapng"))
    return s


def test_ceilings_are_the_published_ones():
    assert LINK_CEILING_BPS["high"] == pytest.approx(53.2e6, rel=1e-3)  # 13 x 512 B / 125 µs
    assert LINK_CEILING_BPS["super"] == 500e6  # 5 Gbit/s, 8b/10b
    assert link_ceiling_Bps(None) == max(LINK_CEILING_BPS.values())


def test_possible_rates_are_kept(tmp_path):
    s = capture(tmp_path, stream_bytes=400_000, cache_bytes=300_000)
    assert s.link_speed == "super"
    assert s.requests[1].stream_rate_Bps == 4e8
    assert s.link_peak_out_Bps == 4e8
    assert s.integrity.ok, s.integrity.problems


def test_rates_above_super_speed_are_null_and_a_problem(tmp_path):
    s = capture(tmp_path, stream_bytes=900_000, cache_bytes=1_000_000)  # 0.9 and 1 GB/s
    inf = s.requests[1]
    # the link carried it faster than any link can: still the link's time, flagged below
    assert inf.stream_rate_Bps is None and inf.verdict == "link-bound"
    assert s.link_peak_out_Bps is None
    assert inf.stream_busy_ns == 1_000_000  # the interval itself is still what was measured
    problems = s.integrity.problems
    assert any(
        p.startswith("request 1: stream rate 900.0 MB/s is above the super-speed link's ceiling")
        for p in problems
    ), problems
    assert any(p.startswith("2 bulk-OUT transfer rate(s), up to 1,000.0 MB/s") for p in problems)
    doc = s.to_json()
    assert doc["requests"][1]["stream_rate_Bps"] is None
    assert doc["summary"]["link_peak_out_Bps"] is None
    assert doc["summary"]["stream_rate_median_Bps"] is None


def test_high_speed_ceiling(tmp_path):
    fast = capture(tmp_path, stream_bytes=300_000, cache_bytes=300_000, usb2=True)  # 300 MB/s
    assert fast.link_speed == "high"
    assert fast.requests[1].stream_rate_Bps is None and fast.link_peak_out_Bps is None
    assert not fast.integrity.ok
    slow = capture(tmp_path, stream_bytes=40_000, cache_bytes=300_000, usb2=True)
    assert slow.requests[1].stream_rate_Bps == 4e7  # 40 MB/s: a High-Speed link can
    assert slow.link_peak_out_Bps == 4e7  # the 300 MB/s caching transfer is left out
    assert [p for p in slow.integrity.problems if "ceiling" in p] == [
        "1 bulk-OUT transfer rate(s), up to 300.0 MB/s is above the high-speed link's ceiling "
        "of 53.2 MB/s: its timestamps cannot be right, not reported"
    ]


def test_table_prints_no_impossible_rate(tmp_path, capsys):
    s = capture(tmp_path, stream_bytes=900_000, cache_bytes=1_000_000)
    assert main(["summarize", "--json", s.file]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["captures"][0]["summary"]["stream_rate_median_Bps"] is None
    assert main(["summarize", s.file]) == 0
    out = capsys.readouterr().out
    assert "900.0" not in out and "1000.0" not in out


def test_inspect_and_timeline_rates_respect_the_ceiling(tmp_path, capsys):
    from usbtrace.pipeline import timeline_file

    s = capture(tmp_path, stream_bytes=900_000, cache_bytes=1_000_000)
    assert main(["inspect", "--json", s.file]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    params = [r for r in rows if r["kind"] == "parameters"]
    assert len(params) == 2 and all(r["rate_Bps"] is None for r in params)
    lanes = {lane["name"]: lane for lane in timeline_file(s.file, 1, None).to_json()["lanes"]}
    assert lanes["parameters"]["bytes"] == 900_000 and lanes["parameters"]["rate_Bps"] is None
