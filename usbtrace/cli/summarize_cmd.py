"""``usbtrace summarize FILES...``: per capture, where the bytes and the time of each request go."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from usbtrace.analysis.summary import CaptureSummary, summarize_file
from usbtrace.cli.inputs import expand_inputs
from usbtrace.errors import InputError, UsageError
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
    p.add_argument("files", nargs="+", metavar="FILE", help="captures or folders of captures")
    p.add_argument("--per-inference", action="store_true", help="add one row per request")
    p.add_argument("--json", action="store_true", help="print the JSON document (see README)")
    p.add_argument("--csv", metavar="PATH", help="also write per-request rows as CSV")
    p.add_argument("--device", metavar="BUS.ADDR", help="analyse this device only")
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
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=os.cpu_count() or 1,
        metavar="N",
        help="analyse files in N parallel processes (default: the number of cores); "
        "the output is identical to --jobs 1",
    )
    p.set_defaults(func=run)


def _progress(files: list[Path]):
    """A rich progress bar on stderr for long inputs; None when it would only be noise."""
    if not sys.stderr.isatty():
        return None
    total = sum(f.stat().st_size for f in files if f.is_file())
    if len(files) < 4 and total < 200 << 20:
        return None
    from rich.progress import Progress

    return Progress(transient=True, console=None)


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs takes a positive number (got {text!r})")
    return n


def _summarize_one(
    f: Path, device: str | None, model: str | None
) -> tuple[list[CaptureSummary], str | None]:
    """One file's summaries, or its failure message: what a worker process sends back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cut file is reported in its integrity
        try:
            found = summarize_file(f, device, model)
        except InputError as exc:
            return [], str(exc)
    if not found:
        return [], f"{f}: no Edge TPU traffic found (try --device BUS.ADDR)"
    return found, None


def _results(
    files: list[Path], device: str | None, model: str | None, jobs: int
) -> Iterator[tuple[list[CaptureSummary], str | None]]:
    """Per file, in input order whatever ``jobs`` is, so parallel output equals serial output."""
    jobs = min(jobs, len(files))
    if jobs <= 1:
        yield from (_summarize_one(f, device, model) for f in files)
        return
    # Each worker opens one capture at a time and closes it, so thousands of files need no more
    # file handles than a serial run; small chunks keep the progress bar moving.
    chunk = max(1, min(16, len(files) // (jobs * 8)))
    n = len(files)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_summarize_one, files, [device] * n, [model] * n, chunksize=chunk)


def analyse(
    files: list[Path], device: str | None, model: str | None = None, jobs: int = 1
) -> tuple[list[CaptureSummary], list[str]]:
    summaries: list[CaptureSummary] = []
    failures: list[str] = []
    progress = _progress(files)
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task("summarizing", total=len(files))
    try:
        for found, failure in _results(files, device, model, jobs):
            if failure is not None:
                failures.append(failure)
            summaries.extend(found)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    return summaries, failures


def run(args: argparse.Namespace) -> int:
    files, missing = expand_inputs(args.files)
    if not files:
        raise UsageError("; ".join(missing) or "no input files")
    summaries, failures = analyse(files, args.device, args.model, args.jobs)
    failures = missing + failures
    summaries.sort(key=sort_key)
    for f in failures:
        print(f"usbtrace: {f}", file=sys.stderr)
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
