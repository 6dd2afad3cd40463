"""``summarize --jobs``: parallel equals serial; 1,000 captures within a small fd limit."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from lab.fuzzing.fleet import make_fleet
from lab.fuzzing.oracle import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_output_is_identical_to_serial(tmp_path: Path) -> None:
    make_fleet(tmp_path / "in", 24, bad=2)
    serial = run_cli(["summarize", "--json", "--jobs", "1", str(tmp_path / "in")])
    parallel = run_cli(["summarize", "--json", "--jobs", "3", str(tmp_path / "in")])
    assert serial.traceback is None and parallel.traceback is None
    assert (parallel.status, parallel.stdout, parallel.stderr) == (
        serial.status,
        serial.stdout,
        serial.stderr,
    )
    assert serial.status == 1  # two files failed, the others are reported
    assert len(json.loads(serial.stdout)["captures"]) == 24
    assert serial.stderr.count("broken-") == 2


def test_table_output_is_identical_too(tmp_path: Path) -> None:
    make_fleet(tmp_path / "in", 9)
    a = run_cli(["summarize", "--per-inference", "--jobs", "1", str(tmp_path / "in")])
    b = run_cli(["summarize", "--per-inference", "--jobs", "2", str(tmp_path / "in")])
    assert a.status == b.status == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_jobs_must_be_a_positive_number(value: str) -> None:
    o = run_cli(["summarize", "--jobs", value, "x.pcapng"])
    assert o.status == 2 and "--jobs" in o.stderr


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_a_thousand_captures_with_64_file_handles(tmp_path: Path) -> None:
    make_fleet(tmp_path / "fleet", 1000)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "usbtrace",
            "summarize",
            "--json",
            "--jobs",
            "2",
            str(tmp_path / "fleet"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_limit_files,
    )
    out, err = child.communicate()
    assert child.returncode == 0, err.decode()[-2000:]
    caps = json.loads(out)["captures"]
    assert len(caps) == 1000
    assert all(c["summary"]["inferences"] >= 1 for c in caps)
