"""``usbtrace export FILES... --parquet|--csv --out-dir DIR``: tables for other engines."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from usbtrace.cli.batch import add_input_arguments, analyse_inputs
from usbtrace.cli.flags import FormatOrLegacyPath, add_out_dir
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError, printable
from usbtrace.report.export import TABLE_NAMES, tables, write_csv_table, write_parquet_table
from usbtrace.report.summary_table import sort_key

DESCRIPTION = """\
Analyse captures like `summarize` and write two tables into the folder --out-dir: requests (one
row per request: kind, times, bytes per phase, overlap, stream rate, verdict) and captures (one
row per capture and Edge TPU: medians, verdict, integrity). With --parquet they are
requests.parquet and captures.parquet (needs pyarrow: pip install 'usbtrace[parquet]'); with
--csv, requests.csv and captures.csv; both flags write both. Export each host's captures into its
own folder (e.g. fleet/host=a/) and query the lot at once, e.g. in DuckDB:
  SELECT model, median(latency_s) FROM read_parquet('fleet/*/requests.parquet',
      hive_partitioning=true) WHERE kind = 'inference' GROUP BY model;
The folder is created if missing; the tables in it are replaced atomically, anything else is left
alone. Exit status: 0 all files analysed, 1 some failed (the rest are exported), 2 usage error or
no valid input."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write per-request and per-capture tables as Parquet or CSV",
        description=DESCRIPTION,
    )
    add_input_arguments(p)
    p.add_argument(
        "--parquet",
        action=FormatOrLegacyPath,
        use="--parquet --out-dir DIR",
        metavar="DIR",
        help="write requests.parquet and captures.parquet "
        "(--parquet DIR is deprecated: use --parquet --out-dir DIR)",
    )
    p.add_argument(
        "--csv",
        action=FormatOrLegacyPath,
        use="--csv --out-dir DIR",
        metavar="DIR",
        help="write requests.csv and captures.csv "
        "(--csv DIR is deprecated: use --csv --out-dir DIR)",
    )
    add_out_dir(p, "folder for the tables (created if missing)")
    p.set_defaults(func=run)


def _folder(flag: str | bool | None, out_dir: Path | None, name: str) -> Path | None:
    """Where one format's tables go: the old ``--csv DIR`` spelling, else --out-dir."""
    if not flag:
        return None
    if isinstance(flag, str):
        return Path(flag)
    if out_dir is None:
        raise UsageError(f"--{name} needs --out-dir DIR (the folder for the tables)")
    return out_dir


def run(args: argparse.Namespace) -> int:
    if not args.parquet and not args.csv:
        raise UsageError("export needs --parquet and/or --csv, and --out-dir DIR")
    parquet_dir = _folder(args.parquet, args.out_dir, "parquet")
    csv_dir = _folder(args.csv, args.out_dir, "csv")
    if parquet_dir is not None:
        # fail before the (maybe long) analysis, not after it
        from usbtrace.report.export import have_pyarrow

        if not have_pyarrow():
            raise UsageError(
                "--parquet needs pyarrow: pip install 'usbtrace[parquet]' (or use --csv)"
            )
    guard = OutputGuard(args.files)
    targets = [(d, fmt) for d, fmt in ((parquet_dir, "parquet"), (csv_dir, "csv")) if d]
    for folder, fmt in targets:  # refused now, not after the analysis
        out = guard.folder(folder)
        for name in TABLE_NAMES:
            guard.check_file(out / f"{name}.{fmt}")
    summaries, failures = analyse_inputs(args.files, args.device, None, args.jobs)
    summaries.sort(key=sort_key)
    if not summaries:
        return 2
    written = []
    for folder, fmt in targets:
        for table in tables(summaries):
            path = Path(folder) / f"{table.name}.{fmt}"
            if fmt == "csv":
                with guard.open(path, newline="") as stream:
                    write_csv_table(table, stream)
            else:
                guard.write(path, functools.partial(write_parquet_table, table))
            written.append(path)
    rows = sum(len(s.requests) for s in summaries)
    print(
        f"usbtrace: exported {len(summaries)} capture(s), {rows} request(s): "
        + printable(", ".join(map(str, written))),
        file=sys.stderr,
    )
    return 1 if failures else 0
