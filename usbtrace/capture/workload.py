"""What runs while dumpcap records: a backend's inferences, the user's command, or nothing.

The runner (``runner.py``) owns the one capture loop: preflight, dumpcap, the live view, Ctrl-C,
metadata, the summary. A workload only says what happens between "dumpcap is ready" and "stop":

* ``InvokeWorkload``: a backend (tflite, pycoral, replay) opens the model and runs W warm-up and
  N measured inferences, stamping each ``invoke()`` (``capture --model``, ``sweep``);
* ``CommandWorkload``: the user's own program (``capture -- CMD``); its output passes through,
  the capture ends when it exits, and its exit status becomes usbtrace's;
* ``AttachWorkload``: nothing is started; the capture records whatever already uses the Edge TPU
  for ``--duration`` seconds or until Ctrl-C (``capture --attach``/``--duration``).
"""

from __future__ import annotations

import contextlib
import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from usbtrace.capture.backends.base import Backend, BackendFailed, RuntimeInfo
from usbtrace.capture.preflight import PreflightError, check_runtime
from usbtrace.errors import UsbtraceError
from usbtrace.formats.metadata import CaptureMetadata, CommandRun, InvokeTiming

MODE_MODEL = "model"
MODE_COMMAND = "command"
MODE_ATTACH = "attach"

# How long the wrapped command may take to end on its own after a Ctrl-C (the terminal sent it the
# same SIGINT), then after each signal usbtrace sends it, before the next, harder one.
COMMAND_GRACE_S = 2.0
COMMAND_SIGNAL_WAIT_S = 5.0
POLL_S = 0.1


def now_ns() -> int:
    """CLOCK_REALTIME in ns: the clock usbmon stamps its events with."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


class Terminated(KeyboardInterrupt):
    """SIGTERM, taking Ctrl-C's clean path; the wrapped command gets SIGTERM rather than SIGINT."""


class CaptureFailed(UsbtraceError):
    """The capture stopped early; the file was kept. Exit status 1."""

    exit_status = 1


class Session(Protocol):
    """What a workload may ask of the runner while the capture runs."""

    meta: CaptureMetadata

    def check(self) -> None:
        """Raise ``CaptureFailed`` if dumpcap is gone."""

    def device_gone(self) -> bool:
        """True when the Edge TPU preflight found is no longer on its bus."""

    def output(self) -> OutputRelay | None:
        """Where a wrapped command's output goes when it cannot share the terminal as is."""


class OutputRelay(Protocol):
    """Prints a wrapped command's output lines without tearing the live view."""

    def write(self, stream: str, text: str) -> None:
        """``stream`` is "stdout" or "stderr"; ``text`` is decoded output, newlines included."""


class Workload(ABC):
    mode: str

    @abstractmethod
    def prepare(self) -> RuntimeInfo:
        """Preflight: raise ``PreflightError`` (exit 2, nothing captured) if it cannot run."""

    @abstractmethod
    def run(self, session: Session) -> None:
        """Runs inside the capture; returns when the capture should stop."""

    def close(self, interrupted: KeyboardInterrupt | None) -> str | None:
        """Ends what ``run`` left running; returns an error to report, or None."""
        return None

    @property
    def ran(self) -> bool:
        """Whether anything worth summarising may be in the capture."""
        return True

    def exit_status(self, runner_status: int) -> int:
        """usbtrace's exit status given the runner's (0 complete, 1 failed, 130 interrupted)."""
        return runner_status


class InvokeWorkload(Workload):
    """A backend's W warm-up and N measured inferences, ``interval`` apart."""

    mode = MODE_MODEL

    def __init__(self, backend: Backend, count: int, warmup: int, interval: float) -> None:
        self.backend = backend
        self.count, self.warmup, self.interval = count, warmup, interval
        self.opened = False
        self.invokes: list[InvokeTiming] = []

    def prepare(self) -> RuntimeInfo:
        return check_runtime(self.backend)

    def run(self, session: Session) -> None:
        t0 = now_ns()
        self.backend.open()
        self.opened = True
        session.meta.extra["open_ns"] = {"start": t0, "end": now_ns()}
        for i in range(self.warmup + self.count):
            if i and self.interval > 0:
                time.sleep(self.interval)
            session.check()
            start = now_ns()
            try:
                self.backend.invoke()
            except BackendFailed as exc:
                if session.device_gone():
                    bus = session.meta.bus
                    raise CaptureFailed(
                        f"the Edge TPU vanished from bus {bus} during inference {i}"
                    ) from exc
                raise
            end = now_ns()
            timing = InvokeTiming(index=i, start_ns=start, end_ns=end, warmup=i < self.warmup)
            session.meta.invokes.append(timing)

    def close(self, interrupted: KeyboardInterrupt | None) -> str | None:
        if not self.opened:
            return None
        try:
            self.backend.close()
        except Exception as exc:  # any close failure is reported with the kept file, not raised
            return f"closing the backend failed: {exc}"
        return None

    @property
    def ran(self) -> bool:
        return bool(self.invokes) or self.opened


