"""``usbtrace timeline``: the lanes behind the picture, against synthetic truth and real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sweep_fixtures import INSTR_BYTES_PER_LAYER, plan, write_capture

from usbtrace.cli.main import main
from usbtrace.edgetpu.constants import MAX_BULK_OUT_CHUNK
from usbtrace.intervals import clipped_length
from usbtrace.pipeline import timeline_file
from usbtrace.report.timeline import render_timeline

pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")


@pytest.fixture(scope="module")
def streaming(tmp_path_factory):
    p = plan(200, "usb2")
    return write_capture(tmp_path_factory.mktemp("tl"), p), p


def test_default_is_first_streaming_inference(streaming):
    path, p = streaming
    tl = timeline_file(path, None, None)
    assert tl.request == 1 and tl.kind == "inference"  # request 0 caches the parameters
    assert tl.t_end_ns - tl.t0_ns == p.latency_ns
    params = tl.lane("parameters")
    assert params.nbytes == p.streamed
    assert len(params.starts_ns) == 1 + math.ceil(p.streamed / MAX_BULK_OUT_CHUNK)  # + header
    assert tl.lane("instructions").nbytes == 200 * INSTR_BYTES_PER_LAYER
    assert tl.lane("input").nbytes == 16
    assert tl.lane("output").nbytes == 8
    assert len(tl.lane("event").starts_ns) == 1 and tl.lane("event").starts_ns[0] == tl.t_end_ns
    host = tl.lane("host invoke")
    assert len(host.starts_ns) == 1 and host.starts_ns[0] < tl.t0_ns < tl.t_end_ns < host.ends_ns[0]
    assert params.rate_Bps == pytest.approx(35e6, rel=0.01)


def test_overlap_is_what_the_lanes_show(streaming):
    path, _ = streaming
    tl = timeline_file(path, None, None)
    params = tl.lane("parameters")
    inside = clipped_length(
        np.array(params.starts_ns), np.array(params.ends_ns), tl.exec_start_ns, tl.t_end_ns
    )
    # the lane also draws the 8-byte header URB (10 µs here), which the overlap metric leaves out
    window = tl.t_end_ns - tl.exec_start_ns
    assert inside / window == pytest.approx(tl.overlap, abs=10_000 / window)
    assert 0 < tl.overlap < 1


def test_explicit_request_and_images(streaming, tmp_path):
    path, p = streaming
    tl = timeline_file(path, 0, None)
    assert tl.kind == "parameter-caching" and tl.lane("parameters").nbytes == p.cached
    png = render_timeline(tl, tmp_path / "t.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = render_timeline(tl, tmp_path / "t.svg")
    assert b"<svg" in svg.read_bytes()[:2000]


def test_cli_errors(streaming, tmp_path, capsys):
    path, _ = streaming
    out = tmp_path / "t.png"
    assert main(["timeline", str(path), "-o", str(out), "--request", "99"]) == 2
    assert "requests 0 to 3" in capsys.readouterr().err
    assert main(["timeline", str(path), "-o", str(tmp_path / "t.gif")]) == 2
    out.write_bytes(b"precious")
    assert main(["timeline", str(path), "-o", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    assert main(["timeline", str(path), "-o", str(out), "--force", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [lane["name"] for lane in doc["lanes"]][:4] == [
        "host invoke",
        "instructions",
        "input",
        "parameters",
    ]


def test_real_dense_300(shared_file, tmp_path):
    tl = timeline_file(shared_file("captures/real/dense_300.pcapng"), None, None)
    assert tl.request == 1
    assert tl.lane("parameters").nbytes == 2_943_616
    assert tl.lane("instructions").nbytes == 543_840
    assert tl.lane("output").nbytes == 8
    assert render_timeline(tl, tmp_path / "d.png").stat().st_size > 10_000


@pytest.mark.parametrize("command", ["timeline", "report"])
def test_a_cut_capture_warns_in_one_line(streaming, tmp_path, command):
    """A capture cut in the middle of a block is drawn from its prefix; the warning that says
    so reaches the terminal as one ``usbtrace:`` line, not as Python's two-line warning naming
    usbtrace's own source file (timeline, and report's timelines, did not catch it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path, _ = streaming
    cut = tmp_path / "cut.pcapng"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) - 10])
    out = tmp_path / ("t.svg" if command == "timeline" else "r.html")
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run(
        [sys.executable, "-m", "usbtrace", command, "-o", str(out), str(cut)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(root)),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines and all(ln.startswith("usbtrace: ") for ln in lines), p.stderr
    assert any(f"{cut}: file ends in the middle of a block" in ln for ln in lines), p.stderr
    assert out.exists()


def test_a_request_with_no_complete_urb_is_drawn(tmp_path):
    """A capture cut right after a request's first bulk-OUT submit: the request has bytes (its
    header announced them) but no interval to draw. Drawing raised TypeError (min() of one
    float), a traceback instead of an image; found by cutting a usbmon text capture."""
    from usbtrace.report.timeline import Lane, Timeline

    t0 = 1_750_000_000_000_000_000
    lanes = [Lane("instructions", nbytes=21_168), Lane("event")]
    tl = Timeline("cut.txt", "2.4", 0, "other", t0, t0, t0, lanes, 0.0, "n/a")
    out = render_timeline(tl, tmp_path / "t.svg")
    assert out.read_bytes().lstrip().startswith(b"<?xml")
