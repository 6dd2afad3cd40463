"""The ``summarize`` table and CSV: one row per capture (and optionally per request)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import TextIO

from usbtrace.analysis.metrics import RequestMetrics
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.edgetpu.trace import NS
from usbtrace.models.catalog import model_sort_key
from usbtrace.report.table import Column, fmt_bytes, fmt_rate, render_table, wants_rich

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


def capture_cells(s: CaptureSummary, compact: bool = False) -> list[str]:
    def nbytes(n: int | None) -> str:
        return fmt_bytes(n, compact)

    j = s.summary_json()
    inf = s.inferences
    overlap = j["overlap_median"]
    return [
        s.model or s.file.rsplit("/", 1)[-1],
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
    columns = (*COLUMNS, Column("vs model", priority=92)) if with_model else COLUMNS
    rows: list[list[str]] = []
    for s in summaries:
        cells = capture_cells(s, compact)
        rows.append([*cells, reconciliation_cell(s.reconciliation)] if with_model else cells)
        if per_request:
            extra = [""] if with_model else []
            rows.extend([*request_cells(r, compact), *extra] for r in s.requests)
    render_table(columns, rows, title="usbtrace summary", stream=stream)


CSV_FIELDS = (
    "file",
    "device",
    "model",
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
        base = {"file": s.file, "device": s.device, "model": s.model, "link_speed": s.link_speed}
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
