"""The progress bar of the bytes read, on stderr: one for every command that reads captures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path


def file_size(path: str | Path) -> int:
    """The bytes a capture will give: its size for a regular file, 0 for standard input
    (``-``), a FIFO or anything unreadable (a bar without a total then counts)."""
    if str(path) == "-":
        return 0
    try:
        p = Path(path)
        return p.stat().st_size if p.is_file() else 0
    except OSError:
        return 0


@contextlib.contextmanager
def bytes_read_bar(total: int | None, *, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr while the block runs, when ``show``: yields what to call
    with the bytes read so far (None when not shown). ``total`` None: it counts without one.

    Shown when stderr is a terminal, whatever stdout is (the bar never goes there); a command
    whose own output is the progress on that terminal (``inspect``) says not to."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("reading", total=total)
        yield lambda read: bar.update(task, completed=read)
