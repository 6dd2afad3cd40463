"""The ``summarize`` table and CSV: one row per capture (and optionally per request)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from usbtrace.analysis.metrics import RequestMetrics
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.edgetpu.trace import NS
from usbtrace.models.catalog import model_sort_key
from usbtrace.report.table import (
    Column,
    distinct_names,
    fmt_bytes,
    fmt_rate,
    render_table,
    wants_rich,
)

COLUMNS = (
    Column("model", priority=100),
    Column("link", priority=50),
    Column("inf", "right", priority=60),
    Column("cached B", "right", priority=80),
    Column("instr B", "right", priority=75),
    Column("input B", "right", priority=40),
    Column("streamed B", "right", priority=90),
    Column("output B", "right", priority=40),
    Column("lat med", "right", priority=95),
    Column("lat p90", "right", priority=70),
    Column("overlap", "right", priority=90),
    Column("MB/s", "right", priority=85),
    Column("verdict", priority=95),
    Column("integrity", priority=88),
)
# fewer characters per cell on a terminal: ms values say their unit in the column title


def sort_key(s: CaptureSummary) -> tuple:
    """Model family, then size (conv_10 < conv_25 < ... < conv_300), then file and device."""
    return (s.model is None, model_sort_key(s.model or ""), s.file, s.device)


SHORT_FIELD = {"instructions": "instr", "input": "in", "parameters": "param", "output": "out"}


def reconciliation_cell(rec: dict | None) -> str:
    """``ok``, or the byte differences of the first request that does not match the model."""
    if rec is None:
        return "-"
    if rec.get("ok"):
        return "ok"
    for r in rec.get("requests", []):
        if r.get("ok"):
            continue
        diffs = [
            f"{short} {r[name]['difference']:+,}"
            for name, short in SHORT_FIELD.items()
            if isinstance(r.get(name), dict) and not r[name]["ok"]
        ]
        if not diffs and r.get("sequence", {}).get("ok") is False:
            diffs = ["order"]
        return f"#{r['index']} " + ", ".join(diffs)
    return "mismatch"


def _median_int(values: list[int]) -> int | None:
    if not values:
        return None
    v = sorted(values)
    return v[len(v) // 2]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def row_name(s: CaptureSummary) -> str:
    """A capture's first cell, under "model": its model (a guess shows as "dense_900?"), or "-"
    when none is known. A file name is never shown as a model: rows that this leaves alike get
    a "capture" column (``capture_names``)."""
    return s.model_label or "-"


def capture_cells(s: CaptureSummary, compact: bool = False) -> list[str]:
    def nbytes(n: int | None) -> str:
        return fmt_bytes(n, compact)

    j = s.summary_json()
    inf = s.inferences
    overlap = j["overlap_median"]
    return [
        row_name(s),
        s.link_speed or "?",
        str(len(inf)),
        nbytes(s.cache_fill_bytes),
        nbytes(_median_int([r.instructions for r in inf])),
        nbytes(_median_int([r.input for r in inf])),
        nbytes(_median_int([r.parameters for r in inf])),
        nbytes(_median_int([r.output for r in inf])),
        _ms(j["latency_median_s"]),
        _ms(j["latency_p90_s"]),
        "-" if overlap is None else f"{overlap:.3f}",
        fmt_rate(j["stream_rate_median_Bps"]),
        j["verdict"],
        "ok" if s.integrity.ok else f"{len(s.integrity.problems)} problem(s)",
    ]


def request_cells(r: RequestMetrics, compact: bool = False) -> list[str]:
    def nbytes(n: int | None) -> str:
        return fmt_bytes(n, compact)

    return [
        f"  #{r.index} {r.kind}",
        "",
        "",
        nbytes(r.parameters) if r.kind == "parameter-caching" else "",
        nbytes(r.instructions),
        nbytes(r.input),
        nbytes(r.parameters) if r.kind != "parameter-caching" else "",
        nbytes(r.output),
        _ms(r.latency_ns / NS),
        "",
        f"{r.overlap:.3f}",
        fmt_rate(r.stream_rate_Bps),
        r.verdict,
        "ok" if not r.problems else "; ".join(r.problems),
    ]


def print_summary_table(
    summaries: Sequence[CaptureSummary], *, per_request: bool, stream: TextIO | None = None
) -> None:
    compact = wants_rich(stream)  # exact bytes in pipes, JSON and CSV; short on a terminal
    with_model = any(s.reconciliation is not None for s in summaries)
    columns: tuple[Column, ...] = COLUMNS
    if with_model:
        columns = (*columns, Column("vs model", priority=92))
    captures = capture_names(summaries)
    if captures is not None:
        columns = (columns[0], Column("capture", priority=97), *columns[1:])
    rows: list[list[str]] = []
    for i, s in enumerate(summaries):
        cells = capture_cells(s, compact)
        if with_model:
            cells.append(reconciliation_cell(s.reconciliation))
        if captures is not None:
            cells.insert(1, captures[i])
        rows.append(cells)
        if per_request:
            for r in s.requests:
                cells = request_cells(r, compact)
                if with_model:
                    cells.append("")
                if captures is not None:
                    cells.insert(1, "")
                rows.append(cells)
    render_table(columns, rows, title="usbtrace summary", stream=stream)


def capture_names(summaries: Sequence[CaptureSummary]) -> list[str] | None:
    """What tells the rows apart when their first cell (model, else file name) does not: each
    file's shortest distinguishing path, and the device when a file holds several Edge TPUs.
    None when every row's first cell is already its own."""
    seen: dict[str, tuple[str, str]] = {}
    clash = False
    for s in summaries:
        clash |= seen.setdefault(row_name(s), (s.file, s.device)) != (s.file, s.device)
    if not clash:
        return None
    files = [s.file for s in summaries]
    shared = {f for f, n in Counter(files).items() if n > 1}
    return [
        f"{n} ({s.device})" if s.file in shared else n
        for n, s in zip(distinct_names(files), summaries)
    ]


