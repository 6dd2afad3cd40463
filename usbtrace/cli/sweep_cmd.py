"""``usbtrace sweep``: one capture per model size of a family, into ``captures/<label>/``.

The sweep itself only orders the work; what touches the outside world comes in through
``SweepDeps`` (model lookup, the capture runner, the CPU timer), so tests replace it with fakes
and a machine without a Coral can still exercise everything around it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from usbtrace.cli.flags import Deprecated
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError, UsbtraceError
from usbtrace.formats.metadata import CaptureMetadata, append_metadata

FAMILIES = ("conv", "dense")
CPU_BASELINE_KEY = "cpu_baseline_s"

DESCRIPTION = """\
Capture one model size after another: for each size, `usbtrace capture --model FAMILY_SIZE`
runs into DIR/LABEL/ (default captures/LABEL/; without --label, captures/FAMILY/), with one
progress bar over the whole sweep. --cpu-baseline also times the same model on the CPU (the
uncompiled FAMILY_SIZE.tflite in a TFLite interpreter without the Edge TPU delegate, no capture
running) and stores the median seconds per inference in the capture's metadata as cpu_baseline_s,
which `summarize --by-size` turns into a speed-up. Every model is looked up before the first
capture, so a typo fails at once. A size that fails is reported and the sweep goes on; exit
status 1 when any size failed. Afterwards: usbtrace summarize DIR/LABEL --by-size, usbtrace plot,
usbtrace report."""


@dataclass(frozen=True)
class ModelFiles:
    name: str
    compiled: Path  # what the Edge TPU runs
    source: Path | None  # the uncompiled model, for the CPU baseline


@dataclass(frozen=True)
class SweepStep:
    family: str
    size: int
    model: ModelFiles
    label: str | None
    out_dir: Path
    count: int
    warmup: int
    backend: str
    bus: int | None


@dataclass
class SweepDeps:
    """The outside world of a sweep; each has a real default and a fake in the tests."""

    resolve: Callable[[str], ModelFiles]
    capture: Callable[[SweepStep], Path]  # the capture file written; raises UsbtraceError
    cpu_time: Callable[[Path, int], float]  # median s per inference; raises UsbtraceError


@dataclass
class SweepResult:
    step: SweepStep
    path: Path | None = None
    cpu_baseline_s: float | None = None
    errors: list[str] = field(default_factory=list)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise UsageError(f"--sizes {text!r}: give sizes such as 10,25,50") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError(f"--sizes {text!r}: give positive sizes such as 10,25,50")
    return list(dict.fromkeys(sizes))  # keep the order, drop repeats


def run_sweep(
    steps: list[SweepStep],
    deps: SweepDeps,
    *,
    cpu_baseline: bool,
    on_step: Callable[[int, SweepStep], None] | None = None,
) -> list[SweepResult]:
    results = []
    for i, step in enumerate(steps):
        if on_step is not None:
            on_step(i, step)
        result = SweepResult(step)
        results.append(result)
        try:
            result.path = deps.capture(step)
        except UsbtraceError as exc:
            result.errors.append(f"{step.model.name}: capture failed: {exc}")
            continue
        if not cpu_baseline:
            continue
        if step.model.source is None or not step.model.source.is_file():
            result.errors.append(f"{step.model.name}: no uncompiled model for the CPU baseline")
            continue
        try:
            result.cpu_baseline_s = deps.cpu_time(step.model.source, step.count)
        except UsbtraceError as exc:
            result.errors.append(f"{step.model.name}: CPU baseline failed: {exc}")
            continue
        # appended after dumpcap's blocks: the traffic is untouched and later keys win
        append_metadata(
            str(result.path),
            CaptureMetadata(
                extra={
                    CPU_BASELINE_KEY: result.cpu_baseline_s,
                    "cpu_baseline": {"runs": step.count, "model_path": str(step.model.source)},
                }
            ),
        )
    return results


# -- the real outside world ----------------------------------------------------------------------


def _resolve_catalog(name: str) -> ModelFiles:
    try:
        from usbtrace.models.catalog import resolve
    except ImportError:
        raise UsageError(
            "the model catalog (usbtrace.models) is not part of this install"
        ) from None
    entry = resolve(name)
    compiled = entry.require_compiled()
    return ModelFiles(entry.name, compiled, entry.source if entry.source_exists else None)


def _capture_with_runner(step: SweepStep) -> Path:
    try:
        from usbtrace.capture.runner import CaptureConfig, run_capture
        from usbtrace.cli.capture_cmd import make_backend
    except ImportError:
        raise UsageError(
            "the capture runner (usbtrace.capture) is not part of this install"
        ) from None
    backend = make_backend(step.backend, step.model.compiled, step.bus)
    outcome = run_capture(
        CaptureConfig(
            model=step.model.name,
            model_path=step.model.compiled,
            backend=backend,
            count=step.count,
            warmup=step.warmup,
            out_dir=step.out_dir,
            bus=step.bus,
            label=step.label,
            name=step.model.name,
            command_line=list(sys.argv),
        )
    )
    if outcome.path is None or outcome.exit_status != 0:
        raise UsageError(outcome.error or f"capture ended with status {outcome.status}")
    return outcome.path


def _cpu_time_tflite(model: Path, count: int) -> float:
    """Median wall time of ``count`` invokes in a TFLite interpreter without any delegate."""
    from usbtrace.capture.backends.tflite import (
        NUMPY_ABI_ERRORS,
        find_interpreter_module,
        numpy_abi_hint,
    )

    found = find_interpreter_module()  # the capture backend's module, in its order
    if found is None:
        raise UsageError(
            "--cpu-baseline needs a TFLite interpreter "
            "(pip install ai-edge-litert; tflite-runtime works with numpy 1 only)"
        )
    module, dist = found
    import numpy as np

    try:
        interp = module.Interpreter(model_path=str(model))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
        interp.invoke()  # warm-up: first invoke prepares kernels
        times = []
        for _ in range(max(count, 1)):
            t0 = time.perf_counter()
            interp.invoke()
            times.append(time.perf_counter() - t0)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"{model}: the CPU interpreter failed: {exc}") from None
    except NUMPY_ABI_ERRORS as exc:
        raise UsageError(f"{model}: {numpy_abi_hint(dist, exc)}") from None
    return statistics.median(times)


def default_deps() -> SweepDeps:
    return SweepDeps(_resolve_catalog, _capture_with_runner, _cpu_time_tflite)


# -- command line --------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="capture every size of a model family (conv/dense), optionally with a CPU baseline",
        description=DESCRIPTION,
    )
    p.add_argument("--family", required=True, choices=FAMILIES, help="model family")
    p.add_argument("--sizes", required=True, metavar="N,N,...", help="sizes, e.g. 10,25,50,100")
    p.add_argument("--count", type=int, default=5, metavar="N", help="inferences per capture (5)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="warm-up inferences (1)")
    p.add_argument("--label", metavar="L", help="run label (e.g. usb3, usb2, 5W): the subfolder")
    p.add_argument(
        "--out-dir", dest="out", default="captures", metavar="DIR", help="root folder (captures/)"
    )
    p.add_argument("--out", action=Deprecated, use="--out-dir")
    p.add_argument("--cpu-baseline", action="store_true", help="also time each model on the CPU")
    p.add_argument("--backend", default="auto", help="capture backend (auto; see usbtrace capture)")
    p.add_argument("--bus", type=int, metavar="N", help="USB bus (default: the Edge TPU's)")
    p.set_defaults(func=run)


def _progress_callback(total: int) -> tuple[Callable[[int, SweepStep], None], Callable[[], None]]:
    """One bar over the whole sweep on a terminal, one line per step in a pipe."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True), transient=True)
        task = progress.add_task("sweep", total=total)
        progress.start()

        def step(i: int, s: SweepStep) -> None:
            progress.update(task, completed=i, description=f"sweep {s.model.name}")

        def done() -> None:
            progress.update(task, completed=total)
            progress.stop()

        return step, done

    def line(i: int, s: SweepStep) -> None:
        print(f"usbtrace: sweep {i + 1}/{total}: {s.model.name}", file=sys.stderr)

    return line, lambda: None


