"""Host side of the testbed VM: prepare it and run guest scripts, from Python.

Thin wrappers around ``scripts/vm/prepare.sh`` and ``scripts/vm/run.sh`` (which hold the actual
recipe) for the VM tests. A VM that cannot be had here (no QEMU, not root and nothing prepared, no
kernel package) is reported as a reason string, so that tests can skip with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "vm"
PREPARE_MISSING = 3  # prepare.sh / run.sh: a requirement is missing
NO_EXIT_STATUS = 99  # run.sh: the guest left no exit status (timeout, panic)


def vm_dir() -> Path:
    if "USBTRACE_VM_DIR" in os.environ:
        return Path(os.environ["USBTRACE_VM_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "usbtrace-vm"


def unavailable_reason() -> str | None:
    """Why the VM cannot run here without trying, or None."""
    if sys.platform != "linux":
        return "the testbed VM needs Linux"
    if os.environ.get("USBTRACE_VM", "") == "0":
        return "USBTRACE_VM=0 turns the VM tests off"
    if not (SCRIPTS / "run.sh").exists():
        return f"{SCRIPTS}/run.sh missing"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    if os.geteuid() != 0 and not (vm_dir() / "initrd.gz").exists():
        return f"not root, and no prepared VM in {vm_dir()} (run scripts/vm/prepare.sh as root)"
    return None


@dataclass(frozen=True)
class Prepared:
    ok: bool
    reason: str  # why not, when not ok


def prepare(timeout: float = 600) -> Prepared:
    reason = unavailable_reason()
    if reason is not None:
        return Prepared(False, reason)
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPTS / "prepare.sh")],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Prepared(False, f"scripts/vm/prepare.sh took over {timeout:.0f} s")
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no message)"]
        return Prepared(False, f"scripts/vm/prepare.sh failed: {lines[-1]}")
    return Prepared(True, "")


@dataclass(frozen=True)
class GuestResult:
    status: int
    console: str  # the guest's console output


def run_guest(out: Path, script: Path, timeout: float = 300) -> GuestResult:
    """Run ``script`` in a fresh VM with ``out`` shared read-write; QEMU never outlives this.

    The guest's ``$PYTHON`` is the interpreter running this code (a venv need not be activated:
    ``python3`` on PATH may be another one, without usbtrace's dependencies).
    """
    env = {**os.environ, "USBTRACE_VM_PYTHON": os.environ.get("USBTRACE_VM_PYTHON", sys.executable)}
    proc = subprocess.Popen(
        ["bash", str(SCRIPTS / "run.sh"), str(out), str(script), str(int(timeout))],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: QEMU is ended with it below
    )
    try:
        console, _ = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        console, _ = proc.communicate()
        return GuestResult(NO_EXIT_STATUS, console + "\n(run.sh did not return; killed)")
    return GuestResult(proc.returncode, console)
