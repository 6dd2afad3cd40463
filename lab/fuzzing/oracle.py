"""Run the CLI on one file, in-process, and check the documented contract.

The contract (README, "Exit status"): no traceback ever; ``summarize`` exits 0 with a result, or 2
with one-line ``usbtrace: ...`` messages on stderr (1 only with several files); ``inspect`` exits
0, 1 (no Edge TPU found) or 2. Everything written to stderr is a ``usbtrace:`` line, never a stray
Python or numpy warning. In-process rather than a subprocess per case because a campaign runs
100,000 cases: the CLI's ``main()`` is exactly what the console script calls.
"""

from __future__ import annotations

import contextlib
import io
import json
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from usbtrace.cli.main import main


@dataclass
class Outcome:
    command: str
    status: int | None
    stdout: str
    stderr: str
    traceback: str | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def run_cli(argv: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    status: int | None = None
    tb = None
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        # "always" so a stray warning shows up in every case, not only the first
        warnings.simplefilter("always")
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = exc.code if isinstance(exc.code, int) else 2
        except Exception:
            tb = traceback.format_exc()
    return Outcome(argv[0], status, out.getvalue(), err.getvalue(), tb)


def _stderr_violations(o: Outcome) -> list[str]:
    bad = [line for line in o.stderr.splitlines() if not line.startswith("usbtrace: ")]
    return [f"stray stderr line: {bad[0][:200]!r}"] if bad else []


def check_summarize(
    path: Path, *, expect_result: bool = False, expect_problem: bool = False
) -> Outcome:
    o = run_cli(["summarize", "--json", str(path)])
    v = o.violations
    if o.traceback:
        v.append("traceback")
        return o
    if o.status not in (0, 2):
        v.append(f"exit status {o.status} for one file (want 0 or 2)")
    v += _stderr_violations(o)
    captures: list[dict] = []
    if o.status == 0:
        try:
            captures = json.loads(o.stdout)["captures"]
        except (ValueError, KeyError, TypeError) as exc:
            v.append(f"exit 0 but stdout is not the JSON document: {exc}")
        if not captures:
            v.append("exit 0 without any capture in the result")
    elif o.status == 2:
        if not o.stderr.strip():
            v.append("exit 2 without a message")
        elif str(path) not in o.stderr.splitlines()[0]:
            v.append("error message does not name the file")
    if expect_result:
        inferences = sum(c["summary"]["inferences"] for c in captures)
        if o.status != 0 or not inferences:
            v.append("no inference reported although the damage lies after the first one")
    if expect_problem and captures and all(c["summary"]["integrity"]["ok"] for c in captures):
        v.append("file is damaged but the integrity verdict says ok")
    return o


def check_inspect(path: Path, *, expect_result: bool = False) -> Outcome:
    """``inspect`` keeps the contract, and like ``summarize`` keeps a damaged file's readable
    prefix: with the damage after the first complete inference (a lying block length, a cut),
    that inference's completion event must be listed."""
    o = run_cli(["inspect", "--json", str(path)])
    if o.traceback:
        o.violations.append("traceback")
        return o
    if o.status not in (0, 1, 2):
        o.violations.append(f"exit status {o.status} (want 0, 1 or 2)")
    o.violations += _stderr_violations(o)
    rows = []
    if o.status == 0:
        for line in o.stdout.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                o.violations.append(f"inspect --json printed a non-JSON line: {line[:100]!r}")
                break
    if expect_result and not any(str(r.get("kind", "")).startswith("event") for r in rows):
        o.violations.append("no event listed although the damage lies after the first inference")
    return o


def check_chunking(path: Path, reference: Outcome, chunk_bytes: int) -> Outcome:
    """Differential check: reading in tiny chunks must give exactly the same answer.

    Blocks that straddle a chunk boundary, damage found in a later chunk, byte-order changes
    between chunks: a small file read in chunks of a few hundred bytes exercises all of the
    reader's carry-over logic that otherwise only files of more than 32 MiB reach.
    """
    from usbtrace.formats import capture

    saved = capture.CHUNK_BYTES
    capture.CHUNK_BYTES = chunk_bytes
    try:
        o = run_cli(["summarize", "--json", str(path)])
    finally:
        capture.CHUNK_BYTES = saved
    o.command = f"summarize (chunks of {chunk_bytes} B)"
    if o.traceback:
        o.violations.append("traceback")
    elif (o.status, o.stdout, o.stderr) != (reference.status, reference.stdout, reference.stderr):
        what = "exit status" if o.status != reference.status else "output"
        o.violations.append(f"{what} differs from a whole-file read")
    return o
