"""One capture: preflight, dumpcap around what runs, metadata appended, summary printed.

This is the only capture loop: ``capture --model``, ``sweep``, ``capture -- CMD`` (the user's
own program) and ``capture --attach/--duration`` differ only in their workload
(``workload.py``), which runs between "dumpcap is ready" and "stop".

Order on every exit path (normal end, Ctrl-C, SIGTERM, dumpcap dying, the device vanishing, a
runtime error): stop invoking, close the backend (its close sequence is traffic worth keeping),
stop dumpcap by its PID, cut a half-written trailing block if dumpcap was killed, append the
metadata of what actually ran, and tell the user which file was kept.

Metadata (``usbtrace.formats.metadata``): typed fields for model, sha256, label, link speed,
bus/device and the invoke timings; under ``extra``: ``usbtrace_version``, ``command_line``,
``backend`` and ``runtime``, ``model_summary``, ``host``, ``capture`` (interface, snaplen, count,
warmup, interval, dumpcap command and version, packet and drop counts), ``open_ns`` (the
backend's open: firmware download and device open), ``status`` ("complete", "interrupted" or
"failed") and ``error``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from usbtrace import __version__
from usbtrace.capture import preflight as pf
from usbtrace.capture.backends.base import Backend, RuntimeInfo
from usbtrace.capture.dumpcap import Dumpcap, dumpcap_version
from usbtrace.capture.hostinfo import collect as collect_host
from usbtrace.capture.pcapng_check import check_file, cut_incomplete_tail
from usbtrace.capture.sysfs import HostPaths, UsbDevice, find_edgetpus
from usbtrace.capture.workload import (
    MODE_ATTACH,
    MODE_COMMAND,
    AttachWorkload,
    CaptureFailed,
    CommandWorkload,
    InvokeWorkload,
    OutputRelay,
    Terminated,
    Workload,
    now_ns,
)
from usbtrace.errors import UsageError, UsbtraceError
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata

DEFAULT_SNAPLEN = 128  # usbmon header (64) + the first 64 data bytes: every protocol header
EXIT_INTERRUPTED = 130


__all__ = ["CaptureConfig", "CaptureFailed", "RunnerHooks", "now_ns", "run_capture"]


@dataclass
class CaptureConfig:
    model: str | None  # catalog name or path as given; None for a replay without --model
    model_path: Path | None
    backend: Backend | None = None  # runs the model: ``capture --model``, ``sweep``
    count: int = 5
    warmup: int = 1
    interval: float = 0.5
    out_dir: Path = Path("captures")
    bus: int | None = None
    snaplen: int = DEFAULT_SNAPLEN
    label: str | None = None
    name: str = "capture"  # file name stem before label and time
    interface: str | None = None  # dumpcap interface; default usbmonBUS (tests use "lo")
    skip_device_check: bool = False  # with ``interface``: capture without looking for a device
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))
    command: list[str] | None = None  # the user's own program instead of a backend
    attach: bool = False  # neither: record what already uses the Edge TPU
    duration: float | None = None  # with ``attach``: seconds to record (None: until Ctrl-C)

    def workload(self) -> Workload:
        """The one thing that runs during this capture."""
        chosen = [self.backend is not None, self.command is not None, self.attach]
        if sum(chosen) != 1:
            raise UsageError(
                "a capture runs a backend, a command (-- CMD) or attaches: one of them"
            )
        if self.command is not None:
            return CommandWorkload(self.command)
        if self.attach:
            return AttachWorkload(self.duration)
        assert self.backend is not None
        return InvokeWorkload(self.backend, self.count, self.warmup, self.interval)


class LiveWatch(Protocol):
    """A live view of the capture as dumpcap writes it (``usbtrace.report.live_view``)."""

    def start(self, path: Path) -> None: ...

    def stop(self) -> None: ...

    def relay(self) -> OutputRelay | None:
        """Where a wrapped command's output should go while the view is drawn, or None."""


@dataclass
class CaptureOutcome:
    path: Path | None
    status: str
    exit_status: int
    invokes: list[InvokeTiming]
    error: str | None = None
    packets: int = 0
    dropped: int | None = None


