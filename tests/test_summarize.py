"""Requests, overlap, verdicts and the summarize command, on real and constructed captures."""

from __future__ import annotations

import json

import pytest
from builders import T0_US, CaptureBuilder, inference

from usbtrace.cli.main import main
from usbtrace.edgetpu import constants as C
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata
from usbtrace.pipeline import summarize_file

INSTR, IN, P = C.Tag.INSTRUCTIONS, C.Tag.INPUT, C.Tag.PARAMETERS

# -- real captures: the golden numbers of the study's runs --------------------------------------


def test_conv_50_requests(shared_file):
    (s,) = summarize_file(shared_file("captures/real/conv_50.pcapng"))
    kinds = [r.kind for r in s.requests]
    assert kinds == ["parameter-caching"] + ["inference"] * 5
    cache = s.requests[0]
    assert (cache.instructions, cache.parameters, cache.input) == (7_856, 2_471_488, 0)
    assert cache.latency_ns == pytest.approx(7.2e6, rel=0.01)
    for r in s.requests[1:]:
        assert (r.instructions, r.input, r.parameters, r.output) == (93_360, 16, 0, 8)
        assert r.verdict == "device-bound" and r.overlap == 0.0
        # 40 ms of execution after a 93 KB instruction stream: the device's share
        assert r.verdict_share > 0.9
        assert r.stream_rate_Bps is None
    assert s.requests[1].latency_ns == pytest.approx(43.6e6, rel=0.01)
    for r in s.requests[2:]:
        assert r.latency_ns == pytest.approx(40.6e6, rel=0.01)
    assert s.cache_fill_bytes == 2_471_488
    assert s.integrity.ok, s.integrity.problems
    assert (s.csr.at_open, s.csr.at_close, s.csr.total) == (52, 39, 91)
    assert s.link_speed == "super" and s.device == "2.4"


def test_dense_300_requests(shared_file):
    (s,) = summarize_file(shared_file("captures/real/dense_300.pcapng"))
    assert [r.kind for r in s.requests] == ["parameter-caching"] + ["inference"] * 5
    cache = s.requests[0]
    assert (cache.instructions, cache.parameters) == (21_168, 1_040_896)
    assert cache.latency_ns == pytest.approx(3.8e6, rel=0.01)
    for r in s.requests[1:]:
        assert (r.instructions, r.input, r.parameters, r.output) == (543_840, 16, 2_943_616, 8)
        assert r.verdict == "link-bound"
        assert 0.8 < r.verdict_share <= 1.0
        assert r.overlap == pytest.approx(0.996, abs=0.005)
        # the parts add up to the latency; the link was busy nearly all of it
        parts = r.link_ns + r.device_wait_ns + r.host_gap_ns
        assert parts == pytest.approx(r.latency_ns, abs=1000)
        assert r.link_busy_ns > 0.95 * r.latency_ns
        assert r.stream_rate_Bps < 500e6
    assert s.requests[1].latency_ns == pytest.approx(10.9e6, rel=0.01)
    for r in s.requests[2:]:
        assert r.latency_ns == pytest.approx(9.3e6, rel=0.01)
    assert s.integrity.ok, s.integrity.problems


# -- constructed captures with known answers ----------------------------------------------------


def caching(b: CaptureBuilder, t: int) -> None:
    """A caching request whose 300,000 parameter bytes move at exactly 3e8 B/s (USB 3 can)."""
    b.transfer(INSTR, 1000, t, t + 10)
    b.header(P, 300_000, t + 11, t + 12)
    b.payload(300_000, t + 12, t + 1012)
    b.event(t, t + 1100)


def infer_prefix(b: CaptureBuilder, t: int) -> None:
    b.transfer(INSTR, 1000, t, t + 50)
    b.header(IN, 16, t + 51, t + 52)
    b.payload(16, t + 60, t + 120)  # input fully arrived at t + 120


def scenario(tmp_path, kind: str):
    b = CaptureBuilder()
    b.device_descriptor(0)
    caching(b, 1000)
    t = 10_000
    infer_prefix(b, t)
    if kind == "overlapped":  # streaming covers the whole execution window, at link speed
        b.header(P, 270_000, t + 95, t + 96)
        b.payload(150_000, t + 100, t + 600)
        b.payload(120_000, t + 110, t + 1000)
        end = t + 1000
    elif kind == "after":  # 400 µs of streaming at half link speed, then 600 µs of compute
        b.header(P, 60_000, t + 118, t + 119)
        b.payload(60_000, t + 120, t + 520)
        end = t + 1120
    else:
        end = t + 600
    b.output(8, t, end - 10)
    b.event(t, end)
    (s,) = summarize_file(b.write(tmp_path / f"{kind}.pcapng"))
    return s, (end - t) * 1000


