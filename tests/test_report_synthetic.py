"""Reports on the project's synthetic sessions (``lab.synthetic``) against their truth."""

from __future__ import annotations

import statistics

import pytest

import lab.synthetic as synthetic
import lab.synthetic.presets as presets
from usbtrace.pipeline import summarize_file
from usbtrace.report.diff import CHANGED, REGRESSION, SAME, diff_captures
from usbtrace.report.size_table import size_rows


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    out = {}
    for name in ("conv_50", "conv_300", "dense_300", "dense_300_usb2"):
        path = root / f"{name}.pcapng"
        out[name] = (path, synthetic.write_session(getattr(presets, name)(), path).truth)
    return out


def _inferences(truth):
    return [r for r in truth.devices[0].requests if r.kind == "inference"]


def test_size_rows_match_truth(sessions):
    summaries = [s for name in ("conv_50", "conv_300") for s in summarize_file(sessions[name][0])]
    rows = {r.model: r for r in size_rows(summaries)}
    assert [r.size for r in size_rows(summaries)] == [50, 300]
    for name in ("conv_50", "conv_300"):
        infs = _inferences(sessions[name][1])
        r = rows[name]
        assert r.inferences == len(infs)
        assert r.streamed_bytes == statistics.median(i.streamed_bytes for i in infs)
        lat = statistics.median((i.t_end_us - i.t_start_us) / 1e6 for i in infs)
        assert r.latency_s == pytest.approx(lat, abs=1e-6)
        assert r.overlap == pytest.approx(float(statistics.median(i.overlap for i in infs)))
        assert r.verdict == statistics.mode(i.verdict for i in infs)
    assert rows["conv_50"].streamed_bytes == 0
    assert rows["conv_300"].streamed_bytes == 3_923_712 + 6_338_304 + 2_163_072


def test_timeline_of_streaming_conv_300(sessions):
    pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    from usbtrace.pipeline import timeline_file

    path, truth = sessions["conv_300"]
    tl = timeline_file(path, None, None)
    first = _inferences(truth)[0]
    assert tl.request == first.index
    params = tl.lane("parameters")
    assert params.nbytes == first.streamed_bytes
    # every streamed payload URB of the truth is drawn (plus one header URB per transfer)
    drawn = set(zip(params.starts_ns, params.ends_ns))
    assert {(s * 1000, c * 1000) for s, c in first.param_intervals} <= drawn


def test_diff_usb3_against_usb2(sessions):
    (a,) = summarize_file(sessions["dense_300"][0])
    (b,) = summarize_file(sessions["dense_300_usb2"][0])
    st = {x.name: x.status for x in diff_captures(a, b).lines}
    assert st["latency median"] == REGRESSION and st["stream rate median"] == REGRESSION
    assert st["parameters bytes/inf"] == SAME and st["instructions bytes/inf"] == SAME
    assert st["output bytes/inf"] == CHANGED  # the usb2 preset returns 1000 output bytes


def test_report_with_two_tpus_in_one_file(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    from usbtrace.cli.main import main

    path = tmp_path / "two.pcapng"
    synthetic.write_session(presets.two_tpus(), path)
    out = tmp_path / "r.html"
    assert main(["report", str(path), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    # no sized model name here: one timeline, of the first device, chosen without --device
    assert page.count('class="timeline"') == 1 and "no timeline for" not in page
    assert "<td>2.4</td>" in page and "<td>2.5</td>" in page  # both in the integrity table


def test_timeline_needs_a_device_when_there_are_two(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    from usbtrace.cli.main import main

    path = tmp_path / "two.pcapng"
    synthetic.write_session(presets.two_tpus(), path)
    assert main(["timeline", str(path), "-o", str(tmp_path / "t.png")]) == 2
    assert "several Edge TPUs (2.4, 2.5)" in capsys.readouterr().err
    assert main(["timeline", str(path), "-o", str(tmp_path / "t.png"), "--device", "2.5"]) == 0
