"""``usbtrace timeline FILE [--request K] -o OUT.png|.svg``: one request's URBs as lanes."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from usbtrace.cli.flags import add_output_file
from usbtrace.cli.inputs import require_input
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError

DESCRIPTION = """\
Draw one request of a capture as lanes of in-flight intervals: host invoke, instructions, input,
parameters (each bulk-OUT URB from submit to completion), output reads and the completion event,
with bytes and rates annotated and the execution window shaded, so streaming that overlaps
execution is visible at a glance. Requests are numbered as in `usbtrace summarize
--per-inference`; the default is the first inference that streams parameters, else the second
inference. The image format follows OUT's suffix (.png or .svg). An existing OUT is not
overwritten unless --force is given; a capture or the input never is."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "timeline",
        help="one request's URBs as lanes over time (PNG or SVG)",
        description=DESCRIPTION,
    )
    p.add_argument("file", metavar="FILE", help="a capture")
    add_output_file(p, "image to write (.png or .svg; required)", metavar="OUT", old="--out")
    p.add_argument("--request", type=int, metavar="K", help="request number (see summarize)")
    p.add_argument("--device", metavar="BUS.ADDR", help="the Edge TPU, when there are several")
    p.add_argument("--json", action="store_true", help="also print the lanes as JSON")
    p.add_argument(
        "--force", action="store_true", help="overwrite OUT if it exists (never a capture)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from usbtrace.pipeline import timeline_file
    from usbtrace.report.timeline import render_timeline

    if args.output is None:
        raise UsageError("timeline needs -o/--output OUT.png (or .svg)")
    out = Path(args.output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise UsageError(f"{out}: the image must end in .png or .svg")
    guard = OutputGuard([args.file], force=args.force)
    guard.check_file(out, replace=False)  # refused now, not after the analysis
    require_input(args.file)
    tl = timeline_file(args.file, args.request, args.device)
    guard.write(out, functools.partial(render_timeline, tl, fmt=fmt), replace=False)
    if args.json:
        json.dump(tl.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(out)
    return 0
