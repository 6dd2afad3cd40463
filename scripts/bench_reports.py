#!/usr/bin/env python3
"""Time the report layer on synthetic sessions: size table, plots, one timeline, the HTML page.

Writes the ``lab.synthetic`` presets (conv_50, conv_300, dense_300, dense_300_usb2) into a
temporary folder, then prints the wall time of each step. Usage: python3 scripts/bench_reports.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

# the lab package lives in the checkout, outside the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.synthetic import presets, write_session
from usbtrace.pipeline import summarize_file, timeline_file
from usbtrace.report.html_report import build_report
from usbtrace.report.plots import plot_specs, render
from usbtrace.report.size_table import size_rows
from usbtrace.report.timeline import render_timeline

PRESETS = ("conv_50", "conv_300", "dense_300", "dense_300_usb2")


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<34} {time.perf_counter() - t0:8.3f} s")
    return out


def draw_plots(rows, folder: Path) -> list:
    """What `usbtrace plot` draws, without its output checks."""
    folder.mkdir(parents=True, exist_ok=True)
    return [render(spec, folder / f"{spec.name}.png") for spec in plot_specs(rows)]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = []
        for name in PRESETS:
            path = root / f"{name}.pcapng"
            write_session(getattr(presets, name)(), path)
            files.append(path)
        size = sum(f.stat().st_size for f in files)
        print(f"{len(files)} synthetic captures, {size / 1e6:.2f} MB")
        summaries = timed(
            "summarize (decode + metrics)", lambda: [s for f in files for s in summarize_file(f)]
        )
        rows = timed("size table rows", lambda: size_rows(summaries))
        timed("plots (PNG, incl. matplotlib import)", lambda: draw_plots(rows, root / "plots"))
        timed("plots (PNG, warm)", lambda: draw_plots(rows, root / "plots2"))
        tl = timed("timeline data (conv_300)", lambda: timeline_file(files[1], None, None))
        timed("timeline PNG", lambda: render_timeline(tl, root / "tl.png"))
        page = timed("HTML report", lambda: build_report(summaries))
        print(f"HTML report size                   {len(page) / 1e6:8.3f} MB")


if __name__ == "__main__":
    main()
