"""``summarize --json`` encodes requests a column at a time (``report.jsonout``); the bytes must
be those of encoding each request's object (``RequestTable.to_json_rows``), whatever a row
holds: missing rates and verdicts, cache refills, host timing, problems, and blocks of 4096.
Both take their keys from ``RequestJsonColumns``' fields: a field is a key of both, in order."""

from __future__ import annotations

import json
from dataclasses import fields, make_dataclass
from typing import get_type_hints

import numpy as np
import orjson

from usbtrace.analysis import metrics
from usbtrace.analysis.metrics import (
    REQUEST,
    REQUEST_JSON_NESTED,
    VERDICTS,
    RequestJsonColumns,
    RequestTable,
    request_json_keys,
)
from usbtrace.analysis.requests import KINDS
from usbtrace.report import jsonout
from usbtrace.report.jsonout import _request_blocks, request_encoding


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


def _flat_keys(doc: dict) -> list[str]:
    """A JSON object's keys in order, a nested object's members in its place."""
    return [m for k, v in doc.items() for m in (list(v) if isinstance(v, dict) else [k])]


def test_both_encodings_have_every_field_in_order():
    table = RequestTable(np.zeros(1, dtype=REQUEST), {})  # no optional keys
    (obj,) = table.to_json_rows()
    ((block, _),) = _request_blocks(table)
    encoded = json.loads(block)
    # every field but extra, in the dataclass' order; bytes' members nested, in their order
    want = [f.name for f in fields(RequestJsonColumns) if f.name != "extra"]
    for doc in (obj, encoded):
        assert _flat_keys(doc) == want
        assert list(doc["bytes"]) == list(REQUEST_JSON_NESTED["bytes"])
    assert list(obj) == list(encoded)


def test_a_new_field_is_a_key_of_both_encodings_where_declared(monkeypatch):
    # a wider RequestJsonColumns: a number after kind, a string (with commas) before extra
    hints = get_type_hints(RequestJsonColumns)
    spec = [(f.name, hints[f.name]) for f in fields(RequestJsonColumns)]
    spec.insert(2, ("new_number", list[int]))
    spec.insert(len(spec) - 1, ("new_text", list[str]))
    wider = make_dataclass("Wider", spec)

    def columns(**values):
        n = len(values["index"])
        texts = [f"a, {i % 3}" for i in range(n)]
        return wider(**values, new_number=list(range(n)), new_text=texts)

    # what is derived from the dataclass, derived again from the wider one
    keys = request_json_keys(wider)
    monkeypatch.setattr(metrics, "RequestJsonColumns", columns)
    monkeypatch.setattr(metrics, "REQUEST_JSON_KEYS", keys)
    template, encoders = request_encoding(wider)
    monkeypatch.setattr(jsonout, "_REQUEST", template)
    monkeypatch.setattr(jsonout, "_REQUEST_COLUMNS", encoders)

    table = _table(5000, 4)
    docs = list(table.to_json_rows())
    assert all(list(d)[:3] == ["index", "kind", "new_number"] for d in docs)
    assert all(list(d)[len(keys) - 1] == "new_text" for d in docs)
    assert docs[7]["new_number"] == 7 and docs[7]["new_text"] == "a, 1"
    want = b",".join(orjson.dumps(d) for d in docs)
    assert b",".join(b for b, _ in _request_blocks(table)) == want
