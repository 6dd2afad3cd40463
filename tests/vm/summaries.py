"""``usbtrace summarize --json`` on the testbed's captures, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab.testbed import vm


def summarize(*paths: Path) -> list[dict[str, Any]]:
    """The per-device entries of the JSON summary that have requests (the Edge TPU itself).

    A device that was enumerating at address 0 when the capture started appears as its own
    entry without requests; it is left out here.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "usbtrace", "summarize", "--json", *map(str, paths)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(vm.REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["captures"]
    return [e for e in entries if e["requests"]]


def request_bytes(entry: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    return [(r["kind"], r["bytes"]) for r in entry["requests"]]


def inference_verdicts(entry: dict[str, Any]) -> list[str]:
    return [r["verdict"] for r in entry["requests"] if r["kind"] == "inference"]


def median_device_wait(entry: dict[str, Any]) -> float:
    """Median seconds the inferences waited on the device (``device_wait_s``)."""
    waits = sorted(r["device_wait_s"] for r in entry["requests"] if r["kind"] == "inference")
    return waits[len(waits) // 2]
