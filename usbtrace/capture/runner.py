"""One capture: preflight, dumpcap around the model run, metadata appended, summary printed.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from usbtrace import __version__
from usbtrace.capture import preflight as pf
from usbtrace.capture.backends.base import Backend, BackendFailed, RuntimeInfo
from usbtrace.capture.dumpcap import Dumpcap, dumpcap_version
from usbtrace.capture.hostinfo import collect as collect_host
from usbtrace.capture.pcapng_check import check_file, cut_incomplete_tail
from usbtrace.capture.sysfs import HostPaths, UsbDevice, find_edgetpus
from usbtrace.errors import UsbtraceError
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata

DEFAULT_SNAPLEN = 128  # usbmon header (64) + the first 64 data bytes: every protocol header
EXIT_INTERRUPTED = 130


class CaptureFailed(UsbtraceError):
    """The capture stopped early; the file was kept. Exit status 1."""

    exit_status = 1


def now_ns() -> int:
    """CLOCK_REALTIME in ns: the clock usbmon stamps its events with."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


@dataclass
class CaptureConfig:
    model: str | None  # catalog name or path as given; None for a replay without --model
    model_path: Path | None
    backend: Backend
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
        raise KeyboardInterrupt

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


def run_preflight(config: CaptureConfig, hooks: RunnerHooks) -> Preflighted:
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
    if config.backend.needs_model:
        if config.model_path is None:
            raise pf.PreflightError(f"--backend {config.backend.name} needs --model")
        inspector = hooks.inspector or pf.default_inspector()
        summary_obj = pf.check_model(config.model_path, inspector)
        sha = pf.file_sha256(config.model_path)
    elif config.model_path is not None and config.model_path.is_file():
        sha = pf.file_sha256(config.model_path)
    runtime = pf.check_runtime(config.backend)
    runs = config.count + config.warmup
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


def run_capture(config: CaptureConfig, hooks: RunnerHooks | None = None) -> CaptureOutcome:
    hooks = hooks or RunnerHooks()
    log = hooks.log
    pre = run_preflight(config, hooks)
    if pre.device is not None:
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
    )
    dumpcap = Dumpcap(pre.interface, path, snaplen=config.snaplen, executable=pre.dumpcap)
    meta.extra.update(
        usbtrace_version=__version__,
        command_line=config.command_line,
        backend=config.backend.name,
        runtime=pre.runtime.to_json(),
        model_summary=pre.model_summary,
        host=collect_host(hooks.paths, dumpcap=dumpcap_version(pre.dumpcap)).to_json(),
        capture={
            "interface": pre.interface,
            "snaplen": config.snaplen,
            "count": config.count,
            "warmup": config.warmup,
            "interval_s": config.interval,
            "dumpcap_command": dumpcap.command,
        },
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
    opened = False
    try:
        with _sigterm_as_interrupt():
            dumpcap.start()
            if hooks.on_dumpcap_started:
                hooks.on_dumpcap_started(dumpcap)
            dumpcap.wait_ready()
            t0 = now_ns()
            config.backend.open()
            opened = True
            meta.extra["open_ns"] = {"start": t0, "end": now_ns()}
            total = config.warmup + config.count
            for i in range(total):
                if i and config.interval > 0:
                    time.sleep(config.interval)
                if not dumpcap.alive():
                    raise CaptureFailed(
                        f"dumpcap exited during the capture: {dumpcap.last_error_line()}"
                    )
                start = now_ns()
                try:
                    config.backend.invoke()
                except BackendFailed as exc:
                    if _device_gone(hooks, pre):
                        raise CaptureFailed(
                            f"the Edge TPU vanished from bus {pre.bus} during inference {i}"
                        ) from exc
                    raise
                end = now_ns()
                meta.invokes.append(
                    InvokeTiming(index=i, start_ns=start, end_ns=end, warmup=i < config.warmup)
                )
    except KeyboardInterrupt:
        status, exit_status = "interrupted", EXIT_INTERRUPTED
        error = "interrupted by the user"
    except UsbtraceError as exc:
        status, error, exit_status = "failed", str(exc), exc.exit_status
    except Exception as exc:  # a runtime's own error type: stop, report, keep the file
        status, error, exit_status = "failed", f"{type(exc).__name__}: {exc}", 1
    finally:
        with _signals_deferred():
            outcome = _finish(config, hooks, dumpcap, path, meta, opened, status, error)
    if outcome.path is None:
        outcome.exit_status = EXIT_INTERRUPTED if status == "interrupted" else 2
    elif outcome.status == status:
        outcome.exit_status = exit_status
    _report(outcome, log)
    if outcome.path is not None and meta.invokes and status != "failed":
        _print_summary(outcome.path, hooks)
    return outcome


def _finish(
    config: CaptureConfig,
    hooks: RunnerHooks,
    dumpcap: Dumpcap,
    path: Path,
    meta: CaptureMetadata,
    opened: bool,
    status: str,
    error: str | None,
) -> CaptureOutcome:
    if opened:
        try:
            config.backend.close()
        except Exception as exc:  # any close failure is reported with the kept file, not raised
            error = error or f"closing the backend failed: {exc}"
    result = dumpcap.stop()
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


def _report(outcome: CaptureOutcome, log: TextIO) -> None:
    measured = [i for i in outcome.invokes if not i.warmup]
    if measured:
        ms = sorted((i.end_ns - i.start_ns) / 1e6 for i in measured)
        median = ms[len(ms) // 2]
        timing = f", host invoke median {median:.2f} ms over {len(ms)}"
    else:
        timing = ""
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


def _print_summary(path: Path, hooks: RunnerHooks) -> None:
    if hooks.summary is not None:
        hooks.summary(path)
        return
    from usbtrace.cli.main import main  # the summary is the CLI's: imported only when wanted

    main(["summarize", str(path)])
