"""Regression corpus: every capture that once broke usbtrace, with what it must report now.

The files are rebuilt by ``scripts/make_fuzz_corpus.py``; ``expected.json`` holds the outcome and
why the file is there. Each file is also read in small chunks, which must change nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.fuzzing.oracle import check_chunking, check_inspect, run_cli

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_gives_its_expected_outcome(name: str) -> None:
    want = EXPECTED[name]
    path = CORPUS / name
    o = run_cli(["summarize", "--json", str(path)])
    assert o.traceback is None, o.traceback
    assert o.status == want["summarize_exit"], o.stderr
    assert all(line.startswith("usbtrace: ") for line in o.stderr.splitlines()), o.stderr
    if "stderr" in want:
        assert want["stderr"] in o.stderr
    if o.status != 0:
        return
    captures = json.loads(o.stdout)["captures"]
    assert captures
    c = captures[0]
    if "min_inferences" in want:
        assert c["summary"]["inferences"] >= want["min_inferences"]
    if "integrity_ok" in want:
        assert c["summary"]["integrity"]["ok"] is want["integrity_ok"]
    if "problem" in want:
        assert any(want["problem"] in p for p in c["summary"]["integrity"]["problems"])
    if "model" in want:
        assert c["model"] == want["model"]
    if "first_request_kind" in want:
        assert c["requests"][0]["kind"] == want["first_request_kind"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("chunk", [64, 200, 1024])
def test_corpus_file_reads_the_same_in_small_chunks(name: str, chunk: int) -> None:
    path = CORPUS / name
    ref = run_cli(["summarize", "--json", str(path)])
    o = check_chunking(path, ref, chunk)
    assert o.ok, o.violations


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_inspects_without_traceback(name: str) -> None:
    o = check_inspect(CORPUS / name)
    assert o.ok, (o.violations, o.traceback)


def test_every_corpus_file_is_listed() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng")}
    assert on_disk == set(EXPECTED)
