"""One table renderer for every command: rich on a terminal, aligned plain text in a pipe."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Column:
    title: str
    align: str = "left"  # "left" | "right"


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
        rich_output = stream.isatty()
    if rich_output:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, header_style="bold", show_lines=False)
        for c in columns:
            table.add_column(c.title, justify="right" if c.align == "right" else "left")
        for r in rows:
            table.add_row(*r)
        Console(file=stream).print(table)
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


def fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_seconds(s: float | None, digits: int = 3) -> str:
    """Milliseconds with units, the scale Edge TPU latencies live at."""
    if s is None:
        return "-"
    return f"{s * 1e3:.{digits}f} ms"


def fmt_rate(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.1f}"
