"""``usbtrace plot``: the data behind each graph against the sweep's truth; the files are images."""

from __future__ import annotations

import json
import warnings

import pytest
from sweep_fixtures import CACHE_BYTES, write_sweep

from usbtrace.cli.main import main
from usbtrace.pipeline import summarize_file
from usbtrace.report.plots import plot_specs, render
from usbtrace.report.size_table import MIB, size_rows

pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    points = write_sweep(root)
    rows = size_rows([s for f in sorted(root.rglob("*.pcapng")) for s in summarize_file(f)])
    return root, points, rows


def _spec(rows, name):
    return next(s for s in plot_specs(rows) if s.name == name)


def test_latency_one_series_per_label(sweep):
    _, points, rows = sweep
    spec = _spec(rows, "conv-latency")
    assert sorted(s.label for s in spec.series) == ["usb2", "usb3"]
    for s in spec.series:
        truth = sorted((p.size, p.latency_ns / 1e6) for p in points if p.label == s.label)
        assert s.x == [x for x, _ in truth]
        assert s.y == pytest.approx([y for _, y in truth], abs=0.002)


def test_streamed_marks_cache_and_onset(sweep):
    _, points, rows = sweep
    spec = _spec(rows, "conv-streamed")
    usb3 = next(s for s in spec.series if s.label == "usb3")
    truth = {p.size: p.streamed / MIB for p in points if p.label == "usb3"}
    assert dict(zip(usb3.x, usb3.y)) == pytest.approx(truth)
    assert spec.hlines[0][0] == pytest.approx(CACHE_BYTES / MIB)
    assert spec.vlines[0][0] == min(p.size for p in points if p.streamed)


def test_ops_and_speedup_series(sweep):
    _, _, rows = sweep
    ops = _spec(rows, "conv-ops")
    for s in ops.series:
        for x, y in zip(s.x, s.y):
            r = next(r for r in rows if r.size == x and r.label == s.label)
            assert y == pytest.approx(r.ops / r.latency_s / 1e12)
    assert _spec(rows, "conv-speedup").series
    overlap = _spec(rows, "conv-overlap")
    assert all(x >= 150 for s in overlap.series for x in s.x)  # only streaming sizes


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_render_writes_an_image(sweep, tmp_path, fmt):
    _, _, rows = sweep
    path = render(_spec(rows, "conv-latency"), tmp_path / f"lat.{fmt}")
    data = path.read_bytes()
    if fmt == "png":
        assert data.startswith(PNG_MAGIC)
        from matplotlib import image

        h, w, _ = image.imread(path).shape
        assert w > 300 and h > 200
    else:
        assert b"<svg" in data[:2000]


def test_cli(sweep, tmp_path, capsys):
    root, _, _ = sweep
    out = tmp_path / "plots"
    assert main(["plot", str(root), "--out-dir", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = {p["name"] for p in doc["plots"]}
    assert {
        "conv-latency",
        "conv-streamed",
        "conv-overlap",
        "conv-stream-rate",
        "conv-ops",
    } <= names
    for name in names:
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)


def test_cli_refuses_a_file_as_folder(sweep, tmp_path, capsys):
    root, _, _ = sweep
    f = tmp_path / "x"
    f.write_text("keep me")
    assert main(["plot", str(root), "--out-dir", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert f.read_text() == "keep me"


def _drawn(spec):
    """The matplotlib axes ``spec`` is drawn on (closed by the caller)."""
    from usbtrace.report.plots import draw, pyplot

    fig, ax = pyplot().subplots()
    draw(ax, spec)
    return fig, ax


def test_a_family_at_one_size_is_labelled_bars_not_a_sweep(sweep):
    _, _, rows = sweep
    one = [r for r in rows if r.size == max(r.size for r in rows)]  # usb2 and usb3, one size
    specs = plot_specs(one)
    assert specs and all(s.kind == "bars" and s.xlabel == "" and not s.vlines for s in specs)
    streamed = next(s for s in specs if s.name == "conv-streamed")
    fig, ax = _drawn(streamed)
    try:
        values = [y for s in streamed.series for y in s.y]
        assert [p.get_height() for p in ax.patches] == pytest.approx(values)
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == [f"{s.label}\nsize {x}" for s in streamed.series for x in s.x]
        # the only lines are the cache level, dotted across; no line joins the values
        assert all(line.get_linestyle() == ":" for line in ax.lines)
    finally:
        fig.clf()


def test_a_label_captured_at_one_size_is_a_point_in_a_sweep(sweep):
    _, _, rows = sweep
    lone = next(r for r in rows if r.label == "usb2")
    mixed = [r for r in rows if r.label == "usb3"] + [lone]
    spec = next(s for s in plot_specs(mixed) if s.name == "conv-latency")
    assert spec.kind == "sweep" and spec.xlabel == "conv model size (layers)"
    fig, ax = _drawn(spec)
    try:
        style = {line.get_label(): line.get_linestyle() for line in ax.lines}
        assert style["usb3"] == "-" and style["usb2"] == "None"
    finally:
        fig.clf()


def test_no_streaming_marker_without_a_size_that_still_fits(sweep):
    _, points, rows = sweep
    streaming = [r for r in rows if r.streamed_bytes]
    assert len({r.size for r in streaming}) >= 2  # still a sweep
    spec = next(s for s in plot_specs(streaming) if s.name == "conv-streamed")
    assert spec.kind == "sweep" and spec.vlines == []
    full = next(s for s in plot_specs(rows) if s.name == "conv-streamed")
    onset = min(p.size for p in points if p.streamed)
    fits = max(p.size for p in points if not p.streamed)
    assert full.vlines == [(onset, f"streaming from {onset} ({fits} fits)")]


def test_size_axis_says_what_size_means():
    from usbtrace.report.plots import size_label

    assert size_label("dense") == "dense model size (layers)"
    assert size_label("mobilenet_v2") == "mobilenet_v2 input resolution (pixels)"
    assert size_label("padding") == "padding model size"


@pytest.mark.parametrize("kind", ["sweep", "bars"])
def test_a_label_as_long_as_metadata_allows_draws_without_a_warning(tmp_path, kind):
    """A label comes from a capture's metadata (up to 255 characters): no layout fits it, and
    matplotlib's warning about that must not reach stderr as several lines of its own."""
    from usbtrace.report.plots import PlotSpec, Series

    label = "x" * 255
    spec = PlotSpec(
        "conv-latency", "t", "size", "ms", [Series(label, [1, 2], [1.0, 2.0])], kind=kind
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render(spec, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
