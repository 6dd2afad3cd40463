"""Run dumpcap for the length of a capture, and never leave it behind.

dumpcap runs in its own session so a Ctrl-C in the terminal reaches only usbtrace, which then stops
the inferences first and dumpcap second (SIGINT, so dumpcap flushes and writes its statistics). The
kernel also sends dumpcap SIGTERM if usbtrace itself dies (PR_SET_PDEATHSIG), the one exit path no
``finally`` covers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from usbtrace.capture.pcapng_check import read_info
from usbtrace.errors import UsbtraceError

_PR_SET_PDEATHSIG = 1
# libpcap hands packets to dumpcap in ring blocks that a 250 ms kernel timer retires; dumpcap
# drops a block not yet retired when it is stopped. Measured on lo (dumpcap 4.0): datagrams sent
# 0.2 s before SIGINT were lost in every run, 0.3 s and more never. So wait this long first.
DRAIN_SECONDS = 0.6


class DumpcapError(UsbtraceError):
    """dumpcap could not start, or stopped on its own."""


@dataclass(frozen=True)
class DumpcapResult:
    returncode: int
    stderr: str


def dumpcap_path() -> str | None:
    return shutil.which("dumpcap")


def dumpcap_version(executable: str) -> str | None:
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    return first or None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when usbtrace dies.
    # The kernel watches the forking *thread*, so the runner starts dumpcap from its main thread.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Dumpcap:
    """One dumpcap process writing ``path``; use as a context manager or call ``stop()``."""

    def __init__(
        self,
        interface: str,
        path: str | Path,
        *,
        snaplen: int,
        executable: str | None = None,
    ) -> None:
        self.interface = interface
        self.path = Path(path)
        self.snaplen = snaplen
        self.executable = executable or dumpcap_path() or "dumpcap"
        self.process: subprocess.Popen[bytes] | None = None
        # closed in stop(); dumpcap's messages must outlive the process to be reported
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.result: DumpcapResult | None = None

    @property
    def command(self) -> list[str]:
        cmd = [self.executable, "-i", self.interface, "-w", str(self.path), "-q"]
        return [*cmd, "-s", str(self.snaplen)]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        if self.path.exists() and self.path.stat().st_size > 0:
            # dumpcap -w truncates; a non-empty file is someone's capture
            raise DumpcapError(f"{self.path}: already exists, not overwriting it")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # before any reader thread exists
            )
        except OSError as exc:
            raise DumpcapError(f"cannot run {self.executable}: {exc.strerror}") from exc

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def last_error_line(self) -> str:
        """dumpcap's complaint on one line (it spreads one message over several)."""
        lines = [ln.strip() for ln in self.stderr_text().splitlines() if ln.strip()]
        interesting = [
            ln.removeprefix("dumpcap: ")
            for ln in lines
            if not ln.startswith(("Capturing on", "File:", "Packets"))
        ]
        return " ".join(interesting[-3:]) or "no message"

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Return once dumpcap has opened the interface and written its interface block."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise DumpcapError(
                    f"dumpcap -i {self.interface} exited (status {code}): {self.last_error_line()}"
                )
            if self._has_interface_block():
                return
            time.sleep(0.02)
        self.stop()
        raise DumpcapError(
            f"dumpcap -i {self.interface} did not start writing {self.path} within {timeout:g} s"
        )

    def _has_interface_block(self) -> bool:
        if not self.path.is_file():
            return False
        info, _ = read_info(self.path)
        return bool(info and info.interfaces)

    def stop(self, timeout: float = 10.0, drain: float = DRAIN_SECONDS) -> DumpcapResult:
        """Let the last packets through, SIGINT and wait; escalate to SIGTERM, then SIGKILL.

        Safe to call more than once; the later calls return the first result.
        """
        if self.result is not None:
            return self.result
        proc = self.process
        if proc is None:
            self.result = DumpcapResult(returncode=0, stderr="")
            return self.result
        if drain > 0 and proc.poll() is None:
            time.sleep(drain)
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        proc.wait()
        self.result = DumpcapResult(returncode=proc.returncode, stderr=self.stderr_text())
        self._stderr.close()
        return self.result

    def __enter__(self) -> Dumpcap:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
