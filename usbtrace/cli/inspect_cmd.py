"""``usbtrace inspect FILE``: every logical transfer, event, output and CSR access in time order.

Rows are printed as the capture is read (``usbtrace.pipeline.inspect``), so the first ones
appear at once and ``| head`` stops the reading. The plain table's columns therefore have
fixed minimum widths rather than the widths of the longest cell of the whole capture.
"""

from __future__ import annotations

import argparse
import errno
import select
import sys
import textwrap
import warnings
from collections.abc import Iterator
from itertools import accumulate

from usbtrace.cli.progress import bytes_read_bar, file_size
from usbtrace.edgetpu.trace import EdgeTpuTrace
from usbtrace.errors import printable
from usbtrace.pipeline import inspect
from usbtrace.report.inspect_view import InspectRows, device_heading, json_lines, rates
from usbtrace.report.jsonout import write_encoded
from usbtrace.report.table import Column, fmt_bytes, fmt_rate, terminal_width
from usbtrace.usb.link import link_ceiling_Bps

COLUMNS = (
    Column("time s", "right", priority=90),
    Column("frame", "right", priority=40),
    Column("dir", priority=60),
    Column("ep", priority=70),
    Column("kind", priority=100),
    Column("bytes", "right", priority=95),
    Column("duration", "right", priority=80),
    Column("MB/s", "right", priority=75),
    Column("note", priority=50),
)
# minimum widths of the streamed table (a longer cell widens its column from there on)
WIDTHS = [10, 7, 3, 4, 40, 10, 11, 7, 0]
KIND = 4
# on a terminal: what the kind column needs at least (most kinds are shorter; a longer one is
# cut, as the tables cut cells) and what a note takes; columns of the lowest priority are left
# out until a row fits the width (rows of the plain pipe layout are over 100 columns)
TERMINAL_KIND, TERMINAL_NOTE = 30, 12


