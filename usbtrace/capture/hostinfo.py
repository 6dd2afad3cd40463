"""What the capturing host looked like: recorded in the metadata so a capture explains itself."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from usbtrace.capture.sysfs import HostPaths


@dataclass(frozen=True)
class HostInfo:
    cpu_model: str | None
    cores: int | None
    governor: str | None  # cpufreq scaling governor of cpu0; None without cpufreq
    kernel: str
    machine: str
    python: str
    dumpcap: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_model(proc: Path) -> str | None:
    try:
        text = (proc / "cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 says "model name"; arm64 kernels only "Hardware" or nothing useful
        if key.strip() in ("model name", "Hardware", "Model", "cpu model"):
            return value.strip()
    return None


def _governor(paths: HostPaths) -> str | None:
    path = paths.sysfs / "devices/system/cpu/cpu0/cpufreq/scaling_governor"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def collect(
    paths: HostPaths, *, dumpcap: str | None = None, proc: Path = Path("/proc")
) -> HostInfo:
    return HostInfo(
        cpu_model=_cpu_model(proc),
        cores=os.cpu_count(),
        governor=_governor(paths),
        kernel=platform.release(),
        machine=platform.machine(),
        python=sys.version.split()[0],
        dumpcap=dumpcap,
    )
