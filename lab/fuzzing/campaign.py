"""One fuzz case end to end: make it, write it, run the CLI on it, collect contract violations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.fuzzing.mutate import make_case
from lab.fuzzing.oracle import Outcome, check_chunking, check_inspect, check_summarize


@dataclass
class Failure:
    seed: int
    command: str
    violations: list[str]
    where: str  # last traceback line and innermost frame, or ""
    base: str
    mutations: list[str]

    @property
    def signature(self) -> str:
        return f"{self.command}: {self.violations[0]} {self.where}".strip()


def _where(o: Outcome) -> str:
    if not o.traceback:
        return ""
    lines = o.traceback.strip().splitlines()
    frames = [ln.strip() for ln in lines if ln.strip().startswith('File "')]
    return f"{lines[-1]} at {frames[-1] if frames else '?'}"


def run_case(seed: int, path: Path, inspect_every: int, chunk_every: int = 3) -> list[Failure]:
    case = make_case(seed)
    path.write_bytes(case.data)
    ref = check_summarize(
        path, expect_result=case.expect_result, expect_problem=case.expect_problem
    )
    outcomes = [ref]
    if chunk_every and seed % chunk_every == 0 and not ref.traceback:
        outcomes.append(check_chunking(path, ref, 64 + 4 * (seed % 200)))
    if inspect_every and seed % inspect_every == 0:
        outcomes.append(check_inspect(path, expect_result=case.expect_result))
    return [
        Failure(seed, o.command, o.violations, _where(o), case.base, case.mutations)
        for o in outcomes
        if not o.ok
    ]