CSV_FIELDS = (
    "file",
    "device",
    "model",
    "model_source",  # how ``model`` is known, as in the JSON: a file-name guess says so
    "link_speed",
    "row",
    "index",
    "kind",
    "t_start",
    "t_end",
    "latency_s",
    "instructions",
    "input",
    "parameters",
    "output",
    "overlap",
    "stream_busy_s",
    "stream_rate_Bps",
    "verdict",
    "integrity_ok",
    "problems",
)


def write_csv(summaries: Sequence[CaptureSummary], stream: TextIO) -> None:
    """One row per request (row=request) and one per capture (row=capture, medians)."""
    w = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
    w.writeheader()
    for s in summaries:
        j = s.summary_json()
        base = {
            "file": s.file,
            "device": s.device,
            "model": s.model,
            "model_source": s.model_source,
            "link_speed": s.link_speed,
        }
        w.writerow(
            {
                **base,
                "row": "capture",
                "kind": "summary",
                "latency_s": j["latency_median_s"],
                "overlap": j["overlap_median"],
                "stream_rate_Bps": j["stream_rate_median_Bps"],
                "verdict": j["verdict"],
                "integrity_ok": s.integrity.ok,
                "problems": " | ".join(s.integrity.problems),
            }
        )
        for r in s.requests:
            rj = r.to_json()
            w.writerow(
                {
                    **base,
                    "row": "request",
                    "index": r.index,
                    "kind": r.kind,
                    "t_start": rj["t_start"],
                    "t_end": rj["t_end"],
                    "latency_s": rj["latency_s"],
                    **rj["bytes"],
                    "overlap": r.overlap,
                    "stream_busy_s": rj["stream_busy_s"],
                    "stream_rate_Bps": r.stream_rate_Bps,
                    "verdict": r.verdict,
                    "integrity_ok": not r.problems,
                    "problems": " | ".join(r.problems),
                }
            )
