"""``usbtrace models``: the benchmark model catalog, building, compiling and inspecting models."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from usbtrace.cli.flags import Deprecated
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError
from usbtrace.models.catalog import (
    CatalogEntry,
    catalog_entries,
    entry_for_path,
    models_dir,
    resolve,
)
from usbtrace.models.inspect import ModelSummary, inspect_model

DESCRIPTION = """\
The study's benchmark models and compiled-model introspection.

  list     the catalog (conv_N, dense_N, mobilenet_v1, mobilenet_v2,
           ssd_mobilenet_v1): what is built and compiled, and the bytes each
           compiled model moves over USB
  build    write full-integer int8 .tflite files for catalog entries (no
           TensorFlow needed)
  compile  run Google's edgetpu_compiler -s on them (must be on PATH) and keep
           its report
  inspect  read the Edge TPU package(s) inside a *_edgetpu.tflite file:
           executables, caching token, instruction/parameter/input/output
           bytes, and the DMA transfer order

Models live in models/ of the checkout (override with $USBTRACE_MODELS_DIR)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="benchmark model catalog: list, build, compile, inspect",
        description=DESCRIPTION,
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")

    p = sub.add_parser(
        "list",
        help="catalog entries and their build/compile status",
        description="List the catalog's models: whether each is built and compiled in the "
        "models folder, the parameter bytes a compiled one caches on chip and streams with "
        "every inference, and its instruction bytes per inference.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "build",
        help="write .tflite files for catalog entries",
        description="Write full-integer int8 .tflite models for catalog entries, directly as "
        "TFLite flatbuffers (random int8 weights, fixed seed; conv_300 takes well under a second). "
        "NAME is a catalog name (conv_300), a family (conv = every conv_N) or --all.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="catalog names or families")
    p.add_argument("--all", action="store_true", help="build every catalog entry")
    p.add_argument(
        "--out-dir",
        dest="out",
        type=Path,
        metavar="DIR",
        help="output folder (default: the models folder)",
    )
    p.add_argument("--out", type=Path, action=Deprecated, use="--out-dir")
    p.set_defaults(func=run_build)

    p = sub.add_parser(
        "compile",
        help="compile catalog entries or files with edgetpu_compiler",
        description="Run `edgetpu_compiler -s` on catalog entries (built first if needed) or on "
        ".tflite paths, write NAME_edgetpu.tflite next to the source, keep the compiler's stdout "
        "as NAME_edgetpu.compiler.txt and summarize it: on-chip memory used/remaining for "
        "caching, off-chip memory for streaming, and operators not mapped to the Edge TPU.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="catalog names or .tflite files")
    p.add_argument("--all", action="store_true", help="compile every catalog entry")
    p.set_defaults(func=run_compile)

    p = sub.add_parser(
        "inspect",
        help="what a compiled model sends over USB",
        description="Read the DWN1 package(s) inside the edgetpu-custom-op of a compiled model and "
        "list each executable (stand-alone / parameter-caching / execution-only), then the bytes "
        "cached on chip once, streamed every inference, and the instruction, input and output "
        "bytes of one inference. Uncompiled and CPU-only models are recognised and said so.",
    )
    p.add_argument("model", metavar="FILE|NAME", help="a .tflite file or a catalog name")
    p.add_argument("--json", action="store_true", help="print the documented JSON")
    p.set_defaults(func=run_inspect)

    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


def _inspect_if_present(entry: CatalogEntry) -> ModelSummary | None:
    return inspect_model(entry.compiled) if entry.compiled_exists else None


@dataclass(frozen=True)
class _ListRow:
    """One catalog model as `models list` shows it (None: not built, compiled or inspected)."""

    name: str
    family: str | None
    size: int | None
    source: str | None
    source_bytes: int | None
    compiled: str | None
    compiled_bytes: int | None
    cached_bytes: int | None
    streamed_bytes: int | None
    instruction_bytes: int | None


def _list_row(entry: CatalogEntry) -> _ListRow:
    summary = _inspect_if_present(entry)
    known = summary if summary is not None and summary.compiled else None
    return _ListRow(
        name=entry.name,
        family=entry.family,
        size=entry.size,
        source=str(entry.source) if entry.source_exists else None,
        source_bytes=entry.source.stat().st_size if entry.source_exists else None,
        compiled=str(entry.compiled) if entry.compiled_exists else None,
        compiled_bytes=entry.compiled.stat().st_size if entry.compiled_exists else None,
        cached_bytes=known.cached_bytes if known else None,
        streamed_bytes=known.streamed_bytes if known else None,
        instruction_bytes=known.instruction_bytes if known else None,
    )


def run_list(args: argparse.Namespace) -> int:
    rows = [_list_row(entry) for entry in catalog_entries()]
    if args.json:
        models = [asdict(row) for row in rows]
        print(json.dumps({"models_dir": str(models_dir()), "models": models}, indent=2))
        return 0
    print(f"models in {models_dir()}")
    header = ("name", "built", "compiled", "cached", "streamed", "instr/inf")
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        sizes = (
            row.source_bytes,
            row.compiled_bytes,
            row.cached_bytes,
            row.streamed_bytes,
            row.instruction_bytes,
        )
        table.append((row.name, *(_mib(n) if n is not None else "-" for n in sizes)))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for r in table:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    built = sum(1 for r in rows if r.source)
    compiled = sum(1 for r in rows if r.compiled)
    print(f"{len(rows)} models, {built} built, {compiled} compiled")
    if built < len(rows):
        print(
            "build with `usbtrace models build --all`; compile with `usbtrace models compile NAME`"
        )
    return 0


def _select(args: argparse.Namespace, directory: Path | None = None) -> list[CatalogEntry]:
    entries = catalog_entries(directory)
    if args.all:
        return entries
    if not args.names:
        raise UsageError("name at least one model (e.g. conv_300), a family (conv), or --all")
    chosen: list[CatalogEntry] = []
    for name in args.names:
        family = [e for e in entries if e.family == name and e.name != name]
        if family:
            chosen.extend(family)
        elif os.sep in name or name.endswith(".tflite"):
            chosen.append(entry_for_path(Path(name)))
        else:
            match = resolve(name, directory)
            chosen.append(next((e for e in entries if e.name == match.name), match))
    return chosen


def build_entry(entry: CatalogEntry, out: Path | None = None) -> tuple[Path, int, float]:
    from usbtrace.models.builders import build_model

    if entry.family is None or entry.size is None or not entry.in_catalog:
        raise UsageError(f"{entry.name}: not a catalog model, nothing to build")
    start = time.perf_counter()
    data = build_model(entry.family, entry.size)
    target = (out / entry.source.name) if out else entry.source
    target.parent.mkdir(parents=True, exist_ok=True)
    OutputGuard().write(target, lambda tmp: tmp.write_bytes(data))  # atomic; never a capture
    return target, len(data), time.perf_counter() - start


def run_build(args: argparse.Namespace) -> int:
    for entry in _select(args):
        path, size, seconds = build_entry(entry, args.out)
        print(f"{entry.name}: wrote {path} ({_mib(size)}) in {seconds:.2f} s")
    return 0


def run_compile(args: argparse.Namespace) -> int:
    from usbtrace.models.compiler import COMPILER_MISSING, find_compiler, run_compiler

    entries = _select(args)
    if find_compiler() is None:
        raise UsageError(COMPILER_MISSING)
    failures = 0
    for entry in entries:
        if not entry.source_exists:
            if not entry.in_catalog:
                entry.require_source()
            path, _, _ = build_entry(entry)
            print(f"{entry.name}: built {path}")
        guard = OutputGuard()
        for out in (entry.compiled, entry.compiler_stdout):
            guard.check_file(out)  # the compiler must not write over a capture either
        result = run_compiler(entry.source, entry.compiled.parent, entry.compiler_stdout, guard)
        report = result.report
        if result.returncode != 0 or report.succeeded is False or not result.compiled.is_file():
            failures += 1
            print(
                f"{entry.name}: edgetpu_compiler failed (exit {result.returncode}); "
                f"its output is in {result.stdout_file}",
                file=sys.stderr,
            )
            continue
        parts = [f"{entry.name}: wrote {result.compiled}"]
        if report.on_chip_used is not None:
            parts.append(f"on-chip cache {_mib(report.on_chip_used)}")
        if report.off_chip_streaming is not None:
            parts.append(f"streamed {_mib(report.off_chip_streaming)}")
        unmapped = report.unmapped
        if unmapped:
            parts.append(
                "not on the Edge TPU: "
                + ", ".join(f"{r.operator} x{r.count} ({r.status})" for r in unmapped)
            )
        print("; ".join(parts))
        summary = inspect_model(result.compiled)
        if summary.compiled:
            print(
                f"  package: cached {summary.cached_bytes:,} B, streamed "
                f"{summary.streamed_bytes:,} B, instructions {summary.instruction_bytes:,} B"
            )
    return 1 if failures else 0


def _target_for_inspect(text: str) -> Path:
    entry = resolve(text)
    if not entry.in_catalog:
        return Path(text)
    if entry.compiled_exists:
        return entry.compiled
    if entry.source_exists:
        return entry.source
    return entry.require_compiled()


def format_summary(summary: ModelSummary) -> list[str]:
    name = Path(summary.file).name
    if not summary.compiled:
        return [f"{name}: {summary.reason}"]
    lines = [
        name,
        f"  compiled for the Edge TPU: {len(summary.packages)} package(s), "
        f"{len(summary.executables)} executable(s)",
    ]
    for use in summary.packages:
        for exe in use.package.executables:
            role = (
                "runs every inference"
                if exe is use.main
                else ("runs once, fills the cache" if exe is use.caching else "not used")
            )
            token = f"0x{exe.caching_token:016x}" if exe.caching_token is not None else "-"
            lines.append(f"  {exe.type.name} ({role}), token {token}")
            bitstreams = " + ".join(f"{n:,}" for n in exe.instruction_bitstream_bytes) or "0"
            lines.append(f"    instructions {bitstreams} B, parameters {exe.parameter_bytes:,} B")
            for kind, layers in (("input", exe.inputs), ("output", exe.outputs)):
                for layer in layers:
                    shape = "x".join(str(d) for d in layer.shape)
                    lines.append(f"    {kind} {layer.name}: {layer.size_bytes:,} B ({shape})")
            hints = ", ".join(h.label() for h in exe.dma_hints) or "none"
            deterministic = "" if exe.fully_deterministic else " (not fully deterministic)"
            lines.append(f"    DMA order: {hints}{deterministic}")
    lines += [
        f"cached on chip once:        {summary.cached_bytes:>12,} B",
        f"streamed every inference:   {summary.streamed_bytes:>12,} B",
        f"instructions per inference: {summary.instruction_bytes:>12,} B",
        f"input per inference:        {summary.input_bytes:>12,} B",
        f"output per inference:       {summary.output_bytes:>12,} B",
    ]
    return lines


def run_inspect(args: argparse.Namespace) -> int:
    summary = inspect_model(_target_for_inspect(args.model))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
        return 0
    print("\n".join(format_summary(summary)))
    if not summary.compiled and not Path(args.model).is_file():
        print(f"compile with `usbtrace models compile {args.model}` (needs edgetpu_compiler)")
    return 0