@pytest.mark.parametrize(
    "kind, overlap, verdict, busy_us, rate",
    [
        ("overlapped", 1.0, "link-bound", 900, 3e8),
        ("after", 0.4, "device-bound", 400, 1.5e8),
        ("none", 0.0, "device-bound", 0, None),
    ],
)
def test_overlap_scenarios(tmp_path, kind, overlap, verdict, busy_us, rate):
    s, latency_ns = scenario(tmp_path, kind)
    cache, inf = s.requests
    assert cache.kind == "parameter-caching" and inf.kind == "inference"
    assert s.link_peak_out_Bps == 3e8
    assert inf.overlap == overlap
    assert inf.verdict == verdict
    assert inf.latency_ns == latency_ns
    assert inf.stream_busy_ns == busy_us * 1000
    assert inf.stream_rate_Bps == rate
    assert s.integrity.ok


def test_transfer_queued_before_previous_event_belongs_to_its_own_request(tmp_path):
    """The driver submits the next request's headers before the previous event (real conv_50)."""
    b = CaptureBuilder()
    b.transfer(INSTR, 1000, 0, 10)
    b.transfer(P, 5000, 11, 100)
    b.transfer(INSTR, 2000, 50, 150)  # next request, submitted before event 1, completes after it
    b.transfer(IN, 16, 151, 160)
    b.event(0, 120)
    b.output(8, 0, 400)
    b.event(0, 500)
    (s,) = summarize_file(b.write(tmp_path / "q.pcapng"))
    assert [(r.kind, r.instructions, r.parameters) for r in s.requests] == [
        ("parameter-caching", 1000, 5000),
        ("inference", 2000, 0),
    ]
    assert s.requests[1].t_start_ns == (T0_US + 50) * 1000
    assert s.requests[1].output == 8


def test_cache_refill_and_missing_event(tmp_path):
    b = CaptureBuilder()
    caching(b, 0)
    inference(b, 5000)
    caching(b, 20_000)  # another model ran in between: cached again
    b.transfer(INSTR, 1000, 30_000, 30_100)  # capture stops before this request's event
    (s,) = summarize_file(b.write(tmp_path / "r.pcapng"))
    assert [r.cache_refill for r in s.requests if r.kind == "parameter-caching"] == [False, True]
    assert s.cache_refills == 1
    assert not s.requests[-1].has_event
    assert not s.integrity.ok
    assert any("no completion event" in p for p in s.integrity.problems)


def test_host_invoke_timestamps_are_aligned(tmp_path):
    b = CaptureBuilder()
    done = inference(b, 1000)
    path = b.write(tmp_path / "h.pcapng")
    start, end = (T0_US + 900) * 1000, (T0_US + done + 300) * 1000
    append_metadata(
        str(path), CaptureMetadata(model="conv_7", invokes=[InvokeTiming(0, start, end)])
    )
    (s,) = summarize_file(path)
    (inf,) = s.inferences
    assert inf.host_latency_ns == end - start
    assert s.model == "conv_7"
    j = s.to_json()
    assert j["requests"][0]["host_overhead_s"] == pytest.approx(
        (end - start - inf.latency_ns) / 1e9
    )


def test_dropped_packets_fail_integrity(tmp_path):
    b = CaptureBuilder()
    inference(b, 1000)
    (s,) = summarize_file(b.write(tmp_path / "d.pcapng", drops=3))
    assert any("3 packet(s) dropped" in p for p in s.integrity.problems)


# -- the command and its JSON -------------------------------------------------------------------

REQUEST_KEYS = {
    "index": int,
    "kind": str,
    "t_start": float,
    "t_end": float,
    "latency_s": float,
    "bytes": dict,
    "overlap": float,
    "stream_busy_s": float,
    "verdict": str,
}
SUMMARY_KEYS = {
    "inferences": int,
    "cache_fill_bytes": int,
    "latency_median_s": float,
    "latency_p90_s": float,
    "overlap_median": float,
    "integrity": dict,
}