def terminal_layout(width: int) -> tuple[list[int], int]:
    """The columns a ``width``-column terminal shows, and the width of the kind column."""
    need = [max(len(c.title), w) for c, w in zip(COLUMNS, WIDTHS)]
    need[KIND], need[-1] = TERMINAL_KIND, TERMINAL_NOTE
    keep = list(range(len(COLUMNS)))

    def total() -> int:
        return sum(need[i] for i in keep) + 2 * (len(keep) - 1)

    while total() > width and len(keep) > 1:
        keep.remove(min((i for i in keep if i != KIND), key=lambda i: COLUMNS[i].priority))
    return keep, need[KIND] + max(width - total(), 0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="list logical transfers, events, outputs and CSR accesses of a capture",
        description=(
            "Decode one capture (any format summarize reads; - reads standard input) and "
            "print, in "
            "time order, one line per Edge TPU logical bulk-OUT transfer (tag, length), "
            "completion event, output, interrupt, CSR read/write and firmware-download block. "
            "Times are seconds from the first record of the capture. Lines are printed as "
            "the capture is read."
        ),
    )
    p.add_argument("file", help="capture file, or - for standard input")
    p.add_argument("--device", metavar="BUS.ADDR", help="decode this device (default: find it)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=run)


class _Table:
    """The plain table, written a block of rows at a time, a heading per device."""

    def __init__(self, path: str, width: int | None = None) -> None:
        """``width``: a terminal's, which the rows are fitted to; None (a pipe, a file): every
        column, whole."""
        self.path = path
        self.width = width
        self.device: str | None = None
        self.widths = list(WIDTHS)
        self.keep = list(range(len(COLUMNS)))
        self.kind_width: int | None = None
        if width is not None:
            self.keep, self.kind_width = terminal_layout(width)
            self.widths[KIND] = self.kind_width
        self.columns = [COLUMNS[i] for i in self.keep]

    def __call__(self, trace: EdgeTpuTrace, rows: InspectRows, t0: int) -> None:
        out = sys.stdout
        if trace.name != self.device:
            self.device = trace.name
            heading = f"# {device_heading(self.path, trace)}"
            if self.width is not None:
                heading = textwrap.fill(heading, self.width, subsequent_indent="#   ")
            out.write(heading + "\n")
            if len(self.keep) < len(COLUMNS):
                left_out = ", ".join(c.title for c in COLUMNS if c not in self.columns)
                out.write(f"(too narrow for: {left_out}; widen the terminal or pipe it)\n")
            out.write(self._line([c.title for c in self.columns]) + "\n")
        rows = rows.in_storage_order()
        cells = [
            [f"{(t - t0) / 1e9:.6f}" for t in rows.t_ns.tolist()],
            [str(f) for f in rows.frame.tolist()],
            rows.direction,
            [f"{e:#04x}" for e in rows.endpoint],
            rows.kind,
            [fmt_bytes(n) for n in rows.nbytes],
            ["-" if d is None else f"{d / 1e6:.3f} ms" for d in rows.duration_ns],
            [fmt_rate(r) for r in rates(rows, link_ceiling_Bps(trace.link_speed))],
            rows.note,
        ]
        if self.kind_width is not None:
            w = self.kind_width
            cells[KIND] = [k if len(k) <= w else k[: w - 1] + "…" for k in cells[KIND]]
        cells = [cells[i] for i in self.keep]
        out.write("".join(line + "\n" for line in self._lines(cells)))
        out.flush()

    def _line(self, cells: list[str]) -> str:
        return next(self._lines([[c] for c in cells]))

    def _lines(self, columns: list[list[str]]) -> Iterator[str]:
        """Lines of cells given a column at a time; a column widens from the row whose cell
        is longer than any before it, and stays that wide."""
        padded = []
        for i, c, cells in zip(self.keep, self.columns, columns):
            widths = list(accumulate(map(len, cells), max, initial=self.widths[i]))
            self.widths[i] = widths[-1]
            pad = str.rjust if c.align == "right" else str.ljust
            padded.append(map(pad, cells, widths[1:]))
        return ("  ".join(parts).rstrip() for parts in zip(*padded))


def _stop_if_unread() -> None:
    """Raise ``BrokenPipeError`` when nobody reads the rows any more (``| head`` has exited).

    A write finds that out, but with a live source gone quiet there is nothing to write, and
    inspect would wait for the source to say something, perhaps for ever. Asked while the
    source is quiet: the write end of a pipe whose reader has gone polls as an error.
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return  # not a real file (a test's StringIO)
    if not hasattr(select, "poll"):
        return  # Windows: found out at the next write, as before
    poller = select.poll()
    poller.register(fd, 0)  # errors and hang-ups are reported whatever the mask asks for
    if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0)):
        raise BrokenPipeError(errno.EPIPE, "the rows' reader has gone")


def run(args: argparse.Namespace) -> int:
    table = _Table(args.file, terminal_width())

    def emit(trace: EdgeTpuTrace, rows: InspectRows, t0: int) -> None:
        if args.json:
            write_encoded(json_lines(rows, trace.name, link_ceiling_Bps(trace.link_speed)))
        else:
            table(trace, rows, t0)

    # a bar on stderr when it is a terminal and the rows go elsewhere (``inspect > rows.txt``):
    # on the terminal the rows themselves show the progress, and a bar would be drawn over them
    show = sys.stderr.isatty() and not sys.stdout.isatty()
    total = file_size(args.file) or None
    with (
        warnings.catch_warnings(record=True) as caught,
        bytes_read_bar(total, show=show) as progress,
    ):
        warnings.simplefilter("always")
        decoded = inspect(args.file, args.device, emit, progress, _stop_if_unread)
    for w in caught:
        print(f"usbtrace: warning: {printable(str(w.message))}", file=sys.stderr)
    if decoded.error is not None:
        print(f"usbtrace: {printable(args.file)}: {decoded.problems[0]}", file=sys.stderr)
    if not decoded.devices:
        others = ", ".join(f"{b}.{a}" for b, a, _ in decoded.other_devices) or "none"
        print(
            f"usbtrace: {printable(args.file)}: no Edge TPU found (devices seen: {others}); "
            "name one with --device BUS.ADDR",
            file=sys.stderr,
        )
        return 1
    for trace in decoded.devices:
        for p in trace.problems:
            print(f"usbtrace: {printable(args.file)}: {trace.name}: {p}", file=sys.stderr)
    return 0
