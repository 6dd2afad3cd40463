"""inspect's rows as columns (``report.inspect_view.InspectRows``) and their JSON lines.

The lines are encoded a column at a time; they must be exactly what encoding each row's dict
with orjson gives, for every kind of value a row can hold.
"""

from __future__ import annotations

import json
import math

import numpy as np
import orjson

from usbtrace.edgetpu.trace import NS
from usbtrace.report.inspect_view import InspectRow, InspectRows, json_lines
from usbtrace.report.jsonout import encode_numbers, encode_strings

ROWS = [
    InspectRow(1_750_000_001_262_630_123, 7, "OUT", 1, "instructions", 21168, 2_863_000),
    InspectRow(1_750_000_001_262_630_000, 3, "IN", 0x82, "event done", 16, None, "request done"),
    # a kind with commas and quotes, a note with a percent sign
    InspectRow(1_750_000_001_262_630_000, 2, "IN", 0x83, 'interrupt 0x3 (a, "b")', 4, None, "50%"),
    # a rate above any link's ceiling is not shown; a zero duration has no rate
    InspectRow(5, 9, "OUT", 1, "parameters", 1 << 30, 1, "incomplete"),
    InspectRow(6, 10, "OUT", 1, "input", 0, 0),
    # a garbage timestamp: the duration is beyond int64, as Python ints keep it
    InspectRow(-(1 << 62), 11, "OUT", 1, "input", 16, (1 << 63) + 5),
]


def _rate(r: InspectRow, ceiling: float) -> float | None:
    """README's rule, written out plainly: bytes over duration, unknown past the ceiling."""
    if not r.nbytes or r.duration_ns is None or r.duration_ns <= 0:
        return None
    rate = r.nbytes * NS / r.duration_ns
    return None if rate > ceiling else rate


def _row_dict(r: InspectRow, device: str, ceiling: float) -> dict:
    dur = r.duration_ns
    return {
        "device": device,
        "t": r.t_ns / NS,
        "frame": r.frame,
        "direction": r.direction,
        "endpoint": r.endpoint,
        "kind": r.kind,
        "bytes": r.nbytes,
        "duration_s": None if dur is None else dur / NS,
        "rate_Bps": _rate(r, ceiling),
        "note": r.note or None,
    }


def test_json_lines_equal_each_rows_own_encoding():
    rows = InspectRows.of(ROWS)
    for device, ceiling in (("2.4", 5e8), ('1.%b"', math.inf)):
        want = b"".join(
            orjson.dumps(_row_dict(r, device, ceiling), option=orjson.OPT_APPEND_NEWLINE)
            for r in ROWS
        )
        assert json_lines(rows, device, ceiling) == want
        assert [r.rate_Bps(ceiling) for r in ROWS] == [_rate(r, ceiling) for r in ROWS]
        assert [json.loads(x)["kind"] for x in want.splitlines()] == [r.kind for r in ROWS]


def test_time_order_is_stable_and_applied_to_lines_and_rows():
    rows = InspectRows.of(ROWS).in_time_order()
    want = sorted(ROWS, key=lambda r: (r.t_ns, r.frame))  # sorted() is stable too
    assert list(rows) == want
    lines = json_lines(rows, "2.4", math.inf).splitlines()
    assert [json.loads(x)["frame"] for x in lines] == [r.frame for r in want]


def test_split_concat_and_take_keep_every_row_once():
    rows = InspectRows.of(ROWS)
    early, late = rows.split(1_750_000_001_262_630_000)
    assert [r.frame for r in early] == [9, 10, 11]
    assert [r.frame for r in late] == [7, 3, 2]
    again = InspectRows.concat([late, early.in_time_order(), InspectRows.empty()])
    assert sorted(again, key=lambda r: r.frame) == sorted(ROWS, key=lambda r: r.frame)
    assert len(InspectRows.concat([])) == 0


def test_column_encoders_match_orjson():
    nums = [0, -1, 1 << 62, 0.1, 1e-7, 1.75e9, None, True, math.nan]
    assert encode_numbers(nums) == [orjson.dumps(v) for v in nums]
    texts = ["a,b", 'q"uote', "", None, "a,b", "é"]
    assert encode_strings(texts) == [orjson.dumps(v) for v in texts]
    assert encode_numbers(np.arange(3).tolist()) == [b"0", b"1", b"2"]


def test_plain_table_widens_a_column_from_the_row_that_needs_it(capsys):
    from usbtrace.cli.inspect_cmd import COLUMNS, WIDTHS, _Table

    class Trace:  # what the table reads of a trace
        name, link_speed = "2.4", "super"

    table = _Table("f.pcapng")
    table.device = "2.4"  # no heading
    # every other cell fits its column's minimum width
    long_kind = InspectRow(7, 12, "OUT", 1, "k" * 60, 1, 2, "x")
    rows = [ROWS[0], ROWS[1], ROWS[2], ROWS[4], long_kind, ROWS[0]]
    table(Trace(), InspectRows.of(rows), 0)  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert len({line.index("0x") for line in lines}) == 1  # the columns before the kind
    # the long kind widens its column from its own line on, not on the lines before it
    kind = [c.title for c in COLUMNS].index("kind")
    assert WIDTHS[kind] == 40 and table.widths[kind] == 60
    assert lines[5].index(" ms") - lines[3].index(" ms") == 60 - 40
    assert lines[0].index(" ms") == lines[3].index(" ms")
