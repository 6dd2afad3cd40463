"""Plots across model sizes, one set per family: the data first (``PlotSpec``), then matplotlib.

The data is kept apart from the drawing so that tests, ``--json`` and the HTML report check and
reuse exactly what is drawn. Rendering uses matplotlib's Agg backend: no display is needed.

A line is drawn only through a sweep: the points of one label at two or more sizes. A family
captured at a single size is no sweep: its values are labelled bars, with no size axis and no
"streaming from" marker, since one size cannot show where anything begins.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from usbtrace.errors import UsageError
from usbtrace.report.size_table import (
    MIB,
    SizeRow,
    cache_capacity,
    largest_non_streaming,
    streaming_onset,
)


@dataclass
class Series:
    label: str
    x: list[int]
    y: list[float]
    style: str = "-o"  # as drawn when the series is a sweep; a single point gets no line

    @property
    def is_sweep(self) -> bool:
        return len(set(self.x)) >= 2


SWEEP, BARS = "sweep", "bars"


@dataclass
class PlotSpec:
    name: str  # file stem: FAMILY-WHAT
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label)
    vlines: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    kind: str = SWEEP  # SWEEP: values against size; BARS: one labelled bar per value

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
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


# what the size of a model means, per family (parse_model_name): layers, or input resolution
SIZE_UNITS = {"conv": "layers", "dense": "layers"}


def size_label(family: str) -> str:
    if family in SIZE_UNITS:
        return f"{family} model size ({SIZE_UNITS[family]})"
    if "mobilenet" in family:
        return f"{family} input resolution (pixels)"
    return f"{family} model size"


def family_specs(family: str, rows: Sequence[SizeRow]) -> list[PlotSpec]:
    sizes = {r.size for r in rows if r.size is not None}
    kind = SWEEP if len(sizes) >= 2 else BARS
    xlabel = size_label(family) if kind == SWEEP else ""
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
    below = largest_non_streaming(rows)
    # a marker only where the sweep shows both sides: a captured size that still fits below it
    if kind == SWEEP and onset is not None and below is not None and below < onset:
        bytes_spec.vlines.append((onset, f"streaming from {onset} ({below} fits)"))
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
    for spec in specs:
        spec.kind = kind
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
        draw(ax, spec)
        with warnings.catch_warnings():
            # a label from a capture's metadata may be too long for any tight layout (255
            # characters): matplotlib then warns over several lines of stderr and draws the
            # figure as it is, which is all that can be done
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout()
        fig.savefig(path, format=fmt)
    finally:
        plt.close(fig)
    return path


def draw(ax: Any, spec: PlotSpec) -> None:
    """``spec`` on matplotlib axes: lines only through sweeps, else points or labelled bars."""
    if spec.kind == BARS:
        _bars(ax, spec)
    else:
        for s in spec.series:
            # a label captured at one size is a point, not a line
            ax.plot(s.x, s.y, s.style if s.is_sweep else s.style.lstrip("-"), label=s.label)
    for y, label in spec.hlines:
        ax.axhline(y, color="grey", linestyle=":", label=label)
    for x, label in spec.vlines:
        ax.axvline(x, color="tab:red", linestyle=":", label=label)
    ax.set_title(spec.title)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabel)
    ax.grid(True, alpha=0.3, axis="y" if spec.kind == BARS else "both")
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _bars(ax: Any, spec: PlotSpec) -> None:
    """One bar per value, named by its series and size, its value written on it."""
    names = [f"{s.label}\nsize {x}" for s in spec.series for x in s.x]
    values = [y for s in spec.series for y in s.y]
    bars = ax.bar(range(len(values)), values, color="tab:blue", width=0.6)
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize="small")
    ax.set_xticks(range(len(values)), names, fontsize="small")
