"""``usbtrace summarize FILES...``: per capture, where the bytes and the time of each request go."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from usbtrace.analysis.summary import CaptureSummary
from usbtrace.cli.batch import add_input_arguments, analyse_inputs
from usbtrace.cli.flags import FormatOrLegacyPath, add_output_file
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError, printable
from usbtrace.report.findings_text import print_findings
from usbtrace.report.jsonout import CapturesJson, write_captures_json
from usbtrace.report.summary_table import print_summary_table, sort_key, write_csv
from usbtrace.report.table import terminal_width

DESCRIPTION = """\
Analyse usbmon captures of a Coral Edge TPU. Each request on the device (closed by a completion
event) is split into instructions, input, parameters (cached by a parameter-caching request,
streamed by an inference) and output, with its latency, the overlap of parameter streaming with
execution, and a verdict: link-bound, device-bound or host-bound (whichever of the link, the
device or the host takes the largest share of the latency), then the findings that cost each
capture the most time. One row per capture (per Edge TPU), ordered by model family and
size. Exit status: 0 all files analysed, 1 some failed (the rest are still reported), 2 usage
error or no valid input."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summarize",
        help="per-capture table: bytes per phase, latency, streaming overlap, verdict",
        description=DESCRIPTION,
    )
    add_input_arguments(p)
    p.add_argument("--per-inference", action="store_true", help="add one row per request")
    p.add_argument("--json", action="store_true", help="print the JSON document (see README)")
    p.add_argument(
        "--csv",
        action=FormatOrLegacyPath,
        use="--csv -o FILE",
        metavar="PATH",
        help="print CSV instead: one row per capture (row=capture, medians) and per request "
        "(--csv PATH, writing it to PATH as well, is deprecated: use --csv -o PATH)",
    )
    add_output_file(p, "write the table, JSON or CSV to FILE instead of standard output")
    p.add_argument(
        "--by-size",
        action="store_true",
        help="one row per model family, size and label: compiled and streamed MiB, median "
        "latency, speed-up over the CPU, operations and ops/s (with --json/--csv: that table)",
    )
    p.add_argument(
        "--model",
        metavar="FILE|NAME",
        help="compiled *_edgetpu.tflite (or catalog name) to reconcile every request's bytes "
        "with; default: the model named in the capture's metadata, when it is at hand",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # --csv PATH (deprecated) writes CSV beside the usual output; --csv alone is the format
    legacy_csv = args.csv if isinstance(args.csv, str) else None
    as_csv = args.csv is True
    if as_csv and args.json:
        raise UsageError("choose one format: --json or --csv")
    guard = OutputGuard(args.files)
    for path in (legacy_csv, args.output):
        if path is not None:
            guard.check_file(path)  # refused now, not after the analysis
    if args.json and not args.by_size and legacy_csv is None:
        return _stream_json(args, guard)
    summaries, failures = analyse_inputs(args.files, args.device, args.model, args.jobs)
    order(summaries)
    if legacy_csv is not None and summaries:
        with guard.open(legacy_csv, newline="") as stream:
            if args.by_size:
                from usbtrace.report.size_table import size_rows, write_size_csv

                write_size_csv(size_rows(summaries), stream)
            else:
                write_csv(summaries, stream)
    # an empty JSON or CSV document goes to standard output (a pipeline reads valid input),
    # but never replaces a file the user has: -o is written only when something was analysed
    if summaries or ((args.json or as_csv) and args.output is None):
        with contextlib.ExitStack() as stack:
            out = sys.stdout
            if args.output is not None:
                out = stack.enter_context(guard.open(args.output, newline=""))
            _emit(args, summaries, as_csv, out)
    if not summaries:
        return 2
    return 1 if failures else 0


def order(summaries: list[CaptureSummary]) -> None:
    """By model family and size, file and device (``sort_key``); the captures of one file, the
    lead first (its requests are written as they finish: ``CaptureSummary.lead``)."""
    summaries.sort(key=sort_key)
    if len({s.file for s in summaries}) == 1:
        summaries.sort(key=lambda s: not s.lead)


class _NothingAnalysed(Exception):
    """Leaves ``guard.open``'s block so the file being written is dropped, not put in place."""


def _stream_json(args: argparse.Namespace, guard: OutputGuard) -> int:
    """``--json``: the lead capture's requests written as they finish, the rest at the end."""
    try:
        with contextlib.ExitStack() as stack:
            out = sys.stdout
            if args.output is not None:
                out = stack.enter_context(guard.open(args.output, newline=""))
            doc = CapturesJson(out)
            summaries, failures = analyse_inputs(
                args.files, args.device, args.model, args.jobs, on_lead=doc.requests
            )
            order(summaries)
            doc.finish(summaries)
            if not summaries and args.output is not None:
                # an empty document must not replace the file at -o (see ``run``)
                raise _NothingAnalysed
    except _NothingAnalysed:
        pass
    if not summaries:
        return 2
    return 1 if failures else 0


def _emit(
    args: argparse.Namespace, summaries: list[CaptureSummary], as_csv: bool, out: TextIO
) -> None:
    if args.by_size:
        # imported here: the size table reads compiled models, which a plain summary never does
        from usbtrace.report.size_table import emit_by_size, size_rows, write_size_csv

        if as_csv:
            write_size_csv(size_rows(summaries), out)
        else:
            emit_by_size(summaries, as_json=args.json, stream=out)
    elif as_csv:
        write_csv(summaries, out)
    elif args.json:
        write_captures_json(summaries, out)
    else:
        print_summary_table(summaries, per_request=args.per_inference, stream=out)
        print_findings(summaries, out, terminal_width(out))
        for s in summaries:
            for p in s.integrity.problems:
                print(f"usbtrace: {printable(f'{s.file} ({s.device}): {p}')}", file=sys.stderr)
