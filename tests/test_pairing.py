"""Submit/completion pairing: reused URB ids, lost halves, pending URBs, streaming."""

from __future__ import annotations

import numpy as np
from builders import CaptureBuilder

from usbtrace.formats.capture import read_all
from usbtrace.usb.pairing import UrbPairer


def pair_all(path, split: int | None = None):
    batch, _ = read_all(path)
    recs = batch.records
    p = UrbPairer()
    parts = [recs] if split is None else [recs[:split], recs[split:]]
    urbs = np.concatenate([p.feed(x).rows() for x in parts] + [p.finish().rows()])
    return urbs, p


def test_reused_ids_pair_with_the_open_submit(tmp_path):
    b = CaptureBuilder()
    same = 0xFFFF000012345600
    for i in range(4):
        b.urb(0x01, 3, i * 100, i * 100 + 50, length=10 + i, urb_id=same)
    urbs, p = pair_all(b.write(tmp_path / "r.pcapng"))
    assert len(urbs) == 4 and p.orphan_completions == 0
    assert list(urbs["s_len"]) == [10, 11, 12, 13]
    assert list(urbs["c_ts"] - urbs["s_ts"]) == [50_000] * 4


def test_completion_without_submit_and_superseded_submit(tmp_path):
    b = CaptureBuilder()
    same = 0xFFFF000000000100
    b.urb(0x81, 3, 0, None, length=1024, urb_id=same)  # completion never captured
    b.urb(0x81, 3, 100, 150, length=1024, urb_id=same, in_data=bytes(8))
    b.urb(0x82, 3, 0, 10, length=16, in_data=bytes(16))
    del b.records[-2]  # drop the 0x82 submit
    urbs, p = pair_all(b.write(tmp_path / "o.pcapng"))
    assert p.superseded_submits == 1
    assert p.orphan_completions == 1
    paired = urbs[(urbs["s_frame"] > 0) & (urbs["c_frame"] > 0)]
    assert len(paired) == 1 and paired[0]["c_len"] == 8


def test_pending_submits_carry_across_batches(tmp_path):
    b = CaptureBuilder()
    b.urb(0x01, 3, 0, 500, length=100)
    b.urb(0x01, 3, 10, 20, length=200)
    b.urb(0x82, 3, 30, None, length=16)  # still pending at the end
    path = b.write(tmp_path / "p.pcapng")
    whole, _ = pair_all(path)
    split, _ = pair_all(path, split=2)
    key = ["s_frame", "c_frame", "s_len"]
    assert sorted(map(tuple, whole[key].tolist())) == sorted(map(tuple, split[key].tolist()))
    pending = split[split["c_frame"] == 0]
    assert len(pending) == 1 and pending[0]["ep"] == 0x82


def test_urbs_come_back_in_the_order_of_their_closing_record(tmp_path):
    b = CaptureBuilder()
    b.urb(0x81, 3, 0, 300, length=1024, in_data=bytes(8))  # submitted first, completes last
    b.urb(0x01, 3, 10, 20, length=100)
    b.urb(0x01, 3, 30, 40, length=200)
    urbs, _ = pair_all(b.write(tmp_path / "c.pcapng"))
    assert list(urbs["c_ts"]) == sorted(urbs["c_ts"])
    assert list(urbs["ep"]) == [0x01, 0x01, 0x81]


def test_a_missing_half_reads_as_zeros(tmp_path):
    b = CaptureBuilder()
    b.urb(0x82, 3, 0, 10, length=16, in_data=bytes(range(16)))
    b.urb(0x01, 3, 20, None, length=64)  # never completed
    del b.records[0]  # the 0x82 submit
    batch, _ = read_all(b.write(tmp_path / "h.pcapng"))
    p = UrbPairer()
    done, pending = p.feed(batch.records), p.finish()
    assert list(done.has_submit) == [False] and list(done.has_completion) == [True]
    assert done.submit("frame").tolist() == [0] and done.submit("urb_len").tolist() == [0]
    assert done.completion("head")[0].tolist() == list(range(16))
    assert int(done.ep[0]) == 0x82
    assert list(pending.has_completion) == [False] and int(pending.ep[0]) == 0x01
    assert pending.completion("ts_ns").tolist() == [0]
    assert pending.submit("urb_len").tolist() == [64]
    assert int(pending.status[0]) == -115  # the submit's own status when nothing completed