def check_schema(doc: dict) -> None:
    assert set(doc) == {"captures"}
    for c in doc["captures"]:
        assert isinstance(c["file"], str)
        bus, addr = c["device"].split(".")
        assert bus.isdigit() and addr.isdigit()
        assert c["link_speed"] in ("super", "high", "full", None)
        assert c["model"] is None or isinstance(c["model"], str)
        for r in c["requests"]:
            for k, t in REQUEST_KEYS.items():
                assert isinstance(r[k], t), (k, r[k])
            assert set(r["bytes"]) == {"instructions", "input", "parameters", "output"}
            assert all(isinstance(v, int) for v in r["bytes"].values())
            assert r["stream_rate_Bps"] is None or isinstance(r["stream_rate_Bps"], float)
        sm = c["summary"]
        for k, t in SUMMARY_KEYS.items():
            assert isinstance(sm[k], t), (k, sm[k])
        assert sm["link_peak_out_Bps"] is None or isinstance(sm["link_peak_out_Bps"], float)
        assert isinstance(sm["integrity"]["ok"], bool)
        assert all(isinstance(p, str) for p in sm["integrity"]["problems"])


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_schema_and_exit_codes(tmp_path, capsys):
    good, _ = scenario(tmp_path, "overlapped")
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"not a capture at all")
    rc, out, err = run_cli(capsys, "summarize", "--json", good.file)
    assert rc == 0
    check_schema(json.loads(out))
    rc, out, err = run_cli(capsys, "summarize", "--json", good.file, str(bad))
    assert rc == 1
    doc = json.loads(out)
    check_schema(doc)
    assert [c["file"] for c in doc["captures"]] == [good.file]
    assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err
    rc, out, err = run_cli(capsys, "summarize", str(bad))
    assert rc == 2
    rc, out, err = run_cli(capsys, "summarize", str(tmp_path / "missing.pcapng"))
    assert rc == 2 and "no such file" in err


def test_real_json_schema(shared_file, capsys):
    rc, out, _ = run_cli(
        capsys, "summarize", "--json", str(shared_file("captures/real/dense_300.pcapng"))
    )
    assert rc == 0
    doc = json.loads(out)
    check_schema(doc)
    assert doc["captures"][0]["summary"]["verdict"] == "link-bound"


def test_table_rows_are_ordered_by_family_and_size(tmp_path, capsys):
    for n in (300, 10, 50):
        b = CaptureBuilder()
        inference(b, 0)
        b.write(tmp_path / f"conv_{n}.pcapng")
    rc, out, _ = run_cli(capsys, "summarize", str(tmp_path))
    assert rc == 0
    models = [line.split()[0] for line in out.splitlines()[2:]]
    assert models == ["conv_10?", "conv_50?", "conv_300?"]  # names from file names: guesses


def test_csv_and_per_inference(tmp_path, capsys):
    s, _ = scenario(tmp_path, "after")
    csv_path = tmp_path / "out.csv"
    rc, out, _ = run_cli(capsys, "summarize", "--per-inference", "--csv", str(csv_path), s.file)
    assert rc == 0 and "#1 inference" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("file,device,model") and len(lines) == 1 + 1 + 2
    assert ",inference," in lines[3] and "device-bound" in lines[3]


# -- reconciliation with the compiled model (summarize --model) ---------------------------------


def test_real_conv_50_reconciles_with_its_model(shared_file, capsys):
    cap = str(shared_file("captures/real/conv_50.pcapng"))
    model = str(shared_file("models/model_conv_128x128x3x32x7x50_edgetpu.tflite"))
    rc, out, _ = run_cli(capsys, "summarize", "--model", model, cap)
    assert rc == 0
    assert out.splitlines()[1].rstrip().endswith("vs model")
    assert out.splitlines()[2].rstrip().endswith("ok")
    (s,) = summarize_file(cap, model=model)
    assert s.reconciliation["ok"] and s.integrity.ok


def test_wrong_model_is_an_integrity_problem(shared_file, capsys):
    cap = str(shared_file("captures/real/dense_300.pcapng"))
    model = str(shared_file("models/model_dense_2x2x3x100x100_edgetpu.tflite"))
    (s,) = summarize_file(cap, model=model)
    assert not s.integrity.ok
    first = s.reconciliation["requests"][1]
    # 300 vs 100 dense layers: the 200 extra layers' streamed parameters and instructions
    assert first["parameters"]["difference"] == 2_662_400
    assert first["instructions"]["difference"] == 390_624
    assert s.reconciliation["requests"][0]["ok"]  # the caching request is the same
    rc, out, _ = run_cli(capsys, "summarize", "--model", model, cap)
    assert rc == 0  # analysed: the mismatch is reported, not a failure to read
    assert "#1 instr +390,624, param +2,662,400" in out
