"""Flat tables of summaries for bigger engines: one row per request, one row per capture.

Both tables carry ``file`` and ``device`` so they join; every column has one fixed type, so a
folder of exports from many hosts reads as one table in DuckDB, Polars or Spark. Parquet needs
pyarrow (``pip install 'usbtrace[parquet]'``); CSV needs nothing. The columns are listed, with
their meaning, in ``REQUEST_COLUMNS`` and ``CAPTURE_COLUMNS`` (and in docs/hardening.md).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from usbtrace.analysis.metrics import RequestMetrics
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.edgetpu.trace import NS
from usbtrace.errors import UsageError

REQUESTS_NAME = "requests"
CAPTURES_NAME = "captures"
TABLE_NAMES = (REQUESTS_NAME, CAPTURES_NAME)


@dataclass(frozen=True)
class ExportColumn:
    name: str
    type: str  # "string" | "int64" | "float64" | "bool"
    doc: str


@dataclass(frozen=True)
class ExportTable:
    name: str  # file stem: requests / captures
    columns: tuple[ExportColumn, ...]
    rows: list[list[Any]]


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / NS


_CAPTURE_KEYS = (
    ExportColumn("file", "string", "capture file as given on the command line"),
    ExportColumn("device", "string", "Edge TPU as BUS.ADDRESS"),
    ExportColumn("model", "string", "model name (see model_source for how it is known)"),
    ExportColumn("model_source", "string", "option / metadata / bytes / file name (guess)"),
    ExportColumn("link_speed", "string", "super / high / full / low, or empty if unknown"),
)

REQUEST_COLUMNS = (
    *_CAPTURE_KEYS,
    ExportColumn("index", "int64", "request number within the capture, from 0"),
    ExportColumn("kind", "string", "inference / parameter-caching / other"),
    ExportColumn("t_start", "float64", "first bulk-OUT header submit, s since the epoch"),
    ExportColumn("t_end", "float64", "later of completion event and last output chunk, s"),
    ExportColumn("latency_s", "float64", "t_end - t_start"),
    ExportColumn("instructions_bytes", "int64", "instruction bytes sent"),
    ExportColumn("input_bytes", "int64", "input activation bytes sent"),
    ExportColumn("parameters_bytes", "int64", "parameter bytes (cached or streamed)"),
    ExportColumn("output_bytes", "int64", "output bytes read"),
    ExportColumn("overlap", "float64", "share of the execution window with parameter streaming"),
    ExportColumn("stream_busy_s", "float64", "union of parameter URB intervals"),
    ExportColumn("stream_rate_Bps", "float64", "streamed bytes / stream_busy_s (null if none)"),
    ExportColumn("verdict", "string", "link-bound / device-bound / host-bound / n/a"),
    ExportColumn("verdict_share", "float64", "the verdict's share of the latency, or null"),
    ExportColumn("link_busy_s", "float64", "union of bulk transfers in flight"),
    ExportColumn("device_wait_s", "float64", "time waiting on the device"),
    ExportColumn("host_gap_s", "float64", "time neither the link nor the device had work"),
    ExportColumn("cache_refill", "bool", "a parameter-caching request after the first one"),
    ExportColumn("host_latency_s", "float64", "host invoke() duration from metadata, or null"),
    ExportColumn("ok", "bool", "no problem found in this request"),
    ExportColumn("problems", "string", "problems of this request, joined by ' | '"),
)

CAPTURE_COLUMNS = (
    *_CAPTURE_KEYS,
    ExportColumn("label", "string", "the capture runner's label, from the metadata"),
    ExportColumn("inferences", "int64", "number of inference requests"),
    ExportColumn("cache_fill_bytes", "int64", "parameters of the first caching request"),
    ExportColumn("latency_median_s", "float64", "median inference latency"),
    ExportColumn("latency_p90_s", "float64", "90th percentile inference latency"),
    ExportColumn("latency_min_s", "float64", "fastest inference"),
    ExportColumn("latency_max_s", "float64", "slowest inference"),
    ExportColumn("first_inference_latency_s", "float64", "latency of the first inference"),
    ExportColumn("steady_latency_median_s", "float64", "median latency without the first one"),
    ExportColumn("overlap_median", "float64", "median overlap of the inferences"),
    ExportColumn("stream_rate_median_Bps", "float64", "median stream rate of the inferences"),
    ExportColumn("link_peak_out_Bps", "float64", "fastest bulk-OUT rate seen in the capture"),
    ExportColumn("verdict", "string", "most common inference verdict"),
    ExportColumn("runtime_clock_mhz", "float64", "Edge TPU clock the runtime set, or null"),
    ExportColumn("cache_refills", "int64", "caching requests after the first"),
    ExportColumn("csr_accesses", "int64", "register reads and writes"),
    ExportColumn("firmware_bytes", "int64", "firmware downloaded over DFU, or null"),
    ExportColumn("other_devices", "string", "other devices on the bus, space-separated"),
    ExportColumn("integrity_ok", "bool", "no problem found in the capture"),
    ExportColumn("problems", "int64", "number of integrity problems"),
)


def _request_row(s: CaptureSummary, r: RequestMetrics) -> list[Any]:
    return [
        s.file, s.device, s.model, s.model_source, s.link_speed,
        r.index, r.kind, r.t_start_ns / NS, r.t_end_ns / NS, r.latency_ns / NS,
        r.instructions, r.input, r.parameters, r.output,
        r.overlap, r.stream_busy_ns / NS, r.stream_rate_Bps, r.verdict, r.verdict_share,
        r.link_busy_ns / NS, r.device_wait_ns / NS, r.host_gap_ns / NS, r.cache_refill,
        _seconds(r.host_latency_ns), not r.problems, " | ".join(r.problems),
    ]  # fmt: skip


def _capture_row(s: CaptureSummary) -> list[Any]:
    j = s.summary_json()
    return [
        s.file, s.device, s.model, s.model_source, s.link_speed,
        s.metadata.label if s.metadata else None,
        j["inferences"], j["cache_fill_bytes"],
        j["latency_median_s"], j["latency_p90_s"], j["latency_min_s"], j["latency_max_s"],
        j["first_inference_latency_s"], j["steady_latency_median_s"],
        j["overlap_median"], j["stream_rate_median_Bps"], j["link_peak_out_Bps"],
        j["verdict"], s.runtime_clock_mhz, j["cache_refills"], s.csr.total,
        s.firmware["bytes"] if s.firmware else None,
        " ".join(s.other_devices), s.integrity.ok, len(s.integrity.problems),
    ]  # fmt: skip


def request_table(summaries: Sequence[CaptureSummary]) -> list[list[Any]]:
    return [_request_row(s, r) for s in summaries for r in s.requests]


def capture_table(summaries: Sequence[CaptureSummary]) -> list[list[Any]]:
    return [_capture_row(s) for s in summaries]


def tables(summaries: Sequence[CaptureSummary]) -> list[ExportTable]:
    """The two tables of an export, in the order they are written."""
    return [
        ExportTable(REQUESTS_NAME, REQUEST_COLUMNS, request_table(summaries)),
        ExportTable(CAPTURES_NAME, CAPTURE_COLUMNS, capture_table(summaries)),
    ]


def write_csv_table(table: ExportTable, stream: TextIO) -> None:
    w = csv.writer(stream)
    w.writerow([c.name for c in table.columns])
    w.writerows([["" if v is None else v for v in row] for row in table.rows])


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet_table(table: ExportTable, path: Path) -> None:
    """One table as Parquet at ``path``, each column's description in the schema."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "--parquet needs pyarrow: pip install 'usbtrace[parquet]' (or use --csv)"
        ) from None
    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
    }
    schema = pa.schema(
        [pa.field(c.name, types[c.type], metadata={"doc": c.doc}) for c in table.columns]
    )
    cols: list[Sequence[Any]] = (
        list(zip(*table.rows)) if table.rows else [[] for _ in table.columns]
    )
    arrow = pa.Table.from_arrays(
        [pa.array(list(v), type=f.type) for v, f in zip(cols, schema)], schema=schema
    )
    pq.write_table(arrow, path)
