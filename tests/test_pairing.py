"""Submit/completion pairing: reused URB ids, lost halves, pending URBs, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from builders import CaptureBuilder

from usbtrace.formats.capture import read_all
from usbtrace.formats.records import RECORD
from usbtrace.formats.usbmon import URB_COMPLETE, URB_SUBMIT
from usbtrace.usb import pairing
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


# -- URBs that never complete: bounded carry, checks at fixed record numbers ---------------------


def _records(n: int, seed: int, keys: int, p_submit: float) -> np.ndarray:
    """Random submits and completions over a few URB keys (ids reused, halves lost)."""
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, dtype=RECORD)
    recs["frame"] = np.arange(1, n + 1)
    recs["ts_ns"] = np.arange(n) * 1000
    h = recs["hdr"]
    h["type"] = np.where(rng.random(n) < p_submit, URB_SUBMIT, URB_COMPLETE)
    k = rng.integers(0, keys, n)
    h["urb_id"] = 0xFFFF_0000_0000_0000 + (k // 3).astype(np.uint64) * 0xC0
    h["epnum"] = np.array([0x01, 0x81, 0x82])[k % 3]
    h["busnum"], h["devnum"], h["xfer"] = 2, 4, 3
    return recs


def _reference(recs: np.ndarray, max_open: int, every: int) -> tuple[list, int, int, int, int]:
    """The pairing rule one record at a time: (URBs as (submit frame, completion frame) in the
    order they close, orphan completions, superseded submits, dropped, open at the end)."""
    open_: dict[tuple[int, int], int] = {}  # key -> submit frame; insertion order = age
    out: list[tuple[int, int]] = []
    orphans = superseded = dropped = 0
    for i, r in enumerate(recs):
        key = (int(r["hdr"]["urb_id"]), int(r["hdr"]["epnum"]))
        frame = int(r["frame"])
        if r["hdr"]["type"] == URB_SUBMIT:
            if key in open_:
                out.append((open_.pop(key), 0))
                superseded += 1
            open_[key] = frame
        else:
            s = open_.pop(key, 0)
            orphans += s == 0
            out.append((s, frame))
        if i % every == every - 1 and len(open_) > max_open:
            oldest = sorted(open_.items(), key=lambda kv: kv[1])[: len(open_) - max_open]
            for k, s in oldest:
                del open_[k]
                out.append((s, 0))
                dropped += 1
    out += [(s, 0) for s in sorted(open_.values())]
    return out, orphans, superseded, dropped, len(open_)


@pytest.mark.parametrize("seed", range(6))
def test_open_submits_beyond_the_cap_are_given_up_whatever_the_batches(monkeypatch, seed):
    monkeypatch.setattr(pairing, "MAX_OPEN", 5)
    monkeypatch.setattr(pairing, "CHECK_EVERY", 7)
    # mostly submits over many keys: far more than 5 open at once, some closed much later
    recs = _records(600, seed, keys=90, p_submit=0.7)
    want, orphans, superseded, dropped, left = _reference(recs, 5, 7)
    assert dropped > 50  # the cap really is in play
    for cuts in ([], [1, 2, 3, 50, 51, 333], list(range(13, 600, 13)), [6, 7, 8, 14, 599]):
        p = UrbPairer()
        parts = np.split(recs, cuts)
        got = []
        for urbs in [p.feed(x) for x in parts] + [p.finish()]:
            got += list(zip(urbs.submit("frame").tolist(), urbs.completion("frame").tolist()))
        assert got == want, cuts
        assert (p.orphan_completions, p.superseded_submits) == (orphans, superseded)
        assert (p.dropped_open, p.open_at_end) == (dropped, left)


def test_without_a_flood_nothing_is_given_up(monkeypatch):
    recs = _records(3000, 7, keys=30, p_submit=0.5)
    want, _, _, dropped, _ = _reference(recs, pairing.MAX_OPEN, pairing.CHECK_EVERY)
    p = UrbPairer()
    got = []
    for urbs in [p.feed(x) for x in np.split(recs, [100, 2000])] + [p.finish()]:
        got += list(zip(urbs.submit("frame").tolist(), urbs.completion("frame").tolist()))
    assert got == want and dropped == 0 and p.dropped_open == 0


def test_the_carry_stays_bounded_on_a_flood_of_unanswered_submits(monkeypatch):
    monkeypatch.setattr(pairing, "MAX_OPEN", 100)
    monkeypatch.setattr(pairing, "CHECK_EVERY", 50)
    n = 5000
    recs = _records(n, 0, keys=1, p_submit=1.0)
    recs["hdr"]["urb_id"] = np.arange(n, dtype=np.uint64) * 0xC0  # every submit its own URB
    p = UrbPairer()
    largest = 0
    for part in np.array_split(recs, 37):
        p.feed(part)
        largest = max(largest, len(p.carry))
    pending = p.finish()
    assert largest <= 100 + 50 + max(len(x) for x in np.array_split(recs, 37))
    # the last check fell after record 4999 (5000 = 100 checks of 50): 100 left open
    assert len(pending) == 100 and p.dropped_open == n - 100
    assert pending.submit("frame").tolist() == list(range(n - 99, n + 1))
