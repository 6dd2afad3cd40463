"""``scripts/bench_memory.py`` judges every run it makes (cold and warm page cache), not only
the last one: its verdict is what the README's payload-heavy figures rest on. The capture, the
reads and the child processes are stand-ins here; nothing is benchmarked."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_memory():
    spec = importlib.util.spec_from_file_location(
        "bench_memory", ROOT / "scripts" / "bench_memory.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("first_line_s", "peak_mb", "ok"),
    [
        ({"cold": 0.4, "warm": 0.3}, {"cold": 60, "warm": 55}, True),
        ({"cold": 1.5, "warm": 0.3}, {"cold": 60, "warm": 55}, False),  # cold first line late
        ({"cold": 0.4, "warm": 0.3}, {"cold": 260, "warm": 55}, False),  # cold peak too high
        ({"cold": 0.4, "warm": 2.0}, {"cold": 60, "warm": 55}, False),
    ],
)
def test_every_run_is_judged(tmp_path, monkeypatch, capsys, first_line_s, peak_mb, ok):
    bench = _bench_memory()
    cache = ["cold"]
    inferences = 7

    def make_capture(path: Path, size: int) -> tuple[int, int]:
        path.write_bytes(b"\0" * 64)
        return 64, inferences

    def drop_cache(path: Path) -> None:
        cache[0] = "cold"

    def run_summarize(path: Path) -> tuple[float, int, int, dict]:
        doc = {"captures": [{"summary": {"inferences": inferences}}]}
        return 1.0, peak_mb[cache[0]] * bench.MB, 0, doc

    def inspect_first_line(path: Path) -> tuple[float, float]:
        first = first_line_s[cache[0]]
        cache[0] = "warm"  # what follows reads from the page cache
        return first, 2.0

    monkeypatch.setattr(bench, "make_capture", make_capture)
    monkeypatch.setattr(bench, "drop_cache", drop_cache)
    monkeypatch.setattr(bench, "plain_read", lambda path: 1.0)
    monkeypatch.setattr(bench, "run_summarize", run_summarize)
    monkeypatch.setattr(bench, "inspect_first_line", inspect_first_line)
    monkeypatch.setattr(sys, "argv", ["bench_memory.py", "--size-gb", "0", "--dir", str(tmp_path)])
    assert bench.main() == (0 if ok else 1)
    assert capsys.readouterr().out.rstrip().endswith(f": {ok}")
    assert not list(tmp_path.iterdir())  # the capture is deleted
