"""``summarize --by-size``: rows and numbers against a synthetic sweep's truth and real captures."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sweep_fixtures import CACHE_BYTES, PARAM_BYTES_PER_LAYER, write_sweep

from usbtrace.analysis.ops import ops_per_inference
from usbtrace.cli.main import main
from usbtrace.pipeline import summarize_file
from usbtrace.report.size_table import family_size, fmt_si, print_size_table, size_rows


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    return root, write_sweep(root)


def _summaries(root):
    return [s for f in sorted(root.rglob("*.pcapng")) for s in summarize_file(f)]


def test_rows_match_ground_truth(sweep):
    root, points = sweep
    rows = size_rows(_summaries(root))
    assert [(r.family, r.size, r.label) for r in rows] == sorted(
        (p.family, p.size, p.label) for p in points
    )
    truth = {(p.size, p.label): p for p in points}
    for r in rows:
        p = truth[(r.size, r.label)]
        assert r.inferences == p.inferences
        assert r.streamed_bytes == p.streamed
        assert r.cache_fill_bytes == p.cached
        assert r.model_cached_bytes == p.cached and r.model_streamed_bytes == p.streamed
        assert r.latency_s == pytest.approx(p.latency_ns / 1e9, abs=2e-6)
        assert r.cpu_baseline_s == pytest.approx(p.cpu_baseline_s)
        assert r.speedup == pytest.approx(p.cpu_baseline_s / (p.latency_ns / 1e9), rel=1e-4)
        assert r.ops_per_s == pytest.approx(r.ops / r.latency_s)
        assert r.integrity_ok, r.problems
        assert len(r.files) == 1


def test_streaming_starts_past_the_cache(sweep):
    root, _ = sweep
    rows = size_rows(_summaries(root))
    for r in rows:
        fits = r.size * PARAM_BYTES_PER_LAYER <= CACHE_BYTES
        assert (r.streamed_bytes == 0) == fits
        if fits:  # nothing streamed: the device's execution bounds the inference
            assert r.verdict == "device-bound"
        if not fits:
            assert r.overlap > 0 and r.stream_rate_Bps > 0


def test_usb2_is_slower_when_streaming(sweep):
    root, _ = sweep
    rows = {(r.size, r.label): r for r in size_rows(_summaries(root))}
    for size in (150, 200):
        assert rows[(size, "usb2")].latency_s > rows[(size, "usb3")].latency_s
        assert rows[(size, "usb2")].stream_rate_Bps < rows[(size, "usb3")].stream_rate_Bps


def test_same_model_and_label_pooled(tmp_path):
    write_sweep(tmp_path / "a", sizes=(50,), labels=("usb3",))
    write_sweep(tmp_path / "b", sizes=(50,), labels=("usb3",))
    rows = size_rows(_summaries(tmp_path))
    assert len(rows) == 1
    assert len(rows[0].files) == 2 and rows[0].inferences == 6


def test_conv_ops_formula():
    # the study's per-layer figure: 128x128x7x7x32x32x2 for every conv layer after the first
    per_layer = 128 * 128 * 7 * 7 * 32 * 32 * 2
    assert ops_per_inference("conv", 51) - ops_per_inference("conv", 50) == per_layer
    first = 128 * 128 * 7 * 7 * 3 * 32 * 2
    assert ops_per_inference("conv", 1) == first + 7 * 7 * 32 * 2
    assert ops_per_inference("dense", 2) - ops_per_inference("dense", 1) == 100 * 100 * 2
    assert ops_per_inference("ssd_mobilenet_v1", 300) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conv_300", ("conv", 300)),
        ("model_conv_128x128x3x32x7x50", ("conv", 50)),
        ("dense_2x2x3x100x300", ("dense", 300)),
        (None, ("?", None)),
    ],
)
def test_family_size(name, expected):
    assert family_size(name) == expected


def test_fmt_si():
    assert fmt_si(80.7e9) == "80.7 G"
    assert fmt_si(2.0e12) == "2.00 T"
    assert fmt_si(None) == "-"


def test_cli_table_json_csv(sweep, tmp_path, capsys):
    root, points = sweep
    out_csv = tmp_path / "sizes.csv"
    assert main(["summarize", str(root), "--by-size", "--json", "--csv", str(out_csv)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["sizes"]) == len(points)
    streamed = {(d["size"], d["label"]): d["streamed_bytes_per_inference"] for d in doc["sizes"]}
    assert streamed == {(p.size, p.label): p.streamed for p in points}
    onset = min(p.size for p in points if p.streamed)
    below = max(p.size for p in points if not p.streamed)
    assert doc["families"] == [
        {
            "family": "conv",
            "streaming_from_size": onset,
            "largest_non_streaming_size": below,
            "cache_bytes": CACHE_BYTES,
        }
    ]
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["size"]) for r in rows] == [d["size"] for d in doc["sizes"]]
    assert main(["summarize", str(root), "--by-size"]) == 0
    text = capsys.readouterr().out
    assert text.count("conv_150") == 2 and "speed-up" in text
    assert f"streaming begins by size {onset} ({below} still fits)" in text


def test_plain_table_one_line_per_row(sweep):
    root, points = sweep
    buf = io.StringIO()
    print_size_table(size_rows(_summaries(root)), buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 + len(points)  # title, header, rows


def test_real_captures(shared_file, tmp_path, monkeypatch):
    """No metadata and no compiled model at hand: the names are file-name guesses, kept apart."""
    monkeypatch.setenv("USBTRACE_MODELS_DIR", str(tmp_path))  # an empty models folder
    conv = summarize_file(shared_file("captures/real/conv_50.pcapng"))
    dense = summarize_file(shared_file("captures/real/dense_300.pcapng"))
    rows = {r.model: r for r in size_rows(conv + dense)}
    c, d = rows["conv_50?"], rows["dense_300?"]
    assert (c.family, c.size, c.label, c.ops) == ("?", None, "usb3", None)  # a guess: no ops
    assert c.inferences == 5 and c.streamed_bytes == 0 and c.cache_fill_bytes == 2_471_488
    assert c.latency_s == pytest.approx(0.0406, abs=0.0005)  # README: ≈ 40.6 ms
    assert c.verdict == "device-bound"
    assert d.streamed_bytes == 2_943_616 and d.cache_fill_bytes == 1_040_896
    assert d.latency_s == pytest.approx(0.0093, abs=0.0002)  # README: ≈ 9.3 ms
    assert d.ops is None and d.ops_per_s is None


def test_compiled_bytes_from_the_catalog(shared_file, tmp_path, monkeypatch):
    from usbtrace.report import size_table

    model = shared_file("models/model_conv_128x128x3x32x7x50_edgetpu.tflite")
    (tmp_path / "conv_50_edgetpu.tflite").symlink_to(model)
    monkeypatch.setenv("USBTRACE_MODELS_DIR", str(tmp_path))
    size_table._catalog_model_bytes.cache_clear()
    try:
        (row,) = size_rows(summarize_file(shared_file("captures/real/conv_50.pcapng")))
    finally:
        size_table._catalog_model_bytes.cache_clear()
    # models README: 2 471 488 cached, 0 streamed; the capture's caching request moves the same
    assert (row.model_cached_bytes, row.model_streamed_bytes) == (2_471_488, 0)
    assert row.cache_fill_bytes == row.model_cached_bytes
    # the capture's bytes match the compiled conv_50: a known model, so ops and TOPS are given
    assert (row.model, row.family, row.size) == ("conv_50", "conv", 50)
    assert row.ops_per_s == pytest.approx(row.ops / row.latency_s)
