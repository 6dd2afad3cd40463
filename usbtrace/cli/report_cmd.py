"""``usbtrace report INPUTS -o report.html``: one self-contained page with tables and graphs."""

from __future__ import annotations

import argparse

from usbtrace.cli.batch import add_input_arguments
from usbtrace.cli.flags import add_output_file
from usbtrace.cli.outputs import OutputGuard
from usbtrace.cli.plot_cmd import load_summaries
from usbtrace.errors import UsageError

DESCRIPTION = """\
Write one HTML page (no external files: images are embedded) with the model-size table of
`summarize --by-size`, the graphs of `usbtrace plot`, a timeline of the largest model of each
family and label (see `usbtrace timeline`), and the integrity of every capture. An existing
file is not overwritten unless --force is given; a capture (judged by its content, whatever its
name) and an input are never overwritten, even with --force."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: size table, plots, timelines, integrity",
        description=DESCRIPTION,
    )
    add_input_arguments(p, jobs=False)
    add_output_file(p, "page to write (required)", metavar="OUT.html", old="--out")
    p.add_argument("--title", default="usbtrace report", help="page title (usbtrace report)")
    p.add_argument(
        "--force", action="store_true", help="overwrite OUT if it exists (never a capture)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from usbtrace.report.html_report import build_report

    if args.output is None:
        raise UsageError("report needs -o/--output OUT.html")
    guard = OutputGuard(args.files, force=args.force)
    guard.check_file(args.output, replace=False)  # refused now, not after the analysis
    summaries, failed = load_summaries(args.files, args.device)
    page = build_report(summaries, title=args.title)
    with guard.open(args.output, replace=False) as stream:
        stream.write(page)
    print(args.output)
    return 1 if failed else 0
