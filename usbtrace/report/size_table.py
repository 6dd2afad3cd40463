"""The model-size table (``summarize --by-size``): one row per (family, size, label).

Captures of the same model under the same label (``usb3``, ``usb2``, ``5W``…) are pooled: their
inferences together give the median latency, streamed bytes, overlap and stream rate. The label is
the capture metadata's ``label``, else the link speed (``usb3`` for SuperSpeed, ``usb2`` for High
Speed), else ``-``. Compiled cached/streamed bytes come from the capture's metadata
(``model_summary``, written by the capture runner) or, when absent, from inspecting the catalog's
compiled model; the CPU time from ``cpu_baseline_s`` in the metadata (``sweep --cpu-baseline``).
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from usbtrace.analysis.metrics import VERDICT_NA, percentile
from usbtrace.analysis.ops import ops_per_inference
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.edgetpu.trace import NS
from usbtrace.errors import UsbtraceError
from usbtrace.models.catalog import parse_model_name, resolve
from usbtrace.models.inspect import inspect_model
from usbtrace.report.table import Column, render_table

MIB = 1 << 20
LABEL_BY_LINK_SPEED = {"super": "usb3", "high": "usb2", "full": "usb1", "low": "usb1"}


def family_size(model: str | None) -> tuple[str, int | None]:
    """("conv", 50) for conv_50 or the study's model_conv_128x128x3x32x7x50; (name, None) else."""
    if not model:
        return "?", None
    parsed = parse_model_name(model)
    return parsed if parsed is not None else (model, None)


def capture_label(s: CaptureSummary) -> str:
    if s.metadata is not None and s.metadata.label:
        return s.metadata.label
    return LABEL_BY_LINK_SPEED.get(s.link_speed or "", "-")


@functools.cache
def _catalog_model_bytes(name: str) -> tuple[int | None, int | None]:
    try:
        entry = resolve(name)
        if not entry.compiled_exists:
            return None, None
        summary = inspect_model(entry.compiled)
    except (UsbtraceError, OSError, ValueError):
        return None, None
    return summary.cached_bytes, summary.streamed_bytes


def compiled_bytes(s: CaptureSummary) -> tuple[int | None, int | None]:
    """(cached, streamed) parameter bytes the compiler planned for the capture's model."""
    meta = s.run_metadata
    ms = meta.extra.get("model_summary") if meta is not None else None
    if isinstance(ms, dict) and isinstance(ms.get("cached_bytes"), int):
        return ms["cached_bytes"], ms.get("streamed_bytes")
    return _catalog_model_bytes(s.known_model) if s.known_model else (None, None)


def cpu_baseline(s: CaptureSummary) -> float | None:
    meta = s.run_metadata
    v = meta.extra.get("cpu_baseline_s") if meta is not None else None
    return float(v) if isinstance(v, int | float) and v > 0 else None


@dataclass
class SizeRow:
    family: str
    size: int | None
    label: str
    model: str
    link_speed: str | None
    files: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # BUS.ADDR of each file's Edge TPU
    inferences: int = 0
    model_cached_bytes: int | None = None
    model_streamed_bytes: int | None = None
    cache_fill_bytes: int | None = None  # first caching request seen on the wire (median)
    streamed_bytes: int | None = None  # per inference on the wire (median)
    latency_s: float | None = None  # median over all inferences with an event
    cpu_baseline_s: float | None = None
    ops: int | None = None
    overlap: float | None = None
    stream_rate_Bps: float | None = None
    verdict: str = VERDICT_NA
    problems: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        if self.cpu_baseline_s is None or not self.latency_s:
            return None
        return self.cpu_baseline_s / self.latency_s

    @property
    def ops_per_s(self) -> float | None:
        if self.ops is None or not self.latency_s:
            return None
        return self.ops / self.latency_s

    @property
    def integrity_ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "size": self.size,
            "label": self.label,
            "model": self.model,
            "link_speed": self.link_speed,
            "files": list(self.files),
            "devices": list(self.devices),
            "inferences": self.inferences,
            "model_cached_bytes": self.model_cached_bytes,
            "model_streamed_bytes": self.model_streamed_bytes,
            "cache_fill_bytes": self.cache_fill_bytes,
            "streamed_bytes_per_inference": self.streamed_bytes,
            "latency_median_s": self.latency_s,
            "cpu_baseline_s": self.cpu_baseline_s,
            "speedup": self.speedup,
            "ops_per_inference": self.ops,
            "ops_per_s": self.ops_per_s,
            "overlap_median": self.overlap,
            "stream_rate_median_Bps": self.stream_rate_Bps,
            "verdict": self.verdict,
            "integrity_ok": self.integrity_ok,
            "problems": list(self.problems),
        }


