"""The findings of each capture as plain lines, costliest first (``summarize`` on a terminal)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TextIO

from usbtrace.analysis.summary import CaptureSummary
from usbtrace.errors import printable


def print_findings(
    summaries: list[CaptureSummary], stream: TextIO, width: int | None = None
) -> None:
    """One line per finding; with ``width`` (a terminal's), each is wrapped under its dash
    rather than broken mid-word by the terminal. A pipe gets one line each, for grep."""
    if not any(s.findings for s in summaries):
        return
    stream.write("\n# findings (what costs the most time, costliest first)\n")
    for s in summaries:
        if not s.findings:
            continue
        stream.write(f"{printable(Path(s.file).name)} ({s.device}):\n")
        for f in s.findings:
            cost = f" [{f.total_ms:,.1f} ms in this capture]" if f.total_ms else ""
            line = f"  - {f.text}{cost}"
            if width is not None:
                line = textwrap.fill(line, width, subsequent_indent="    ")
            stream.write(line + "\n")
