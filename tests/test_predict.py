"""The timing model, the verdict, ``usbtrace predict``, the clock, interrupts and findings.

Real captures (../shared, skipped when absent) and the study's visible reference runs
(shared/reference/published.md); synthetic sessions the simulator runs at both link speeds.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from builders import CaptureBuilder

from lab.synthetic import write_session
from lab.synthetic.presets import on_usb2, preset
from usbtrace.analysis.findings import find
from usbtrace.analysis.predict import CLOCKS, HIGH, SUPER, Scenario, predict_trace
from usbtrace.analysis.summary import summarize_trace
from usbtrace.analysis.timing import runtime_clock_mhz
from usbtrace.cli.main import main
from usbtrace.cli.predict_cmd import SHOWN_PER_ROW
from usbtrace.edgetpu import constants as C
from usbtrace.edgetpu.wire import interrupt_names
from usbtrace.pipeline import decode_capture, summarize_file

INSTR, IN, P = C.Tag.INSTRUCTIONS, C.Tag.INPUT, C.Tag.PARAMETERS
# The study's host-timed medians, ms (published.md): USB 3 (the captures) and USB 2.
REFERENCE = {"conv_50": (40.7, 43.6), "dense_300": (9.4, 95.3)}


def analysed(path):
    decoded = decode_capture(path)
    trace = decoded.devices[0]
    return trace, summarize_trace(decoded, trace)


def predicted_median_ms(trace, summary, link: str, clock: float = 500.0, cache: bool = False):
    pred = predict_trace(trace, summary.requests, Scenario(link, clock, cache))
    return float(np.median(pred.predicted_ns)) / 1e6, pred


def measured_median_ms(summary) -> float:
    return float(np.median(summary.latencies_s())) * 1e3


# -- real captures --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_runs_on_usb2_within_10_percent(shared_file, name):
    trace, s = analysed(shared_file(f"captures/real/{name}.pcapng"))
    usb3, usb2 = REFERENCE[name]
    got, pred = predicted_median_ms(trace, s, "high")
    # the prediction is of the device's latency; the study timed invoke() on the host, which
    # adds what its USB 3 median shows over the capture's (about 0.1 ms)
    host = usb3 - measured_median_ms(s)
    assert 0 <= host < 0.2
    assert got + host == pytest.approx(usb2, rel=0.10)
    assert pred.notes == []


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_predicting_the_captured_link_gives_the_measured_latency(shared_file, name):
    trace, s = analysed(shared_file(f"captures/real/{name}.pcapng"))
    got, pred = predicted_median_ms(trace, s, "super")
    assert got == pytest.approx(measured_median_ms(s), rel=0.03)
    per = pred.predicted_ns / pred.measured_ns
    assert np.all(np.abs(per - 1) < 0.03)


def test_real_verdicts(shared_file):
    (dense,) = summarize_file(shared_file("captures/real/dense_300.pcapng"))
    (conv,) = summarize_file(shared_file("captures/real/conv_50.pcapng"))
    assert dense.verdict == "link-bound" and conv.verdict == "device-bound"
    for r in conv.inferences[1:]:  # 40 ms of execution after 93 KB of instructions
        assert r.device_wait_ns > 0.95 * r.latency_ns
    for r in dense.inferences:
        assert r.link_ns > 0.8 * r.latency_ns
        assert r.link_ns + r.device_wait_ns + r.host_gap_ns == pytest.approx(r.latency_ns, abs=1000)


def test_real_clock_and_slower_clock(shared_file):
    trace, s = analysed(shared_file("captures/real/conv_50.pcapng"))
    # the open writes scu_ctrl_3 := 0x85025c: bits 28-29 = 0, 500 MHz ("max")
    assert runtime_clock_mhz(trace) == 500.0 == s.runtime_clock_mhz
    # device-bound: half the clock nearly doubles the latency; the link's part does not stretch
    got, _ = predicted_median_ms(trace, s, "super", CLOCKS["std"])
    measured = measured_median_ms(s)
    assert 1.9 * measured < got < 2.0 * measured
    # link-bound dense_300 barely moves
    trace, s = analysed(shared_file("captures/real/dense_300.pcapng"))
    got, _ = predicted_median_ms(trace, s, "super", CLOCKS["std"])
    assert got < 1.3 * measured_median_ms(s)


def test_cache_all(shared_file):
    trace, s = analysed(shared_file("captures/real/dense_300.pcapng"))
    got, _ = predicted_median_ms(trace, s, "super", cache=True)
    assert got < 0.3 * measured_median_ms(s)  # 2.9 MB of link time per inference leaves
    trace, s = analysed(shared_file("captures/real/conv_50.pcapng"))
    got, _ = predicted_median_ms(trace, s, "super", cache=True)
    assert got == pytest.approx(measured_median_ms(s), rel=1e-3)  # nothing is streamed


def test_real_findings(shared_file):
    (dense,) = summarize_file(shared_file("captures/real/dense_300.pcapng"))
    first = dense.findings[0]
    assert first.kind == "streaming" and first.value == pytest.approx(2.944, abs=0.001)
    assert "2.9 MB of parameters streamed per inference" in first.text
    assert first.ms == pytest.approx(dense.inferences[2].link_ns / 1e6, rel=0.1)
    kinds = [f.kind for f in dense.findings]
    assert "cache-fill" in kinds and "link" not in kinds  # already USB 3
    totals = [f.total_ms for f in dense.findings]
    assert totals == sorted(totals, reverse=True)


def test_predict_cli_json(shared_file, capsys):
    files = [str(shared_file(f"captures/real/{n}.pcapng")) for n in ("conv_50", "dense_300")]
    assert main(["predict", "--link", "high", "--json", *files]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["predictions"]) == 2
    for p in doc["predictions"]:
        assert {"file", "device", "model", "measured", "scenario", "predicted"} <= set(p)
        assert {"link_speed", "latency_median_s", "verdict"} <= set(p["measured"])
        assert p["scenario"] == {"link": "high", "clock": "max", "cache_all": False}
        pr = p["predicted"]
        assert {"latency_median_s", "latency_p90_s", "verdict", "requests"} <= set(pr)
        assert [r["index"] for r in pr["requests"]] == [1, 2, 3, 4, 5]
        assert pr["latency_median_s"] > p["measured"]["latency_median_s"]
    assert doc["predictions"][1]["predicted"]["verdict"] == "link-bound"
    # the real captures carry no metadata: their model is only guessed from the file name
    assert {p["model_source"] for p in doc["predictions"]} <= {"file name (guess)", "bytes"}


def test_predict_table_shows_a_guessed_model_as_a_guess(shared_file, capsys):
    assert main(["predict", str(shared_file("captures/real/dense_300.pcapng"))]) == 0
    out = capsys.readouterr().out
    assert "dense_300?" in out


def test_predict_table_lists_the_first_inferences_and_counts_the_rest(tmp_path, capsys):
    path = tmp_path / "long.pcapng"
    profile = preset("conv_50")
    dev = replace(profile.devices[0], inferences=SHOWN_PER_ROW + 3)
    write_session(replace(profile, devices=(dev,)), path)
    assert main(["predict", "--link", "high", str(path)]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("long.pcapng")]
    shown = row.split("  ")[-1].split("(+")[0].split()
    assert len(shown) == SHOWN_PER_ROW
    assert row.rstrip().endswith("(+3 more)")
    assert main(["predict", "--link", "high", "--json", str(path)]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["predictions"]
    # the JSON keeps every inference
    assert len(doc["predicted"]["requests"]) == SHOWN_PER_ROW + 3


def test_predict_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"not a capture at all")
    assert main(["predict", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usbtrace: ") and "Traceback" not in err
    assert main(["predict", str(tmp_path / "missing.pcapng")]) == 2


# -- synthetic sessions at both link speeds -------------------------------------------------


@pytest.fixture(scope="module")
def both_links(tmp_path_factory):
    root = tmp_path_factory.mktemp("links")
    out = {}
    for name in ("conv_50", "conv_300", "dense_300"):
        usb3, usb2 = preset(name), on_usb2(preset(name))
        write_session(usb3, root / f"{name}.pcapng")
        write_session(usb2, root / f"{name}_usb2.pcapng")
        out[name] = (analysed(root / f"{name}.pcapng"), analysed(root / f"{name}_usb2.pcapng"))
    return out


@pytest.mark.parametrize("name", ["conv_50", "conv_300", "dense_300"])
def test_synthetic_usb2_prediction_within_5_percent(both_links, name):
    (t3, s3), (_, s2) = both_links[name]
    assert (s3.link_speed, s2.link_speed) == ("super", "high")
    got, pred = predicted_median_ms(t3, s3, "high")
    assert got == pytest.approx(measured_median_ms(s2), rel=0.05)
    # each inference, the first (behind the cache fill) included
    want = np.array([r.latency_ns for r in s2.inferences], dtype=float)
    assert np.all(np.abs(pred.predicted_ns / want - 1) < 0.05)


@pytest.mark.parametrize("name", ["conv_50", "conv_300", "dense_300"])
def test_synthetic_identity(both_links, name):
    for trace, s in both_links[name]:
        got, _ = predicted_median_ms(trace, s, s.link_speed)
        assert got == pytest.approx(measured_median_ms(s), rel=0.03)


def test_synthetic_verdicts_and_usb2_finding(both_links):
    verdicts = {n: (a[1].verdict, b[1].verdict) for n, (a, b) in both_links.items()}
    # conv_300 streams at the device's 60 MB/s on USB 3; USB 2 carries only 36.5 MB/s
    assert verdicts == {
        "conv_50": ("device-bound", "device-bound"),
        "conv_300": ("device-bound", "link-bound"),
        "dense_300": ("link-bound", "link-bound"),
    }
    (_, s3), (_, s2) = both_links["dense_300"]
    link = next(f for f in s2.findings if f.kind == "link")
    assert link.text.startswith("USB 2 link: on USB 3 this would take ≈ ")
    assert link.value == pytest.approx(measured_median_ms(s3), rel=0.10)


def test_link_models_stay_physical():
    for model in (SUPER, HIGH):
        assert model.out_Bps < model.ceiling_Bps and model.transfer_ns > 0
    assert HIGH.in_chunk == 256 and SUPER.in_chunk == 1024


# -- constructed captures -------------------------------------------------------------------


def test_rate_above_the_ceiling_is_a_problem_not_a_rate(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0)
    b.transfer(INSTR, 1000, 0, 10)
    b.transfer(IN, 16, 11, 20)
    b.header(P, 1_000_000, 21, 22)
    b.payload(1_000_000, 22, 122)  # 1 MB in 100 µs: 10 GB/s, no USB link carries that
    b.output(8, 0, 200)
    b.event(0, 210)
    (s,) = summarize_file(b.write(tmp_path / "fast.pcapng"))
    (inf,) = s.inferences
    assert inf.stream_rate_Bps is None
    assert s.link_peak_out_Bps is None
    assert not s.integrity.ok
    assert any("above the super-speed link's ceiling" in p for p in s.integrity.problems)


def test_no_event_no_rate_no_verdict(tmp_path):
    b = CaptureBuilder()
    b.transfer(INSTR, 1000, 0, 10)
    b.transfer(IN, 16, 11, 20)
    b.header(P, 300_000, 21, 22)
    b.payload(300_000, 22, 2022)
    (s,) = summarize_file(b.write(tmp_path / "cut.pcapng"))
    (inf,) = s.inferences
    assert not inf.has_event
    assert inf.stream_rate_Bps is None and inf.verdict == "n/a" and inf.verdict_share is None


def test_interrupts_by_name(tmp_path):
    assert interrupt_names(0x1) == ["fatal error"]
    assert interrupt_names(0x10 | 0x2) == ["thermal shutdown", "thermal warning"]
    b = CaptureBuilder()
    b.device_descriptor(0)
    b.transfer(INSTR, 1000, 0, 10)
    b.transfer(IN, 16, 11, 20)
    b.interrupt(0x10, 0, 500)
    b.output(8, 0, 900)
    b.event(0, 1000)
    path = b.write(tmp_path / "hot.pcapng")
    (s,) = summarize_file(path)
    assert [i["names"] for i in s.interrupts] == [["thermal warning"]]
    assert any(f.kind == "interrupt" and "thermal warning" in f.text for f in s.findings)


def test_cache_refills_cost_and_finding(tmp_path):
    """Two models alternating on one Edge TPU: the cache is sent again at every switch."""
    b = CaptureBuilder()
    b.device_descriptor(0)
    t = 0
    for _ in range(3):
        b.transfer(INSTR, 1000, t, t + 10)
        b.header(P, 400_000, t + 11, t + 12)
        b.payload(400_000, t + 12, t + 2012)  # 200 MB/s
        b.event(t, t + 2100)
        t += 3000
        b.transfer(INSTR, 1000, t, t + 10)
        b.transfer(IN, 16, t + 11, t + 20)
        b.output(8, t, t + 900)
        b.event(t, t + 1000)
        t += 3000
    (s,) = summarize_file(b.write(tmp_path / "alternate.pcapng"))
    assert s.cache_refills == 2
    doc = s.summary_json()
    costs = doc["cache_refill_costs"]
    assert [c["bytes"] for c in costs] == [401_000, 401_000]
    assert all(c["ms"] == pytest.approx(2.1) for c in costs)
    refill = next(f for f in s.findings if f.kind == "cache-refill")
    assert refill.text.startswith("parameter cache refilled 2 times")
    assert refill.total_ms == pytest.approx(4.2)
    trace = decode_capture(s.file).devices[0]
    assert [f.kind for f in find(trace, s.requests, None)] == [f.kind for f in s.findings]


def test_the_issue_example_is_device_bound(tmp_path):
    """Issue 18: a synthetic conv_300 on USB 3 streams 29 ms of a 242 ms inference (overlap 0.12):
    the device bounds it, not the link; on USB 2 (35 MB/s) the link does."""
    from sweep_fixtures import plan, write_capture

    (fast,) = summarize_file(write_capture(tmp_path, plan(300, "usb3")))
    (slow,) = summarize_file(write_capture(tmp_path, plan(300, "usb2")))
    r = fast.inferences[1]
    assert r.overlap == pytest.approx(0.12, abs=0.01)
    assert r.latency_ns == pytest.approx(242e6, rel=0.01)
    assert fast.verdict == "device-bound" and r.verdict_share > 0.8
    assert slow.verdict == "link-bound"


@pytest.mark.parametrize("name", ["conv_50", "dense_300", "firmware", "two_tpus"])
def test_streamed_predict_replays_windows_like_the_whole_capture(tmp_path, name):
    """``usbtrace predict`` streams: each window's requests are replayed on the window's URBs.
    A capture within one window gives exactly ``predict_trace``'s replay; in windows of 500
    frames the same inferences are replayed, to within 1 % of the whole capture's median."""
    from lab.synthetic import preset, write_session
    from usbtrace import pipeline

    path = tmp_path / f"{name}.pcapng"
    write_session(preset(name), path)
    decoded = decode_capture(path)
    scenario = Scenario("high", CLOCKS["std"])
    for trace in decoded.devices:
        whole = predict_trace(trace, summarize_trace(decoded, trace).requests, scenario)
        assert len(whole.indices) >= 2
        ((_, exact),) = pipeline.predict_file(path, trace.name, lambda s, c: scenario)
        assert exact.indices == whole.indices and exact.replay is None
        assert exact.predicted_ns.tolist() == whole.predicted_ns.tolist()
        assert exact.predicted_bounds.tolist() == whole.predicted_bounds.tolist()
        ((_, windowed),) = pipeline.predict_file(
            path, trace.name, lambda s, c: scenario, window_frames=500
        )
        assert windowed.indices == whole.indices
        assert windowed.measured_ns.tolist() == whole.measured_ns.tolist()
        want = float(np.median(whole.predicted_ns))
        assert float(np.median(windowed.predicted_ns)) == pytest.approx(want, rel=0.01)
