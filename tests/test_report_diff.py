"""``usbtrace diff``: what counts as changed, a regression or an improvement."""

from __future__ import annotations

import json

import pytest
from sweep_fixtures import plan, write_capture

from usbtrace.cli.main import main
from usbtrace.pipeline import summarize_file
from usbtrace.report.diff import CHANGED, IMPROVEMENT, REGRESSION, SAME, diff_captures


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    return {
        (size, label): write_capture(root / label, plan(size, label))
        for size in (50, 200)
        for label in ("usb3", "usb2")
    }


def _one(path):
    (s,) = summarize_file(path)
    return s


def _status(d):
    return {x.name: x.status for x in d.lines}


def test_same_file_has_no_difference(caps):
    s = _one(caps[(200, "usb3")])
    d = diff_captures(s, s)
    assert set(_status(d).values()) == {SAME}
    assert not d.regressions and not d.warnings


def test_slower_link_is_a_regression_and_back_an_improvement(caps):
    fast, slow = _one(caps[(200, "usb3")]), _one(caps[(200, "usb2")])
    d = diff_captures(fast, slow)
    st = _status(d)
    assert st["latency median"] == REGRESSION  # 161.2 -> 170.3 ms: +5.6% > 5%
    assert st["stream rate median"] == REGRESSION
    assert st["parameters bytes/inf"] == SAME
    assert st["overlap median"] == CHANGED
    assert any("link speeds" in w for w in d.warnings)
    back = _status(diff_captures(slow, fast))
    assert back["latency median"] == IMPROVEMENT and back["stream rate median"] == IMPROVEMENT
    # a looser threshold accepts the latency change but not the 88% slower stream
    loose = _status(diff_captures(fast, slow, threshold=0.1))
    assert loose["latency median"] == SAME and loose["stream rate median"] == REGRESSION


def test_different_model_changes_bytes(caps):
    d = diff_captures(_one(caps[(50, "usb3")]), _one(caps[(200, "usb3")]))
    st = _status(d)
    assert st["cache fill bytes"] == CHANGED and st["parameters bytes/inf"] == CHANGED
    # both are bound by the device: conv_50 computes on cached parameters, conv_200's streaming
    # is paced by the device on USB 3
    assert st["verdict"] == SAME
    assert any("different models" in w for w in d.warnings)


def test_cli_exit_status_and_json(caps, capsys):
    a, b = str(caps[(200, "usb3")]), str(caps[(200, "usb2")])
    assert main(["diff", a, a]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["diff", a, b, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["regressions"] == 3
    lat = next(m for m in doc["metrics"] if m["metric"] == "latency median")
    assert lat["ratio"] == pytest.approx(lat["b"] / lat["a"]) and lat["ratio"] > 1.05
    assert main(["diff", a, "/nonexistent.pcapng"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_real_captures_differ_in_model(shared_file):
    conv = _one(shared_file("captures/real/conv_50.pcapng"))
    dense = _one(shared_file("captures/real/dense_300.pcapng"))
    d = diff_captures(conv, dense)
    bytes_line = next(x for x in d.lines if x.name == "parameters bytes/inf")
    assert (bytes_line.a, bytes_line.b, bytes_line.status) == (0, 2_943_616, CHANGED)
    assert _status(d)["latency median"] == IMPROVEMENT  # 40.6 ms -> 9.3 ms


def test_a_guessed_model_is_shown_as_a_guess(caps, tmp_path, capsys, monkeypatch):
    """Each side's model comes with how it is known: a name guessed from the file name is
    marked as a guess in the warning, in the table's title and (``model_source``) in JSON."""
    from builders import CaptureBuilder, inference

    (tmp_path / "empty").mkdir()  # no compiled model to recognise the bytes by
    monkeypatch.setenv("USBTRACE_MODELS_DIR", str(tmp_path / "empty"))
    b = CaptureBuilder()
    t = 0
    for _ in range(3):
        t = inference(b, t, instr=4_096) + 1_000
    guessed = b.write(tmp_path / "dense_900.pcapng")  # no metadata: the name is a guess
    known = str(caps[(200, "usb3")])
    d = diff_captures(_one(known), _one(guessed))
    assert (
        "different models: conv_200 [metadata] and dense_900? [file name (guess)]"
        in (d.warnings)[0]
    )
    assert main(["diff", known, str(guessed)]) in (0, 1)
    out, err = capsys.readouterr()
    assert "(2.4, conv_200 [metadata])" in out.splitlines()[0]
    assert "dense_900? [file name (guess)])" in out.splitlines()[0]
    assert "dense_900? [file name (guess)]" in err
    main(["diff", known, str(guessed), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert (doc["a"]["model"], doc["a"]["model_source"]) == ("conv_200", "metadata")
    assert (doc["b"]["model"], doc["b"]["model_source"]) == ("dense_900", "file name (guess)")
