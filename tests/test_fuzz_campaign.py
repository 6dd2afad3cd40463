"""The CI share of the fuzz campaign: a fixed-seed run of 3,000 cases (scripts/fuzz.py runs more).

A failure names its seed; ``python3 scripts/fuzz.py --replay SEED --save case.pcapng`` rebuilds
the file and explains the case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.fuzzing.campaign import run_case

CASES = 3000
BATCH = 250


@pytest.mark.parametrize("start", range(1, CASES + 1, BATCH))
def test_seeded_cases_keep_the_cli_contract(start: int, tmp_path: Path) -> None:
    path = tmp_path / "case.pcapng"
    failures = [f for seed in range(start, start + BATCH) for f in run_case(seed, path, 4)]
    assert not failures, "\n".join(
        f"{f.signature} -- python3 scripts/fuzz.py --replay {f.seed}" for f in failures[:10]
    )
