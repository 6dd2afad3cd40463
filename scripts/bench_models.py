#!/usr/bin/env python3
"""Measure how long building and inspecting the catalog's models takes (prints figures only).

python3 scripts/bench_models.py            # builds into a temporary folder
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from usbtrace.models.builders import build_model
from usbtrace.models.catalog import catalog_entries
from usbtrace.models.inspect import inspect_model
from usbtrace.models.package_writer import study_like_executables, write_compiled_model


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'model':<18} {'bytes':>12} {'build s':>8}")
        for entry in catalog_entries(folder):
            start = time.perf_counter()
            data = build_model(entry.family or "", entry.size or 0)
            seconds = time.perf_counter() - start
            (folder / entry.source.name).write_bytes(data)
            print(f"{entry.name:<18} {len(data):>12,} {seconds:>8.3f}")
        # a compiled file the size of conv_300's (15 MB of parameters) through the inspector
        exes = study_like_executables(2_622_400, 12_425_088, [260_736, 262_176, 90_256], 9_648)
        path = write_compiled_model(folder / "conv_300_like_edgetpu.tflite", [exes])
        start = time.perf_counter()
        summary = inspect_model(path)
        seconds = time.perf_counter() - start
        print(
            f"inspect {path.stat().st_size:,} B compiled file: {seconds * 1000:.1f} ms "
            f"(cached {summary.cached_bytes:,} B, streamed {summary.streamed_bytes:,} B)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