def _median_int(values: list[int]) -> int | None:
    m = percentile([float(v) for v in values], 50)
    return None if m is None else round(m)


def _group_key(row: SizeRow) -> tuple:
    # as ``summarize`` orders captures: family, then size, unrecognised names last
    return (row.size is None, row.family, row.size or 0, row.label, row.files)


def _group(s: CaptureSummary) -> tuple[str, int | None, str, str]:
    """Captures pool only when their model is known (not guessed) and has a family and size.

    Any other capture is a row of its own: pooling "unknown" captures, or captures whose file
    names merely look alike, would average unrelated models into one row.
    """
    family, size = family_size(s.known_model)
    alone = "" if size is not None else f"{s.file} {s.device}"
    return family, size, capture_label(s), alone


def size_rows(summaries: Sequence[CaptureSummary]) -> list[SizeRow]:
    groups: dict[tuple[str, int | None, str, str], list[CaptureSummary]] = {}
    for s in summaries:
        groups.setdefault(_group(s), []).append(s)
    rows = []
    for (family, size, label, _), members in groups.items():
        inf = [r for s in members for r in s.inferences]
        timed = [r for r in inf if r.has_event]
        cached, streamed = next(
            (c for c in map(compiled_bytes, members) if c != (None, None)), (None, None)
        )
        cpus = [c for c in map(cpu_baseline, members) if c is not None]
        verdicts = [r.verdict for r in inf]
        fills = [s.cache_fill_bytes for s in members if s.cache_fill_bytes]
        rates = [r.stream_rate_Bps for r in inf if r.stream_rate_Bps]
        rows.append(
            SizeRow(
                family=family,
                size=size,
                label=label,
                model=members[0].model_label or Path(members[0].file).stem,
                link_speed=members[0].link_speed,
                files=[s.file for s in members],
                devices=[s.device for s in members],
                inferences=len(inf),
                model_cached_bytes=cached,
                model_streamed_bytes=streamed,
                cache_fill_bytes=_median_int(fills),
                streamed_bytes=_median_int([r.parameters for r in inf]),
                latency_s=percentile([r.latency_ns / NS for r in timed], 50),
                cpu_baseline_s=percentile(cpus, 50),
                ops=None if size is None else ops_per_inference(family, size),
                overlap=percentile([r.overlap for r in inf], 50),
                stream_rate_Bps=percentile(rates, 50),
                verdict=max(set(verdicts), key=verdicts.count) if verdicts else VERDICT_NA,
                problems=[
                    f"{s.file} ({s.device}): {p}" for s in members for p in s.integrity.problems
                ],
            )
        )
    rows.sort(key=_group_key)
    return rows


def streaming_onset(rows: Sequence[SizeRow]) -> int | None:
    """The smallest size whose inferences stream parameters (any label), None if none does."""
    sizes = [r.size for r in rows if r.size is not None and r.streamed_bytes]
    return min(sizes) if sizes else None


def largest_non_streaming(rows: Sequence[SizeRow]) -> int | None:
    """The largest size whose inferences stream nothing (all of it fits the cache)."""
    sizes = [r.size for r in rows if r.size is not None and r.streamed_bytes == 0]
    return max(sizes) if sizes else None


def cache_capacity(rows: Sequence[SizeRow]) -> int | None:
    """The parameter cache in use: the largest parameter-caching fill of a streaming model.

    Once a model streams, the compiler has given it what it uses of the on-chip memory; below
    that, fills are just the model. The compiler may use less than the chip has (the real
    dense_300 caches 0.99 MiB and streams the rest), so this is a lower bound of the cache.
    """
    fills = [r.cache_fill_bytes for r in rows if r.streamed_bytes and r.cache_fill_bytes]
    if not fills:
        fills = [
            r.model_cached_bytes for r in rows if r.model_streamed_bytes and r.model_cached_bytes
        ]
    fills = [f for f in fills if f]
    return max(fills) if fills else None