class AttachWorkload(Workload):
    """Starts nothing: records the bus for ``duration`` seconds, or until Ctrl-C/SIGTERM (None)."""

    mode = MODE_ATTACH

    def __init__(self, duration: float | None) -> None:
        self.duration = duration

    def prepare(self) -> RuntimeInfo:
        return RuntimeInfo(backend="attach", details={"duration_s": self.duration})

    def run(self, session: Session) -> None:
        start = time.monotonic()
        try:
            while True:
                session.check()
                left = POLL_S if self.duration is None else start + self.duration - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(POLL_S, left))
        except KeyboardInterrupt:
            if self.duration is not None:
                raise  # stopped before the time asked for: an interrupted capture
            # without --duration, Ctrl-C (or SIGTERM, from `timeout` or a service manager) is
            # how the capture is meant to end
        finally:
            session.meta.extra.setdefault("attach", {})["recorded_s"] = round(
                time.monotonic() - start, 3
            )


def resolve_command(argv: list[str]) -> str:
    """The executable ``argv[0]`` names, as the shell would find it; PreflightError if none."""
    if not argv:
        raise PreflightError("nothing to run after --: give the command, e.g. -- python3 app.py")
    name = argv[0]
    if os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise PreflightError(f"{name}: no such file: the command to capture was not found")
        if not os.access(path, os.X_OK):
            raise PreflightError(f"{name}: not executable (chmod +x, or run it through python3)")
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise PreflightError(f"{name}: command not found (not on PATH)")
    return found


def status_of(returncode: int) -> int:
    """A process's return code as a shell reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class CommandWorkload(Workload):
    """The user's command, started once dumpcap records; the capture ends when it exits."""

    mode = MODE_COMMAND

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)
        self.process: subprocess.Popen[bytes] | None = None
        self.run_info: CommandRun | None = None
        self._t0 = 0.0
        self._pumps: list[threading.Thread] = []
        self._meta: CaptureMetadata | None = None

    def prepare(self) -> RuntimeInfo:
        executable = resolve_command(self.argv)
        return RuntimeInfo(backend="command", details={"executable": executable})

    def run(self, session: Session) -> None:
        self._meta = session.meta
        relay = session.output()
        streams: dict[str, int | None] = {"stdout": None, "stderr": None}
        masters: list[tuple[str, int]] = []
        if relay is not None:
            # a pty per stream: the program still sees a terminal (line buffering, colours),
            # while its lines are printed above the live view instead of through it
            for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                if stream is not None and stream.isatty():
                    master, slave = pty.openpty()
                    streams[name] = slave
                    masters.append((name, master))
        start = now_ns()
        self._t0 = time.monotonic()
        self.run_info = CommandRun(argv=self.argv, start_ns=start)
        try:
            self.process = subprocess.Popen(
                self.argv, stdout=streams["stdout"], stderr=streams["stderr"]
            )
        except OSError as exc:
            for _, fd in masters:
                os.close(fd)
            raise UsbtraceError(f"{self.argv[0]}: cannot run: {exc.strerror or exc}") from exc
        finally:
            for slave_fd in streams.values():
                if slave_fd is not None:
                    os.close(slave_fd)
        for name, fd in masters:
            assert relay is not None
            pump = threading.Thread(target=_pump, args=(fd, name, relay), daemon=True)
            pump.start()
            self._pumps.append(pump)
        while self.process.poll() is None:
            session.check()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(POLL_S)
        self._done()

    def _done(self) -> None:
        if self.process is None or self.run_info is None or self.process.returncode is None:
            return
        if self.run_info.exit_status is None:
            self.run_info.exit_status = status_of(self.process.returncode)
            self.run_info.end_ns = now_ns()
            self.run_info.run_time_s = round(time.monotonic() - self._t0, 6)
        for pump in self._pumps:
            pump.join(1.0)  # the last lines the program wrote
        if self._meta is not None:
            self._meta.command = self.run_info

    def close(self, interrupted: KeyboardInterrupt | None) -> str | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._stop(proc, interrupted)
        self._done()
        return None

    def _stop(self, proc: subprocess.Popen[bytes], interrupted: KeyboardInterrupt | None) -> None:
        """Ctrl-C: the program got the terminal's SIGINT too; give it time, then ask, then insist.

        SIGTERM to usbtrace is passed on at once. Anything else (dumpcap died) ends the program
        with SIGINT first, as a Ctrl-C would.
        """
        wait = COMMAND_SIGNAL_WAIT_S
        steps: list[tuple[signal.Signals | None, float]]
        if isinstance(interrupted, Terminated):
            steps = [(signal.SIGTERM, wait)]
        elif interrupted is not None:
            steps = [(None, COMMAND_GRACE_S), (signal.SIGINT, wait), (signal.SIGTERM, wait)]
        else:
            steps = [(signal.SIGINT, wait), (signal.SIGTERM, wait)]
        for sig, pause in [*steps, (signal.SIGKILL, wait)]:
            if proc.poll() is not None:
                return
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(pause)

    def exit_status(self, runner_status: int) -> int:
        if self.run_info is not None and self.run_info.exit_status is not None:
            if runner_status == 1 and self.run_info.exit_status == 0:
                return 1  # the program was fine, the capture was not
            return self.run_info.exit_status
        return runner_status


def _pump(fd: int, stream: str, relay: OutputRelay) -> None:
    """Copies a pty's output to the relay until the program closes it."""
    with contextlib.suppress(OSError):  # EIO: the program and its children closed the pty
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            relay.write(stream, data.decode(errors="replace").replace("\r\n", "\n"))
    os.close(fd)
