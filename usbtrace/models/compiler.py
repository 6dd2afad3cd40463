"""Running Google's ``edgetpu_compiler`` and reading what it prints.

The compiler is closed source and distributed only as a Debian package (``edgetpu-compiler``) from
Coral's own apt repository, for x86-64 Linux; it is not on PyPI or in Debian. usbtrace runs it when
it is on PATH (``-s`` prints the operator table), keeps its stdout next to the compiled model, and
parses that text:

* newer compilers (2.x, 14-16) print the on-chip memory used and remaining for caching
  parameters, the off-chip memory used for streaming, subgraph and operation counts, then an
  operator table (``Operator  Count  Status``);
* the 2019 compilers (1.0) print only the operator table, so the memory fields stay ``None``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from usbtrace.errors import UsageError

COMPILER = "edgetpu_compiler"
COMPILER_MISSING = (
    "edgetpu_compiler is not on PATH. Google distributes it only as the Debian package "
    "`edgetpu-compiler` from Coral's own apt repository (x86-64 Linux; see Coral's "
    "'Edge TPU Compiler' documentation for the repository line). Without it, inspect models "
    "compiled elsewhere with `usbtrace models inspect FILE_edgetpu.tflite`."
)
MAPPED_STATUS = "Mapped to Edge TPU"
_UNITS = {"B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 1000, "MB": 10**6}


def parse_size(text: str) -> int:
    """``4.21MiB`` -> bytes (rounded: the compiler prints two decimals)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?i?B)\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2).upper()])


@dataclass(frozen=True)
class OperatorRow:
    operator: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status.startswith(MAPPED_STATUS)


@dataclass
class CompilerReport:
    version: str | None = None
    succeeded: bool | None = None
    on_chip_used: int | None = None  # bytes of parameters cached on chip
    on_chip_remaining: int | None = None  # on-chip memory still available for caching
    off_chip_streaming: int | None = None  # bytes of parameters streamed every inference
    edgetpu_subgraphs: int | None = None
    total_operations: int | None = None
    operations_on_tpu: int | None = None
    operations_on_cpu: int | None = None
    operators: list[OperatorRow] = field(default_factory=list)

    @property
    def unmapped(self) -> list[OperatorRow]:
        return [row for row in self.operators if not row.mapped]

    @property
    def on_chip_available(self) -> int | None:
        """Used + remaining: what the compiler had for caching this model."""
        if self.on_chip_used is None or self.on_chip_remaining is None:
            return None
        return self.on_chip_used + self.on_chip_remaining

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "succeeded": self.succeeded,
            "on_chip_used": self.on_chip_used,
            "on_chip_remaining": self.on_chip_remaining,
            "off_chip_streaming": self.off_chip_streaming,
            "edgetpu_subgraphs": self.edgetpu_subgraphs,
            "total_operations": self.total_operations,
            "operations_on_tpu": self.operations_on_tpu,
            "operations_on_cpu": self.operations_on_cpu,
            "operators": [
                {"operator": r.operator, "count": r.count, "status": r.status, "mapped": r.mapped}
                for r in self.operators
            ],
        }


_SIZE_LINES = {
    "on_chip_used": re.compile(r"On-chip memory used for caching model parameters:\s*(\S+)"),
    "on_chip_remaining": re.compile(
        r"On-chip memory (?:remaining|available) for caching model parameters:\s*(\S+)"
    ),
    "off_chip_streaming": re.compile(
        r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)"
    ),
}
_COUNT_LINES = {
    "edgetpu_subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
    "total_operations": re.compile(r"Total number of operations:\s*(\d+)"),
    "operations_on_tpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "operations_on_cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
}
_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_TABLE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$")
_TABLE_ROW = re.compile(r"^\s*([A-Za-z][\w-]*)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_output(text: str) -> CompilerReport:
    """Parse edgetpu_compiler stdout (or its operation log): both the new and the 2019 form."""
    report = CompilerReport()
    if match := _VERSION.search(text):
        report.version = match.group(1)
    for name, pattern in _SIZE_LINES.items():
        if match := pattern.search(text):
            setattr(report, name, parse_size(match.group(1)))
    for name, pattern in _COUNT_LINES.items():
        if match := pattern.search(text):
            setattr(report, name, int(match.group(1)))
    if "Model compiled successfully" in text or "Compilation succeeded" in text:
        report.succeeded = True
    elif re.search(r"Compilation failed|Internal compiler error|ERROR:", text):
        report.succeeded = False
    in_table = False
    for line in text.splitlines():
        if _TABLE_HEADER.match(line):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        row = _TABLE_ROW.match(line)
        if row is None:
            in_table = False  # the table ended (e.g. "Compilation child process completed ...")
            continue
        report.operators.append(OperatorRow(row.group(1), int(row.group(2)), row.group(3)))
    return report


def find_compiler() -> str | None:
    return shutil.which(COMPILER)


@dataclass
class CompilerRun:
    source: Path
    compiled: Path
    stdout_file: Path
    returncode: int
    report: CompilerReport


class FileWriter(Protocol):
    """What writes a file for a command: ``cli.outputs.OutputGuard`` (the model layer sits
    below the CLI, so it is handed one rather than importing it)."""

    def write(
        self, path: str | Path, write: Callable[[Path], Any], *, replace: bool = True
    ) -> Path: ...


def run_compiler(
    source: Path,
    out_dir: Path,
    stdout_file: Path,
    guard: FileWriter,
    timeout_s: float = 600,
) -> CompilerRun:
    """Compile ``source`` into ``out_dir`` with ``edgetpu_compiler -s``; keep its stdout in
    ``stdout_file``, written through ``guard`` (the command's, which checked it beforehand)."""
    compiler = find_compiler()
    if compiler is None:
        raise UsageError(COMPILER_MISSING)
    try:
        proc = subprocess.run(
            [compiler, "-s", "-o", str(out_dir), str(source)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"{source}: edgetpu_compiler took longer than {timeout_s:.0f} s") from None
    text = proc.stdout + (f"\n--- stderr ---\n{proc.stderr}" if proc.stderr.strip() else "")
    # checked again as it is written: a capture put there while the compiler ran stays
    guard.write(stdout_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    report = parse_compiler_output(proc.stdout)
    if proc.returncode != 0 and report.succeeded is None:
        report.succeeded = False
    compiled = out_dir / f"{source.stem}_edgetpu.tflite"
    return CompilerRun(source, compiled, stdout_file, proc.returncode, report)