def family_notes(rows: Sequence[SizeRow]) -> list[dict[str, Any]]:
    """Per family: where streaming begins (between two captured sizes) and the cache in use."""
    families: dict[str, list[SizeRow]] = {}
    for r in rows:
        if r.size is not None:
            families.setdefault(r.family, []).append(r)
    return [
        {
            "family": fam,
            "streaming_from_size": streaming_onset(members),
            "largest_non_streaming_size": largest_non_streaming(members),
            "cache_bytes": cache_capacity(members),
        }
        for fam, members in families.items()
    ]


def note_line(note: dict[str, Any]) -> str:
    fam, onset, cache = note["family"], note["streaming_from_size"], note["cache_bytes"]
    below = note["largest_non_streaming_size"]
    if onset is None:
        return f"{fam}: no captured size streams parameters (up to {below}, all is cached)"
    fits = f"{below} still fits" if below is not None and below < onset else "no smaller size"
    return (
        f"{fam}: streaming begins by size {onset} ({fits}); "
        f"streaming models cache {fmt_mib(cache)} MiB"
    )


# -- formatting ------------------------------------------------------------------------------------


def fmt_mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:.2f}"


def fmt_si(x: float | None, unit: str = "") -> str:
    """Three significant digits with an SI prefix: 80.7 G, 2.00 T, 5.98 M."""
    if x is None:
        return "-"
    scale, prefix = next(
        ((s, p) for s, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")) if abs(x) >= s),
        (1.0, ""),
    )
    v = x / scale
    digits = 2 if abs(v) < 10 else 1 if abs(v) < 100 else 0
    return f"{v:.{digits}f} {prefix}{unit}".rstrip()


COLUMNS = (
    Column("model"),
    Column("label"),
    Column("inf", "right"),
    Column("cached MiB", "right"),
    Column("streamed MiB", "right"),
    Column("wire fill MiB", "right"),
    Column("wire MiB/inf", "right"),
    Column("lat med", "right"),
    Column("speed-up", "right"),
    Column("ops/inf", "right"),
    Column("ops/s", "right"),
    Column("overlap", "right"),
    Column("MB/s", "right"),
    Column("verdict"),
    Column("integrity"),
)


def row_cells(r: SizeRow) -> list[str]:
    return [
        r.model,
        r.label,
        str(r.inferences),
        fmt_mib(r.model_cached_bytes),
        fmt_mib(r.model_streamed_bytes),
        fmt_mib(r.cache_fill_bytes),
        fmt_mib(r.streamed_bytes),
        "-" if r.latency_s is None else f"{r.latency_s * 1e3:.2f} ms",
        "-" if r.speedup is None else f"{r.speedup:.1f}x",
        fmt_si(r.ops),
        fmt_si(r.ops_per_s),
        "-" if r.overlap is None else f"{r.overlap:.3f}",
        "-" if r.stream_rate_Bps is None else f"{r.stream_rate_Bps / 1e6:.1f}",
        r.verdict,
        "ok" if r.integrity_ok else f"{len(r.problems)} problem(s)",
    ]


def print_size_table(rows: Sequence[SizeRow], stream: TextIO | None = None) -> None:
    render_table(
        COLUMNS,
        [row_cells(r) for r in rows],
        title="usbtrace summary by model size (MiB = 2^20 bytes; medians per inference)",
        stream=stream,
    )


CSV_FIELDS = (
    "family",
    "size",
    "label",
    "model",
    "link_speed",
    "captures",
    "inferences",
    "model_cached_bytes",
    "model_streamed_bytes",
    "cache_fill_bytes",
    "streamed_bytes_per_inference",
    "latency_median_s",
    "cpu_baseline_s",
    "speedup",
    "ops_per_inference",
    "ops_per_s",
    "overlap_median",
    "stream_rate_median_Bps",
    "verdict",
    "integrity_ok",
)


def write_size_csv(rows: Sequence[SizeRow], stream: TextIO) -> None:
    w = csv.DictWriter(stream, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        j = r.to_json()
        j["captures"] = len(r.files)
        w.writerow(j)


def emit_by_size(summaries: Sequence[CaptureSummary], *, as_json: bool, stream: TextIO) -> None:
    """What ``summarize --by-size`` prints: the size table, or its JSON. Its CSV is
    ``write_size_csv`` to a stream the command opened through its output guard."""
    rows = size_rows(summaries)
    if as_json:
        doc = {"sizes": [r.to_json() for r in rows], "families": family_notes(rows)}
        json.dump(doc, stream, indent=1)
        stream.write("\n")
    else:
        print_size_table(rows, stream)
        for note in family_notes(rows):
            stream.write(note_line(note) + "\n")
