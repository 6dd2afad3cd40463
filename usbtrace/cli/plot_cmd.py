"""``usbtrace plot INPUTS --out-dir DIR``: graphs across model sizes (latency, bytes, TOPS…)."""

from __future__ import annotations

import argparse
import functools
import json
import sys

from usbtrace.analysis.summary import CaptureSummary
from usbtrace.cli.batch import add_input_arguments, analyse_inputs
from usbtrace.cli.flags import add_out_dir
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError

DESCRIPTION = """\
Draw the model-size graphs of a sweep (matplotlib; no display needed). Captures are grouped as in
`usbtrace summarize --by-size` (family, size, label), and for each family these files are written
into --out-dir DIR: FAMILY-latency (median latency vs size, one line per label such as usb2/usb3),
FAMILY-streamed (parameters streamed per inference and cached once, with the on-chip cache size
and the size where streaming begins marked), FAMILY-overlap, FAMILY-stream-rate, FAMILY-ops
(TOPS reached) and, when a CPU baseline was captured, FAMILY-speedup. --json prints the data
behind every graph instead of only the file names."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="graphs across model sizes: latency, streamed bytes, overlap, rate, TOPS",
        description=DESCRIPTION,
    )
    add_input_arguments(p, jobs=False)
    add_out_dir(p, "folder for the images (created if missing)", old=("-o", "--out"))
    p.add_argument("--format", choices=("png", "svg"), default="png", help="image format (png)")
    p.add_argument("--json", action="store_true", help="print the plotted data as JSON")
    p.set_defaults(func=run)


def load_summaries(inputs: list[str], device: str | None) -> tuple[list[CaptureSummary], int]:
    """Summaries of every capture named; failures reported on stderr. (summaries, failures)."""
    summaries, failures = analyse_inputs(inputs, device)
    if not summaries:
        raise UsageError("no Edge TPU capture could be analysed")
    return summaries, len(failures)


def run(args: argparse.Namespace) -> int:
    from usbtrace.report.plots import plot_specs, pyplot, render
    from usbtrace.report.size_table import size_rows

    if args.out_dir is None:
        raise UsageError("plot needs --out-dir DIR (the folder for the images)")
    pyplot()  # no matplotlib: say so before the analysis
    guard = OutputGuard(args.files)
    out = guard.folder(args.out_dir)
    summaries, failed = load_summaries(args.files, args.device)
    rows = size_rows(summaries)
    specs = plot_specs(rows)
    if not specs:
        raise UsageError("no capture names a model with a size (e.g. conv_50): nothing to plot")
    written = [
        guard.write(
            out / f"{spec.name}.{args.format}", functools.partial(render, spec, fmt=args.format)
        )
        for spec in specs
    ]
    if args.json:
        json.dump({"plots": [s.to_json() for s in specs]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for path in written:
            print(path)
    return 1 if failed else 0
