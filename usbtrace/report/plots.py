"""Plots across model sizes, one set per family: the data first (``PlotSpec``), then matplotlib.

The data is kept apart from the drawing so that tests, ``--json`` and the HTML report check and
reuse exactly what is drawn. Rendering uses matplotlib's Agg backend: no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from usbtrace.errors import UsageError
from usbtrace.report.size_table import MIB, SizeRow, cache_capacity, streaming_onset


@dataclass
class Series:
    label: str
    x: list[int]
    y: list[float]
    style: str = "-o"


@dataclass
class PlotSpec:
    name: str  # file stem: FAMILY-WHAT
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label)
    vlines: list[tuple[float, str]] = field(default_factory=list)  # (x, label)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
            "series": [{"label": s.label, "x": s.x, "y": s.y} for s in self.series],
            "hlines": [{"y": y, "label": label} for y, label in self.hlines],
            "vlines": [{"x": x, "label": label} for x, label in self.vlines],
        }


def _series(rows: Sequence[SizeRow], value, style: str = "-o", suffix: str = "") -> list[Series]:
    by_label: dict[str, Series] = {}
    for r in sorted(rows, key=lambda r: (r.label, r.size or 0)):
        v = value(r)
        if r.size is None or v is None:
            continue
        s = by_label.setdefault(r.label, Series(r.label + suffix, [], [], style))
        s.x.append(r.size)
        s.y.append(float(v))
    return [s for s in by_label.values() if s.x]


def _cached_series(rows: Sequence[SizeRow]) -> list[Series]:
    """Parameters cached once per size; the same model caches the same bytes on every link."""
    fills: dict[int, int] = {}
    for r in rows:
        if r.size is not None and r.cache_fill_bytes is not None:
            fills.setdefault(r.size, r.cache_fill_bytes)
    if not fills:
        return []
    x = sorted(fills)
    return [Series("cached once (caching request)", x, [fills[s] / MIB for s in x], "--x")]


def family_specs(family: str, rows: Sequence[SizeRow]) -> list[PlotSpec]:
    unit = "layers" if family in ("conv", "dense") else "size"
    xlabel = f"{family} model size ({unit})"
    specs = [
        PlotSpec(
            f"{family}-latency",
            f"{family}: median inference latency",
            xlabel,
            "latency (ms)",
            _series(rows, lambda r: None if r.latency_s is None else r.latency_s * 1e3),
        )
    ]
    bytes_spec = PlotSpec(
        f"{family}-streamed",
        f"{family}: parameters streamed per inference",
        xlabel,
        "MiB per inference",
        _series(rows, lambda r: None if r.streamed_bytes is None else r.streamed_bytes / MIB)
        + _cached_series(rows),
    )
    cap = cache_capacity(rows)
    if cap is not None:
        bytes_spec.hlines.append((cap / MIB, f"parameter cache in use ≈ {cap / MIB:.2f} MiB"))
    onset = streaming_onset(rows)
    if onset is not None:
        bytes_spec.vlines.append((onset, f"streaming from {onset}"))
    specs.append(bytes_spec)
    specs.append(
        PlotSpec(
            f"{family}-overlap",
            f"{family}: overlap of streaming with execution",
            xlabel,
            "overlap (fraction of execution window)",
            _series(rows, lambda r: r.overlap if r.streamed_bytes else None),
        )
    )
    specs.append(
        PlotSpec(
            f"{family}-stream-rate",
            f"{family}: parameter stream rate",
            xlabel,
            "MB/s (10^6 bytes/s)",
            _series(rows, lambda r: None if r.stream_rate_Bps is None else r.stream_rate_Bps / 1e6),
        )
    )
    specs.append(
        PlotSpec(
            f"{family}-ops",
            f"{family}: operations per second reached",
            xlabel,
            "TOPS (10^12 ops/s)",
            _series(rows, lambda r: None if r.ops_per_s is None else r.ops_per_s / 1e12),
        )
    )
    speedup = _series(rows, lambda r: r.speedup)
    if speedup:
        specs.append(
            PlotSpec(
                f"{family}-speedup", f"{family}: speed-up over the CPU", xlabel, "x CPU", speedup
            )
        )
    return [s for s in specs if s.series]


def plot_specs(rows: Sequence[SizeRow]) -> list[PlotSpec]:
    """Every plot for every family with at least one sized row, in table order."""
    families: dict[str, list[SizeRow]] = {}
    for r in rows:
        if r.size is not None:
            families.setdefault(r.family, []).append(r)
    return [spec for fam, members in families.items() for spec in family_specs(fam, members)]


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), or a one-line error."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "drawing needs matplotlib: pip install 'usbtrace[plots]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def render(spec: PlotSpec, path: Path | IO[bytes], fmt: str | None = None) -> Path | IO[bytes]:
    """Draw ``spec`` into ``path`` (.png or .svg by suffix, or ``fmt`` for a stream)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    try:
        for s in spec.series:
            ax.plot(s.x, s.y, s.style, label=s.label)
        for y, label in spec.hlines:
            ax.axhline(y, color="grey", linestyle=":", label=label)
        for x, label in spec.vlines:
            ax.axvline(x, color="tab:red", linestyle=":", label=label)
        ax.set_title(spec.title)
        ax.set_xlabel(spec.xlabel)
        ax.set_ylabel(spec.ylabel)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path, format=fmt)
    finally:
        plt.close(fig)
    return path
