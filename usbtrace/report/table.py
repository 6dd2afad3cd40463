"""One table renderer for every command: rich on a terminal, aligned plain text in a pipe."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from usbtrace.errors import printable


@dataclass(frozen=True)
class Column:
    title: str
    align: str = "left"  # "left" | "right"
    priority: int = 100  # on a narrow terminal, columns of lowest priority are left out first


def _title_lines(title: str) -> list[str]:
    return title.split(" ", 1) if " " in title else [title]


def _fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Indices of the columns to show so that the table fits ``width`` characters."""
    need = [
        max([len(x) for x in _title_lines(c.title)] + [len(r[i]) for r in rows])
        for i, c in enumerate(columns)
    ]
    keep = list(range(len(columns)))
    # one space between columns and one at each edge (box.SIMPLE_HEAD): without the edges a
    # table that fit "exactly" had its widest cell cut with an ellipsis
    while len(keep) > 1 and sum(need[i] for i in keep) + len(keep) + 1 > width:
        keep.remove(min(keep, key=lambda i: (columns[i].priority, -i)))
    return keep


def wants_rich(stream: TextIO | None = None) -> bool:
    """Rich output on a terminal; plain aligned text in a pipe or a file."""
    return (stream or sys.stdout).isatty()


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The width of the terminal ``stream`` writes to ($COLUMNS first, as rich and argparse
    read it), or None for a pipe or a file, whose lines are never wrapped."""
    stream = stream or sys.stdout
    if not wants_rich(stream):
        return None
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


def render_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    stream: TextIO | None = None,
    rich_output: bool | None = None,
) -> None:
    """Print ``rows`` (already formatted strings). ``rich_output`` None = rich only on a tty."""
    stream = stream or sys.stdout
    if rich_output is None:
        rich_output = wants_rich(stream)
    # cells hold file names and metadata labels: never a raw control character on the terminal
    rows = [[printable(cell) for cell in r] for r in rows]
    title = None if title is None else printable(title)
    if rich_output:
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # cells and titles are data (file names, "conv_50 [metadata]"), never markup or emoji
        # codes: rich would drop a bracketed word and turn ":name:" into a picture
        console = Console(file=stream, emoji=False)
        keep = _fit(columns, rows, console.width)
        # no rules between columns and no padding: wide tables must still fit a terminal
        table = Table(
            title=None if title is None else Text(title),
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 0),
        )
        for i in keep:
            c = columns[i]
            table.add_column(
                "\n".join(_title_lines(c.title)),
                justify="right" if c.align == "right" else "left",
                no_wrap=True,
            )
        for r in rows:
            # Text, not str: rich reads "[...]" in a str as markup ("[link=...]" in a label
            # became a terminal hyperlink, an unmatched "[/x]" a MarkupError)
            table.add_row(*(Text(r[i]) for i in keep))
        console.print(table)
        if len(keep) < len(columns):
            left_out = ", ".join(columns[i].title for i in range(len(columns)) if i not in keep)
            console.print(f"[dim](too narrow for: {left_out}; widen the terminal or pipe it)[/]")
        return
    widths = [len(c.title) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(
                cell.rjust(widths[i]) if columns[i].align == "right" else cell.ljust(widths[i])
            )
        return "  ".join(out).rstrip()

    if title:
        stream.write(f"# {title}\n")
    stream.write(line([c.title for c in columns]) + "\n")
    for r in rows:
        stream.write(line(r) + "\n")


def fmt_bytes(n: int | None, compact: bool = False) -> str:
    """Exact bytes with separators, or (``compact``, for narrow terminals) 3 significant digits."""
    if n is None:
        return "-"
    if not compact or abs(n) < 10_000:
        return f"{n:,}"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g}{unit}" if value < 1000 else f"{value:.0f}{unit}"
    return f"{n:,}"


def fmt_rate(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.1f}"


def distinct_names(paths: Sequence[str]) -> list[str]:
    """Each path shortened to its fewest trailing parts that no other path ends with:
    ``host-a/conv_50.pcapng`` and ``host-b/conv_50.pcapng`` stay apart, ``x.pcapng`` alone is
    ``x.pcapng``. The same path given twice gets the same name."""
    parts = {p: tuple(os.path.normpath(p).split(os.sep)) for p in paths}
    distinct = set(parts.values())
    short: dict[tuple[str, ...], str] = {}
    k = 1
    left = distinct
    while left:
        tails = Counter(t[-k:] for t in distinct)
        for t in list(left):
            if tails[t[-k:]] == 1 or k >= len(t):
                short[t] = os.sep.join(t[-k:])
        left = {t for t in left if t not in short}
        k += 1
    return [short[parts[p]] for p in paths]
