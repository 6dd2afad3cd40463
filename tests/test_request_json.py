"""``summarize --json`` encodes requests a column at a time (``report.jsonout``); the bytes must
be those of encoding each request's object (``RequestTable.to_json_rows``), whatever a row
holds: missing rates and verdicts, cache refills, host timing, problems, and blocks of 4096."""

from __future__ import annotations

import numpy as np
import orjson

from usbtrace.analysis.metrics import REQUEST, VERDICTS, RequestTable
from usbtrace.analysis.requests import KINDS
from usbtrace.report.jsonout import _request_blocks


def _table(n: int, seed: int) -> RequestTable:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=REQUEST)
    rows["index"] = np.arange(n) + 3
    rows["kind"] = rng.integers(0, len(KINDS), n)
    rows["t_start_ns"] = 1_750_000_000_000_000_000 + rng.integers(0, 1 << 40, n)
    rows["t_end_ns"] = rows["t_start_ns"] + rng.integers(0, 1 << 30, n)
    for name in ("instructions", "input", "parameters", "output"):
        rows[name] = rng.integers(0, 1 << 33, n)
    rows["overlap"] = rng.random(n)
    rows["stream_busy_ns"] = rng.integers(0, 1 << 30, n)
    rows["stream_rate_Bps"] = np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 4e8)
    rows["verdict"] = rng.integers(0, len(VERDICTS), n)
    rows["verdict_share"] = np.where(rows["verdict"] == 0, np.nan, rng.random(n))
    rows["cache_refill"] = rng.random(n) < 0.1
    rows["has_host"] = rng.random(n) < 0.5
    rows["host_start_ns"] = rows["t_start_ns"] - rng.integers(0, 1 << 20, n)
    rows["host_end_ns"] = rows["t_end_ns"] + rng.integers(0, 1 << 20, n)
    for name in ("link_busy_ns", "device_wait_ns", "host_gap_ns"):
        rows[name] = rng.integers(0, 1 << 30, n)
    picked = rng.choice(n, size=min(n, 40), replace=False) + 3
    problems = {int(i): [f"problem, {i}", 'with "quotes"'] for i in picked}
    problems[int(picked[0])] = []  # an empty list is no problem
    return RequestTable(rows, problems)


def test_column_encoding_equals_each_objects_encoding():
    for n, seed in ((1, 1), (300, 2), (9000, 3)):
        table = _table(n, seed)
        want = b",".join(orjson.dumps(d) for d in table.to_json_rows())
        blocks = list(_request_blocks(table))
        assert b",".join(b for b, _ in blocks) == want
        assert sum(k for _, k in blocks) == n
    # every optional key was exercised
    docs = list(_table(300, 2).to_json_rows())
    for key in ("cache_refill", "host_latency_s", "host_overhead_s", "problems"):
        assert any(key in d for d in docs), key
    assert any(d["stream_rate_Bps"] is None for d in docs)
