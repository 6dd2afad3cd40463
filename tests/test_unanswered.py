"""URBs that never complete (issue 13): a flood of unanswered bulk-IN submits after a session."""

from __future__ import annotations

import pytest

from lab.synthetic.presets import preset
from lab.synthetic.session import write_session
from lab.synthetic.unanswered import write_unanswered
from usbtrace.edgetpu.decode import NEVER_COMPLETED_NORMAL
from usbtrace.formats import capture
from usbtrace.pipeline import decode_capture, summarize_file
from usbtrace.usb import pairing


def _requests(path) -> list[dict]:
    (summary,) = summarize_file(path)
    return [r.to_json() for r in summary.requests]


def _problems(path) -> list[str]:
    (summary,) = summarize_file(path)
    return summary.integrity.problems


def test_a_flood_of_unanswered_reads_leaves_the_requests_alone(tmp_path):
    plain = tmp_path / "plain.pcapng"
    write_session(preset("conv_50", snaplen=128), plain)
    flood = write_unanswered(tmp_path / "flood.pcapng", 3000).path
    assert _requests(flood) == _requests(plain)
    assert len(_requests(plain)) == 6
    assert _problems(plain) == []
    # fewer than MAX_OPEN: nothing given up on, but the flood is worth a note
    assert _problems(flood) == ["3000 URB(s) never completed"]
    assert decode_capture(flood).dropped_open == 0


def test_a_few_reads_left_posted_are_normal(tmp_path):
    path = write_unanswered(tmp_path / "few.pcapng", NEVER_COMPLETED_NORMAL - 1).path
    assert _problems(path) == []


@pytest.mark.parametrize("chunk", [None, 4096, 1500])
def test_submits_given_up_on_do_not_depend_on_read_chunking(tmp_path, monkeypatch, chunk):
    path = write_unanswered(tmp_path / "flood.pcapng", 1000).path
    monkeypatch.setattr(pairing, "MAX_OPEN", 100)
    monkeypatch.setattr(pairing, "CHECK_EVERY", 64)
    whole = summarize_file(path)[0].to_json()
    if chunk:
        monkeypatch.setattr(capture, "CHUNK_BYTES", chunk)
    decoded = decode_capture(path)
    assert summarize_file(path)[0].to_json() == whole
    # 322 session records, then 1000 submits: the last check falls after record 1279 (0-based),
    # which leaves the 100 newest of the 958 flood submits before it, then 42 more after it
    assert decoded.dropped_open == 858
    assert whole["summary"]["integrity"]["problems"] == [
        "858 open URB(s) given up on: more than 100 open at once",
        "1000 URB(s) never completed",
    ]
    assert len(whole["requests"]) == 6