def run(args: argparse.Namespace, deps: SweepDeps | None = None) -> int:
    deps = deps or default_deps()
    if args.count < 1 or args.warmup < 0:
        raise UsageError("--count must be at least 1 and --warmup at least 0")
    sizes = parse_sizes(args.sizes)
    out_dir = Path(args.out) / (args.label or args.family)
    models = [deps.resolve(f"{args.family}_{size}") for size in sizes]  # fail before capturing
    OutputGuard().folder(out_dir)  # not a folder, or not writable: said before capturing
    steps = [
        SweepStep(
            args.family,
            size,
            m,
            args.label,
            out_dir,
            args.count,
            args.warmup,
            args.backend,
            args.bus,
        )
        for size, m in zip(sizes, models)
    ]
    on_step, done = _progress_callback(len(steps))
    try:
        results = run_sweep(steps, deps, cpu_baseline=args.cpu_baseline, on_step=on_step)
    finally:
        done()
    failed = 0
    for r in results:
        for e in r.errors:
            print(f"usbtrace: {e}", file=sys.stderr)
        failed += bool(r.errors)
        if r.path is not None:
            cpu = "" if r.cpu_baseline_s is None else f"  cpu {r.cpu_baseline_s * 1e3:.2f} ms"
            print(f"{r.path}{cpu}")
    print(
        f"usbtrace: {len(results) - failed}/{len(results)} sizes captured into {out_dir}",
        file=sys.stderr,
    )
    return 1 if failed else 0
