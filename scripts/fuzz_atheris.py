#!/usr/bin/env python3
"""Coverage-guided fuzzing of the capture reader and decoder with atheris (libFuzzer).

Needs ``pip install atheris``. Every input is written to a file and decoded the way ``summarize``
does (``decode_capture(..., partial_ok=True)`` and the analysis); an ``InputError`` is the
documented answer to a bad file, anything else is a crash that libFuzzer reports with the input.
The seed corpus is ``tests/corpus`` plus a few fuzz cases.

    python3 scripts/fuzz_atheris.py -max_total_time=300 /tmp/atheris-corpus
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["usbtrace"]):
    from lab.fuzzing.mutate import make_case
    from usbtrace.analysis.summary import summarize_trace
    from usbtrace.errors import InputError
    from usbtrace.pipeline import decode_capture

TMP = Path(tempfile.mkdtemp(prefix="usbtrace-atheris-")) / "input.pcapng"


def test_one_input(data: bytes) -> None:
    TMP.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = decode_capture(TMP, partial_ok=True)
        except InputError:
            return
        for trace in decoded.devices:
            summarize_trace(decoded, trace)


def seed_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "tests" / "corpus").glob("*.pcap*"):
        (folder / f.name).write_bytes(f.read_bytes())
    for seed in range(20):
        (folder / f"case-{seed}.pcapng").write_bytes(make_case(seed).data)


def main() -> None:
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs:
        seed_corpus(Path(dirs[0]))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
