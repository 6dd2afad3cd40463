"""``scripts/floor_scan.py`` is the lower bound ``scripts/bench_floor.py`` reports for issue 14's
30x target: it must find the same records usbtrace reads and take their real header fields, or
the bound it prints is not a bound."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from lab.synthetic.bench import make_bench_capture
from usbtrace.formats.capture import read_all

ROOT = Path(__file__).resolve().parents[1]


def _floor_scan():
    spec = importlib.util.spec_from_file_location("floor_scan", ROOT / "scripts" / "floor_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_floor_scan_reads_what_usbtrace_reads(tmp_path, capsys):
    path = tmp_path / "small.pcapng"
    make_bench_capture(path, frames=5000, snaplen=128)
    floor_scan = _floor_scan()
    floor_scan.main(str(path))
    count, check = (int(x) for x in capsys.readouterr().out.split())
    batch, info = read_all(path)
    assert count == info.packets == len(batch) > 5000
    h = batch.records["hdr"]
    expected = 0
    for name in floor_scan.FIELDS:
        expected ^= int(h[name].astype(np.uint64).sum())
    assert check == expected
