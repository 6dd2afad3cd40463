"""The progress bar of the bytes read: on stderr whenever stderr is a terminal and the output
goes elsewhere, never in the output itself. A pseudo-terminal stands in for the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.synthetic.bench import make_bench_capture

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    # long enough to read (a few tenths of a second) for the bar to be drawn at least once
    path = tmp_path_factory.mktemp("progress") / "long.pcapng"
    make_bench_capture(path, frames=600_000)
    return path


def _run(args: list[str], out: Path, stdout_on_terminal: bool = False) -> tuple[bytes, bytes]:
    """(what reached the terminal, what reached ``out``) of ``usbtrace ARGS``, its stderr on a
    pseudo-terminal (and its stdout too, with ``stdout_on_terminal``)."""
    master, slave = os.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100")
    env.pop("TERM", None)
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "usbtrace", *args],
            stdout=slave if stdout_on_terminal else f,
            stderr=slave,
            env=env,
        )
    os.close(slave)
    seen = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child's end is closed
            break
        if not data:
            break
        seen.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(seen)[-2000:]
    return b"".join(seen), out.read_bytes()


def test_summarize_draws_its_bar_on_the_terminal_and_not_in_its_output(capture, tmp_path):
    terminal, out = _run(["summarize", "--json", str(capture)], tmp_path / "s.json")
    assert b"reading" in terminal
    assert json.loads(out)["captures"][0]["summary"]["inferences"] > 1000


def test_inspect_draws_its_bar_when_its_rows_go_to_a_file(capture, tmp_path):
    terminal, out = _run(["inspect", "--json", str(capture)], tmp_path / "i.jsonl")
    assert b"reading" in terminal
    lines = out.splitlines()
    assert len(lines) > 10_000
    assert all(line.startswith(b'{"device":') for line in lines)  # no bar among the rows


def test_inspect_on_the_terminal_shows_rows_and_no_bar(capture, tmp_path):
    terminal, _ = _run(["inspect", str(capture)], tmp_path / "unused", stdout_on_terminal=True)
    assert b"parameters" in terminal and b"reading" not in terminal
