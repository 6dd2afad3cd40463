"""``usbtrace report INPUTS -o report.html``: one self-contained page with tables and graphs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from usbtrace.cli.batch import add_input_arguments
from usbtrace.cli.inputs import CAPTURE_SUFFIXES
from usbtrace.cli.plot_cmd import load_summaries
from usbtrace.errors import UsageError

DESCRIPTION = """\
Write one HTML page (no external files: images are embedded) with the model-size table of
`summarize --by-size`, the graphs of `usbtrace plot`, a timeline of the largest model of each
family and label (see `usbtrace timeline`), and the integrity of every capture. An existing
OUT is not overwritten unless --force is given; a capture is never overwritten."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: size table, plots, timelines, integrity",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(p, jobs=False)
    p.add_argument("-o", "--out", required=True, metavar="OUT.html", help="page to write")
    p.add_argument("--title", default="usbtrace report", help="page title")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from usbtrace.report.html_report import build_report

    out = Path(args.out)
    if out.suffix.lower() in CAPTURE_SUFFIXES:
        raise UsageError(f"{out}: looks like a capture; the report must be a .html file")
    if out.exists() and not args.force:
        raise UsageError(f"{out}: exists (use --force to overwrite)")
    summaries, failed = load_summaries(args.files, args.device)
    page = build_report(summaries, title=args.title)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a page
    print(out)
    return 1 if failed else 0
