"""``usbtrace diff A B``: two runs of the same model, metric by metric, regressions flagged."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings

from usbtrace.cli.inputs import require_input
from usbtrace.errors import UsageError, printable
from usbtrace.report.diff import DEFAULT_THRESHOLD, OVERLAP_TOLERANCE
from usbtrace.report.table import terminal_width

DESCRIPTION = f"""\
Compare capture B against baseline A (two runs of the same model): bytes per inference by phase
and the cache fill (any difference: changed), median and p90 latency and the parameter stream
rate (more than --threshold worse: regression, better: improvement), overlap (more than
{OVERLAP_TOLERANCE} apart: changed), verdict, and integrity problems new in B (regression).
Exit status: 0 no regression, 1 at least one regression, 2 usage or input error."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two runs of a model: bytes, latency, overlap, verdict; flags regressions",
        description=DESCRIPTION,
    )
    p.add_argument("a", metavar="A", help="baseline capture")
    p.add_argument("b", metavar="B", help="capture to compare with A")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="F",
        help=f"relative change counted as a regression (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--device", metavar="BUS.ADDR", help="the Edge TPU, in both files")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from usbtrace.pipeline import summarize_file
    from usbtrace.report.diff import diff_captures, pick, print_diff, summary_line

    if not 0 <= args.threshold < 10:
        raise UsageError(f"--threshold {args.threshold}: give a fraction such as 0.05")
    sides = []
    for path in (args.a, args.b):
        require_input(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a cut file shows up in its integrity line
            sides.append(pick(summarize_file(path, args.device), path))
    d = diff_captures(sides[0], sides[1], args.threshold)
    for w in d.warnings:
        print(f"usbtrace: warning: {printable(w)}", file=sys.stderr)
    if args.json:
        json.dump(d.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_diff(d)
        width = terminal_width()
        line = summary_line(d)
        print(line if width is None else textwrap.fill(line, width, subsequent_indent="  "))
    return 1 if d.regressions else 0
