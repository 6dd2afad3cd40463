"""``usbtrace export``: Parquet and CSV tables of requests and captures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lab.fuzzing.fleet import make_fleet
from lab.fuzzing.oracle import run_cli
from usbtrace.report.export import CAPTURE_COLUMNS, REQUEST_COLUMNS


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    make_fleet(tmp_path / "in", 6)
    return tmp_path / "in"


def _summaries(folder: Path) -> list[dict]:
    o = run_cli(["summarize", "--json", "--jobs", "1", str(folder)])
    assert o.status == 0
    return json.loads(o.stdout)["captures"]


def test_csv_tables_hold_one_row_per_request_and_per_capture(fleet: Path, tmp_path: Path) -> None:
    o = run_cli(["export", str(fleet), "--csv", "--out-dir", str(tmp_path / "out"), "--jobs", "1"])
    assert o.status == 0, o.stderr
    want = _summaries(fleet)
    with open(tmp_path / "out" / "requests.csv") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "out" / "captures.csv") as f:
        caps = list(csv.DictReader(f))
    assert list(rows[0]) == [c.name for c in REQUEST_COLUMNS]
    assert list(caps[0]) == [c.name for c in CAPTURE_COLUMNS]
    assert len(rows) == sum(len(c["requests"]) for c in want)
    assert len(caps) == len(want)
    # the same numbers as summarize --json, row for row
    flat = [(c["file"], r) for c in want for r in c["requests"]]
    for row, (file, r) in zip(rows, flat):
        assert row["file"] == file and int(row["index"]) == r["index"]
        assert int(row["parameters_bytes"]) == r["bytes"]["parameters"]
        assert float(row["latency_s"]) == pytest.approx(r["latency_s"])
        assert row["verdict"] == r["verdict"]
        assert float(row["device_wait_s"]) == pytest.approx(r["device_wait_s"])
        assert float(row["link_busy_s"]) == pytest.approx(r["link_busy_s"])
    for row, c in zip(caps, want):
        assert int(row["inferences"]) == c["summary"]["inferences"]
        assert row["model_source"] == (c["model_source"] or "")
        clock = c["summary"]["runtime_clock_mhz"]
        assert (float(row["runtime_clock_mhz"]) if row["runtime_clock_mhz"] else None) == clock


def test_parquet_tables_query_in_duckdb(fleet: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (extra 'parquet') not installed")
    out = tmp_path / "fleet" / "host=a"
    o = run_cli(["export", str(fleet), "--parquet", "--out-dir", str(out)])
    assert o.status == 0, o.stderr
    want = _summaries(fleet)
    req = pq.read_table(out / "requests.parquet")
    cap = pq.read_table(out / "captures.parquet")
    assert req.column_names == [c.name for c in REQUEST_COLUMNS]
    assert str(req.schema.field("parameters_bytes").type) == "int64"
    assert req.num_rows == sum(len(c["requests"]) for c in want)
    assert cap.num_rows == len(want)
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed")
    infs = duckdb.sql(
        f"SELECT host, count(*) FROM read_parquet('{tmp_path}/fleet/*/requests.parquet', "
        "hive_partitioning=true) WHERE kind = 'inference' GROUP BY host"
    ).fetchall()
    assert infs == [("a", sum(c["summary"]["inferences"] for c in want))]


def test_export_never_overwrites_a_file(fleet: Path) -> None:
    victim = sorted(fleet.iterdir())[0]
    before = victim.read_bytes()
    o = run_cli(["export", str(fleet), "--csv", "--out-dir", str(victim)])
    assert o.status == 2 and "not a folder" in o.stderr
    assert victim.read_bytes() == before


def test_export_needs_a_format(fleet: Path) -> None:
    o = run_cli(["export", str(fleet)])
    assert o.status == 2 and "--parquet" in o.stderr


def test_parquet_without_pyarrow_is_a_one_line_error(
    fleet: Path, tmp_path: Path, monkeypatch
) -> None:
    import usbtrace.report.export as export

    monkeypatch.setattr(export, "have_pyarrow", lambda: False)
    o = run_cli(["export", str(fleet), "--parquet", "--out-dir", str(tmp_path / "o")])
    assert o.status == 2 and "pyarrow" in o.stderr and o.traceback is None
    assert not (tmp_path / "o").exists()
