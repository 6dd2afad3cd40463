"""``usbtrace export FILES... --parquet DIR | --csv DIR``: summaries as tables for other engines."""

from __future__ import annotations

import argparse
import sys

from usbtrace.cli.batch import add_input_arguments, analyse_inputs
from usbtrace.errors import UsageError
from usbtrace.report.export import write_csv_tables, write_parquet_tables
from usbtrace.report.summary_table import sort_key

DESCRIPTION = """\
Analyse captures like `summarize` and write two tables into a folder: requests (one row per
request: kind, times, bytes per phase, overlap, stream rate, verdict) and captures (one row per
capture and Edge TPU: medians, verdict, integrity). With --parquet they are requests.parquet and
captures.parquet (needs pyarrow: pip install 'usbtrace[parquet]'); with --csv, requests.csv and
captures.csv. Export each host's captures into its own folder (e.g. fleet/host=a/) and query the
lot at once, e.g. in DuckDB:
  SELECT model, median(latency_s) FROM read_parquet('fleet/*/requests.parquet',
      hive_partitioning=true) WHERE kind = 'inference' GROUP BY model;
The folder is created if missing; tables in it are replaced, anything else is left alone.
Exit status: 0 all files analysed, 1 some failed (the rest are exported), 2 usage error or no
valid input."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write per-request and per-capture tables as Parquet or CSV",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(p)
    p.add_argument("--parquet", metavar="DIR", help="write requests.parquet and captures.parquet")
    p.add_argument("--csv", metavar="DIR", help="write requests.csv and captures.csv")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.parquet and not args.csv:
        raise UsageError("export needs --parquet DIR or --csv DIR")
    if args.parquet:
        # fail before the (maybe long) analysis, not after it
        from usbtrace.report.export import have_pyarrow

        if not have_pyarrow():
            raise UsageError(
                "--parquet needs pyarrow: pip install 'usbtrace[parquet]' (or use --csv)"
            )
    summaries, failures = analyse_inputs(args.files, args.device, None, args.jobs)
    summaries.sort(key=sort_key)
    if not summaries:
        return 2
    written = []
    if args.parquet:
        written += write_parquet_tables(summaries, args.parquet)
    if args.csv:
        written += write_csv_tables(summaries, args.csv)
    rows = sum(len(s.requests) for s in summaries)
    print(
        f"usbtrace: exported {len(summaries)} capture(s), {rows} request(s): "
        + ", ".join(map(str, written)),
        file=sys.stderr,
    )
    return 1 if failures else 0