@dataclass
class RunnerHooks:
    """What the runner reaches outside itself, replaceable in tests."""

    paths: HostPaths = field(default_factory=HostPaths.from_env)
    inspector: pf.ModelInspector | None = None
    summary: Callable[[Path], None] | None = None
    log: TextIO = field(default_factory=lambda: sys.stderr)
    on_dumpcap_started: Callable[[Dumpcap], None] | None = None
    dumpcap_executable: str | None = None
    live: LiveWatch | None = None
    # requests usbtrace finds in a capture; a command or attach capture with none gets a note
    count_requests: Callable[[Path], int] | None = None


def output_path(out_dir: Path, name: str, label: str | None, when: datetime) -> Path:
    """``DIR/NAME[-LABEL]-YYYYmmddTHHMMSS.pcapng``, with -2, -3 … rather than overwrite."""
    stem = name + (f"-{label}" if label else "") + when.strftime("-%Y%m%dT%H%M%S")
    candidate = out_dir / f"{stem}.pcapng"
    n = 2
    while candidate.exists():
        candidate = out_dir / f"{stem}-{n}.pcapng"
        n += 1
    return candidate


def _claim(path: Path) -> None:
    # O_EXCL: never let dumpcap overwrite a file someone else created in the meantime.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a killed session, `timeout`) takes the same clean path as Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Cleanup must finish even if Ctrl-C is pressed again."""
    try:
        previous = [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for s, p in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
            signal.signal(s, p)


@dataclass
class Preflighted:
    device: UsbDevice | None
    bus: int | None
    interface: str
    dumpcap: str
    runtime: RuntimeInfo
    model_summary: dict[str, Any] | None
    model_sha256: str | None


def run_preflight(config: CaptureConfig, hooks: RunnerHooks, workload: Workload) -> Preflighted:
    paths = hooks.paths
    device: UsbDevice | None = None
    bus = config.bus
    if config.interface is None:
        pf.check_platform()
        device = pf.find_device(paths, config.bus)
        bus = config.bus if config.bus is not None else device.bus
        usbmon = pf.check_usbmon(paths, bus)
        dumpcap = pf.check_dumpcap(usbmon, executable=hooks.dumpcap_executable)
        interface = f"usbmon{bus}"
    else:
        interface = config.interface
        if not config.skip_device_check:
            device = pf.find_device(paths, config.bus, use_pyusb=False)
            bus = device.bus
        dumpcap = hooks.dumpcap_executable or pf.dumpcap_path() or ""
        if not dumpcap:
            raise pf.PreflightError("dumpcap is not installed: run: sudo apt-get install tshark")
    summary_obj = None
    sha = None
    if config.backend is not None and config.backend.needs_model:
        if config.model_path is None:
            raise pf.PreflightError(f"--backend {config.backend.name} needs --model")
        inspector = hooks.inspector or pf.default_inspector()
        summary_obj = pf.check_model(config.model_path, inspector)
        sha = pf.file_sha256(config.model_path)
    elif config.model_path is not None and config.model_path.is_file():
        sha = pf.file_sha256(config.model_path)
    runtime = workload.prepare()
    runs = config.count + config.warmup if config.backend is not None else 0
    pf.check_disk(config.out_dir, pf.bytes_needed(summary_obj, runs, config.snaplen))
    return Preflighted(
        device=device,
        bus=bus,
        interface=interface,
        dumpcap=dumpcap,
        runtime=runtime,
        model_summary=summary_obj.to_json() if summary_obj is not None else None,
        model_sha256=sha,
    )


def _device_gone(hooks: RunnerHooks, pre: Preflighted) -> bool:
    if pre.device is None or not hooks.paths.usb_devices.is_dir():
        return False  # no sysfs view (device found through pyusb): cannot tell
    # after a firmware download the device re-enumerates: any Edge TPU on the bus will do
    return not find_edgetpus(hooks.paths, pre.bus)


@dataclass
class _Session:
    """What the workload sees of the runner while dumpcap records."""

    meta: CaptureMetadata
    dumpcap: Dumpcap
    hooks: RunnerHooks
    pre: Preflighted

    def check(self) -> None:
        if not self.dumpcap.alive():
            raise CaptureFailed(
                f"dumpcap exited during the capture: {self.dumpcap.last_error_line()}"
            )

    def device_gone(self) -> bool:
        return _device_gone(self.hooks, self.pre)

    def output(self) -> OutputRelay | None:
        return self.hooks.live.relay() if self.hooks.live is not None else None


def run_capture(config: CaptureConfig, hooks: RunnerHooks | None = None) -> CaptureOutcome:
    hooks = hooks or RunnerHooks()
    log = hooks.log
    workload = config.workload()
    pre = run_preflight(config, hooks, workload)
    if pre.device is not None and config.backend is not None:
        config.backend.use_device(pre.device)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    path = output_path(config.out_dir, config.name, config.label, datetime.now())
    _claim(path)

    meta = CaptureMetadata(
        model=config.model,
        model_path=str(config.model_path) if config.model_path else None,
        model_sha256=pre.model_sha256,
        label=config.label,
        link_speed=pre.device.speed if pre.device else None,
        bus=pre.bus,
        device=pre.device.address if pre.device else None,
        mode=workload.mode,
    )
    dumpcap = Dumpcap(pre.interface, path, snaplen=config.snaplen, executable=pre.dumpcap)
    capture_info: dict[str, Any] = {
        "interface": pre.interface,
        "snaplen": config.snaplen,
        "dumpcap_command": dumpcap.command,
    }
    if config.backend is not None:
        capture_info.update(count=config.count, warmup=config.warmup, interval_s=config.interval)
    if config.attach:
        capture_info["duration_s"] = config.duration
    meta.extra.update(
        usbtrace_version=__version__,
        command_line=config.command_line,
        backend=pre.runtime.backend,
        runtime=pre.runtime.to_json(),
        model_summary=pre.model_summary,
        host=collect_host(hooks.paths, dumpcap=dumpcap_version(pre.dumpcap)).to_json(),
        capture=capture_info,
    )
    if pre.device is not None:
        meta.extra["usb_device"] = {
            "vendor": f"{pre.device.vendor:04x}",
            "product": f"{pre.device.product:04x}",
            "sysfs": pre.device.sysfs_name,
            "serial": pre.device.serial,
        }
    where = pre.device.describe() if pre.device else f"interface {pre.interface}"
    print(f"usbtrace: capturing {where} into {path}", file=log)

    status, error, exit_status = "complete", None, 0
    interrupted: KeyboardInterrupt | None = None
    live_started = False
    try:
        with _sigterm_as_interrupt():
            dumpcap.start()
            if hooks.on_dumpcap_started:
                hooks.on_dumpcap_started(dumpcap)
            dumpcap.wait_ready()
            if hooks.live is not None:
                hooks.live.start(path)
                live_started = True
            workload.run(_Session(meta, dumpcap, hooks, pre))
    except KeyboardInterrupt as exc:
        status, exit_status = "interrupted", EXIT_INTERRUPTED
        error, interrupted = "interrupted by the user", exc
    except UsbtraceError as exc:
        status, error, exit_status = "failed", str(exc), exc.exit_status
    except Exception as exc:  # a runtime's own error type: stop, report, keep the file
        status, error, exit_status = "failed", f"{type(exc).__name__}: {exc}", 1
    finally:
        with _signals_deferred():
            close_error = workload.close(interrupted)
            live = hooks.live if live_started else None
            outcome = _finish(dumpcap, path, meta, status, error or close_error, live)
    if outcome.path is None:
        outcome.exit_status = EXIT_INTERRUPTED if status == "interrupted" else 2
    elif outcome.status == status:
        outcome.exit_status = exit_status
    if outcome.path is not None:
        outcome.exit_status = workload.exit_status(outcome.exit_status)
    _report(outcome, meta, log)
    if outcome.path is not None and workload.ran and status != "failed":
        _print_summary(outcome.path, hooks, workload.mode, log)
    return outcome


def _finish(
    dumpcap: Dumpcap,
    path: Path,
    meta: CaptureMetadata,
    status: str,
    error: str | None,
    live: LiveWatch | None = None,
) -> CaptureOutcome:
    result = dumpcap.stop()
    if live is not None:
        live.stop()  # after the drain: its last frame shows every packet of the file
    if status == "complete" and result.returncode not in (0, -signal.SIGINT):
        status, error = "failed", f"dumpcap ended with status {result.returncode}"
    check = check_file(path) if path.exists() else None
    if check is None or check.sections == 0:
        # dumpcap never wrote a header: nothing worth keeping; remove our empty placeholder
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0:
                path.unlink()
        return CaptureOutcome(
            None, "failed", 2, meta.invokes, error or dumpcap.last_error_line() or "no capture"
        )
    removed = cut_incomplete_tail(path, check)
    meta.extra["capture"].update(packets=check.packets, dropped=check.dropped)
    if removed:
        meta.extra["capture"]["cut_incomplete_tail_bytes"] = removed
    meta.extra["status"] = status
    if error:
        meta.extra["error"] = error
    append_metadata(str(path), meta)
    exit_status = 0 if status == "complete" else 1
    return CaptureOutcome(
        path, status, exit_status, meta.invokes, error, check.packets, check.dropped
    )


def _report(outcome: CaptureOutcome, meta: CaptureMetadata, log: TextIO) -> None:
    measured = [i for i in outcome.invokes if not i.warmup]
    if measured:
        ms = sorted((i.end_ns - i.start_ns) / 1e6 for i in measured)
        median = ms[len(ms) // 2]
        timing = f", host invoke median {median:.2f} ms over {len(ms)}"
    else:
        timing = ""
    if meta.command is not None and meta.command.exit_status is not None:
        took = meta.command.run_time_s
        ran = f" after {took:.2f} s" if took is not None else ""
        print(
            f"usbtrace: command {meta.command.argv[0]} exited with status"
            f" {meta.command.exit_status}{ran}",
            file=log,
        )
    if outcome.path is None:
        print(f"usbtrace: capture failed: {outcome.error}", file=log)
        return
    dropped = f", {outcome.dropped} dropped" if outcome.dropped else ""
    line = f"{outcome.path}: {outcome.packets} packets{dropped}{timing}"
    if outcome.status == "complete":
        print(f"usbtrace: wrote {line}", file=log)
        if outcome.error:  # e.g. the runtime's close failed after every inference ran
            print(f"usbtrace: warning: {outcome.error}", file=log)
    else:
        print(f"usbtrace: {outcome.status}: {outcome.error}; kept {line}", file=log)


NO_HOST_TIMING_NOTE = (
    "usbtrace: note: no host invoke timestamps: the {what}, so the summary has device-side"
    " latency only (no host latency or host overhead)"
)


def _print_summary(path: Path, hooks: RunnerHooks, mode: str, log: TextIO) -> None:
    if mode in (MODE_COMMAND, MODE_ATTACH):
        count = hooks.count_requests or _count_requests
        try:
            requests = count(path)
        except UsbtraceError as exc:
            print(f"usbtrace: note: {path} could not be analysed: {exc}", file=log)
            return
        if requests == 0:
            who = "the command" if mode == MODE_COMMAND else "nothing during the capture"
            print(
                f"usbtrace: note: {who} moved no Edge TPU request over USB (no completed"
                f" request in {path}); the capture is kept. Does the program use the Edge TPU"
                " (the delegate loaded, the model compiled with edgetpu_compiler)?",
                file=log,
            )
            return
        what = (
            "command ran its own inferences"
            if mode == MODE_COMMAND
            else "capture attached to a program usbtrace did not start"
        )
        print(NO_HOST_TIMING_NOTE.format(what=what), file=log)
    if hooks.summary is not None:
        hooks.summary(path)
        return
    from usbtrace.cli.main import main  # the summary is the CLI's: imported only when wanted

    main(["summarize", str(path)])


def _count_requests(path: Path) -> int:
    """Requests (completed or not) usbtrace finds in the capture, over every Edge TPU."""
    from usbtrace.pipeline import summarize_file

    return sum(len(s.requests) for s in summarize_file(path))
