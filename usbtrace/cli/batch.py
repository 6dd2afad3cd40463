"""Analysing many captures for a command: the shared options, serial or parallel, one progress bar.

``summarize``, ``export``, ``plot`` and ``report`` all take capture files (or folders) and
``--device``; those that can run long take ``--jobs`` too.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from usbtrace.analysis.summary import CaptureSummary, metadata_note
from usbtrace.cli.inputs import expand_inputs
from usbtrace.cli.progress import bytes_read_bar, file_size
from usbtrace.errors import InputError, UsageError, printable
from usbtrace.pipeline import LeadSink, Progress, summarize_file


def add_input_arguments(p: argparse.ArgumentParser, *, jobs: bool = True) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="captures or folders of captures")
    p.add_argument("--device", metavar="BUS.ADDR", help="analyse this device only")
    if jobs:
        p.add_argument(
            "--jobs",
            type=jobs_count,
            default=os.cpu_count() or 1,
            metavar="N",
            help="analyse files in N parallel processes (default: the number of cores); "
            "the output is identical to --jobs 1",
        )


def jobs_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs takes a positive number (got {text!r})")
    return n


def _summarize_one(
    f: Path,
    device: str | None,
    model: str | None,
    progress: Progress | None = None,
    on_lead: LeadSink | None = None,
) -> tuple[list[CaptureSummary], str | None]:
    """One file's summaries, or its failure message: what a worker process sends back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cut file is reported in its integrity
        try:
            found = summarize_file(f, device, model, progress=progress, on_lead=on_lead)
        except InputError as exc:
            return [], str(exc)
    if not found:
        return [], f"{f}: no Edge TPU traffic found (try --device BUS.ADDR)"
    return found, None


def _results(
    files: list[Path],
    device: str | None,
    model: str | None,
    jobs: int,
    progress: Callable[[Path], Progress] | None = None,
    on_lead: LeadSink | None = None,
) -> Iterator[tuple[list[CaptureSummary], str | None]]:
    """Per file, in input order whatever ``jobs`` is, so parallel output equals serial output.
    ``progress`` gives, per file, what to call with the bytes read so far (serial only);
    ``on_lead`` is told of the requests of a single file as they finish."""
    jobs = min(jobs, len(files))
    if jobs <= 1:
        lead = on_lead if len(files) == 1 else None
        yield from (
            _summarize_one(f, device, model, progress(f) if progress else None, lead) for f in files
        )
        return
    # Each worker opens one capture at a time and closes it, so thousands of files need no more
    # file handles than a serial run; small chunks keep the progress bar moving.
    chunk = max(1, min(16, len(files) // (jobs * 8)))
    n = len(files)
    # imported here: multiprocessing's import is a tenth of a plain summary's start
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_summarize_one, files, [device] * n, [model] * n, chunksize=chunk)


def analyse(
    files: list[Path],
    device: str | None,
    model: str | None = None,
    jobs: int = 1,
    on_lead: LeadSink | None = None,
) -> tuple[list[CaptureSummary], list[str]]:
    summaries: list[CaptureSummary] = []
    failures: list[str] = []
    sizes = [file_size(f) for f in files]
    done = 0  # bytes of the files finished
    total = sum(sizes) if all(sizes) else None  # a pipe or FIFO has no size
    with bytes_read_bar(total, show=sys.stderr.isatty()) as update:
        per_file = None
        if update is not None:
            shown = update

            def per_file(f: Path) -> Progress:
                return lambda read: shown(done + read)

        results = _results(files, device, model, jobs, per_file, on_lead)
        for size, (found, failure) in zip(sizes, results):
            if failure is not None:
                failures.append(failure)
            if found and found[0].metadata is not None and found[0].metadata.problems:
                # untrusted metadata: what was dropped, once per file (also in its integrity)
                note = f"{found[0].file}: {metadata_note(found[0].metadata)}"
                print(f"usbtrace: {printable(note)}", file=sys.stderr)
            summaries.extend(found)
            done += size
            if update is not None:
                update(done)
    return summaries, failures


def analyse_inputs(
    inputs: list[str],
    device: str | None,
    model: str | None = None,
    jobs: int = 1,
    on_lead: LeadSink | None = None,
) -> tuple[list[CaptureSummary], list[str]]:
    """The command-line inputs (files or folders) analysed; what failed, printed on stderr.

    ``on_lead`` is told of the lead Edge TPU's requests as they finish when there is one
    capture file (``pipeline.summarize_file``). Raises UsageError when no input names a
    capture at all.
    """
    files, missing = expand_inputs(inputs)
    if not files:
        raise UsageError("; ".join(missing) or "no input files")
    summaries, failures = analyse(files, device, model, jobs, on_lead)
    failures = missing + failures
    for f in failures:
        print(f"usbtrace: {printable(f)}", file=sys.stderr)
    return summaries, failures
