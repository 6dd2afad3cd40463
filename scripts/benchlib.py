"""Shared pieces of the benchmark scripts: capture files, timed commands, peak memory."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

# the lab package lives in the checkout, outside the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.synthetic.bench import make_bench_capture

TSHARK_FIELDS = (
    "frame.time_epoch",
    "usb.urb_type",
    "usb.transfer_type",
    "usb.endpoint_address",
    "usb.urb_len",
    "usb.data_len",
    "usb.capdata",
)


def bench_capture(directory: Path, name: str, **kw: object) -> Path:
    """A synthetic capture in ``directory``, made once and reused by later runs."""
    path = directory / name
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        r = make_bench_capture(path, **kw)
        print(f"made {path}: {r.frames:,} frames, {r.bytes / 2**20:.1f} MiB in {r.seconds:.1f} s")
    return path


def frames_capture(doc: str | None, frames: int) -> tuple[argparse.Namespace, Path]:
    """The options of a benchmark on the synthetic ``reader-N.pcapng`` capture (``--frames``,
    ``--dir``), and that capture, made once."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=frames)
    ap.add_argument("--dir", type=Path, default=default_dir())
    args = ap.parse_args()
    name = f"reader-{args.frames}.pcapng"
    return args, bench_capture(args.dir, name, frames=args.frames, snaplen=128)


def tshark_command(path: Path) -> list[str]:
    exe = shutil.which("tshark")
    if exe is None:
        sys.exit("tshark is not installed (Debian: apt-get install tshark)")
    cmd = [exe, "-n", "-r", str(path), "-T", "fields"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    return cmd


def compile_bytecode() -> None:
    """Compile the package's bytecode first, as ``pip install`` does for a wheel (and a first
    run does for an editable install): the timings are then those of an installed usbtrace, not
    of one recompiled at every start (as under PYTHONDONTWRITEBYTECODE)."""
    package = Path(__file__).resolve().parents[1] / "usbtrace"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def timed_run(cmd: list[str], stdout: object = subprocess.DEVNULL) -> tuple[float, int]:
    """Wall seconds from process start to exit, and the child's peak RSS in KiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(cmd, stdout=stdout, stderr=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) if peak > before else peak


def child_peak_rss_kib(code: str) -> tuple[float, int]:
    """Run ``python -c code`` in a fresh process: (seconds, its own peak RSS in KiB).

    /usr/bin/time would do, but is not always installed; a wrapper process that reports its
    child's ru_maxrss isolates the measurement from this (larger) benchmark process.
    """
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"subprocess.run([sys.executable, '-c', {code!r}], check=True)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[-2]), int(out[-1])


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def default_dir() -> Path:
    return Path(os.environ.get("USBTRACE_BENCH_DIR", "bench"))
