"""The findings of each capture as plain lines, costliest first (``summarize`` on a terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from usbtrace.analysis.summary import CaptureSummary
from usbtrace.errors import printable


def print_findings(summaries: list[CaptureSummary], stream: TextIO) -> None:
    if not any(s.findings for s in summaries):
        return
    stream.write("\n# findings (what costs the most time, costliest first)\n")
    for s in summaries:
        if not s.findings:
            continue
        stream.write(f"{printable(Path(s.file).name)} ({s.device}):\n")
        for f in s.findings:
            cost = f" [{f.total_ms:,.1f} ms in this capture]" if f.total_ms else ""
            stream.write(f"  - {f.text}{cost}\n")
