"""``usbtrace summarize FILES...``: per capture, where the bytes and the time of each request go."""

from __future__ import annotations

import argparse
import sys

from usbtrace.cli.batch import add_input_arguments, analyse_inputs
from usbtrace.report.jsonout import write_json
from usbtrace.report.size_table import emit_by_size
from usbtrace.report.summary_table import print_summary_table, sort_key, write_csv

DESCRIPTION = """\
Analyse usbmon captures of a Coral Edge TPU. Each request on the device (closed by a completion
event) is split into instructions, input, parameters (cached by a parameter-caching request,
streamed by an inference) and output, with its latency, the overlap of parameter streaming with
execution, and a verdict: usb-bound (streaming at >= 80% of the fastest bulk-OUT rate seen),
compute-paced, or no-streaming. One row per capture (per Edge TPU), ordered by model family and
size. Exit status: 0 all files analysed, 1 some failed (the rest are still reported), 2 usage
error or no valid input."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summarize",
        help="per-capture table: bytes per phase, latency, streaming overlap, verdict",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(p)
    p.add_argument("--per-inference", action="store_true", help="add one row per request")
    p.add_argument("--json", action="store_true", help="print the JSON document (see README)")
    p.add_argument("--csv", metavar="PATH", help="also write per-request rows as CSV")
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
    summaries, failures = analyse_inputs(args.files, args.device, args.model, args.jobs)
    summaries.sort(key=sort_key)
    if args.by_size:
        emit_by_size(summaries, as_json=args.json, csv_path=args.csv, stream=sys.stdout)
        return 2 if not summaries else 1 if failures else 0
    if args.csv:
        with open(args.csv, "w", newline="") as stream:
            write_csv(summaries, stream)
    if args.json:
        write_json({"captures": [s.to_json() for s in summaries]})
    elif summaries:
        print_summary_table(summaries, per_request=args.per_inference)
        for s in summaries:
            for p in s.integrity.problems:
                print(f"usbtrace: {s.file} ({s.device}): {p}", file=sys.stderr)
    if not summaries:
        return 2
    return 1 if failures else 0
