#!/usr/bin/env python3
"""Fuzz campaign: malformed captures through ``usbtrace summarize`` (and ``inspect``).

Case k of a campaign is ``make_case(seed + k)``: a valid synthetic Edge TPU session in one of the
valid layouts, broken by up to three mutations (see ``lab/fuzzing/mutate.py``). Each case is
checked against the CLI contract (``lab/fuzzing/oracle.py``): no traceback, documented exit
status, only ``usbtrace:`` lines on stderr, a result for an intact prefix, damage listed in the
integrity verdict. Prints cases run, failures grouped by signature with a reproducer each, and
the time taken; exits 1 when any case failed.

    python3 scripts/fuzz.py --cases 100000 --jobs 2
    python3 scripts/fuzz.py --replay 4711 --save /tmp/case.pcapng   # one case, kept on disk
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.fuzzing.campaign import Failure, run_case  # noqa: E402
from lab.fuzzing.mutate import make_case  # noqa: E402


def _worker(args: tuple[list[int], int]) -> tuple[int, list[Failure]]:
    seeds, inspect_every = args
    with tempfile.TemporaryDirectory(prefix="usbtrace-fuzz-") as tmp:
        path = Path(tmp) / "case.pcapng"
        failures = [f for s in seeds for f in run_case(s, path, inspect_every)]
    return len(seeds), failures


def campaign(seed: int, cases: int, jobs: int, inspect_every: int) -> tuple[int, list[Failure]]:
    batch = 250
    work = [
        (list(range(seed + i, seed + min(i + batch, cases))), inspect_every)
        for i in range(0, cases, batch)
    ]
    done, failures = 0, []
    t0 = time.monotonic()
    with multiprocessing.Pool(jobs) as pool:
        for n, found in pool.imap_unordered(_worker, work):
            done += n
            failures += found
            if sys.stderr.isatty():
                rate = done / max(time.monotonic() - t0, 1e-9)
                print(
                    f"\r{done}/{cases} cases, {len(failures)} failures, {rate:.0f}/s",
                    end="",
                    file=sys.stderr,
                )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return done, failures


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the first case (default 1)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument(
        "--inspect-every", type=int, default=4, metavar="K",
        help="also run `inspect` on every K-th case (0: never; default 4)",
    )  # fmt: skip
    p.add_argument(
        "--replay", type=int, metavar="SEED", help="run the one case SEED and explain it"
    )
    p.add_argument("--save", metavar="PATH", help="with --replay: keep the case's file here")
    p.add_argument(
        "--failures",
        metavar="DIR",
        help="write each failing case's file into DIR (one per signature)",
    )
    args = p.parse_args()

    if args.replay is not None:
        case = make_case(args.replay)
        path = Path(args.save) if args.save else Path(tempfile.mkdtemp()) / "case.pcapng"
        path.write_bytes(case.data)
        print(f"case {args.replay}: base {case.base}, {case.layout}")
        for m in case.mutations:
            print(f"  mutation: {m}")
        print(f"  expect result: {case.expect_result}, expect problem: {case.expect_problem}")
        print(f"  file: {path} ({len(case.data)} bytes)")
        bad = run_case(args.replay, path, 1)
        for f in bad:
            print(f"  FAIL {f.signature}")
        print("  contract holds" if not bad else f"  {len(bad)} violation(s)")
        return 1 if bad else 0

    t0 = time.monotonic()
    done, failures = campaign(args.seed, args.cases, max(1, args.jobs), args.inspect_every)
    elapsed = time.monotonic() - t0
    groups: dict[str, list[Failure]] = {}
    for f in sorted(failures, key=lambda f: f.seed):
        groups.setdefault(f.signature, []).append(f)
    print(
        f"cases run: {done}  failures: {len(failures)} ({len(groups)} distinct)  "
        f"time: {elapsed:.1f} s ({done / max(elapsed, 1e-9):.0f} cases/s, {args.jobs} jobs)  "
        f"seeds {args.seed}..{args.seed + args.cases - 1}"
    )
    for sig, fs in groups.items():
        first = fs[0]
        print(f"\n{len(fs)}x {sig}")
        print(f"   base {first.base}; mutations: {'; '.join(first.mutations)}")
        print(f"   reproduce: python3 scripts/fuzz.py --replay {first.seed} --save case.pcapng")
        if args.failures:
            out = Path(args.failures)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"fuzz-{first.seed}.pcapng").write_bytes(make_case(first.seed).data)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
